/**
 * Owns an in-process store with the same contract as the SQL backends. It keeps nothing
 * across restarts: it serves ephemeral runs (`AGENTRY_STORE=memory`) and nothing else.
 */
import { CHECKPOINTS_PER_SESSION } from './checkpoints.js';
import { FencedError, StaleVersionError, StoreError } from './errors.js';
import { historyLimitFor } from './historyLimit.js';
import { patternMatches } from './patterns.js';
import { stepOf } from './sessionStep.js';
import { createMemoryBudget, tagsOfSnapshot, tenantOfSnapshot } from './memoryBudget.js';
import { LOG_MAX_AGE_MS, LOG_MAX_PER_SESSION, logRowsOf } from './sessionLog.js';
import { matchesSessionQuery, sessionComparator } from './sessionListQuery.js';
import type {
  Checkpoint,
  CommitRecord, DeadLetter, DueWake, HistoryEntry, ScheduleRecord, ListSessionsQuery, LoadedSession, LogPruneOptions, MigrationResult, OutboxRecord,
  SessionLogEntry, SessionRecord, SessionStatus, SessionSummary, Store, TransitionRecord, WaitpointRecord,
} from './types.js';

/** Creates an empty in-memory store (no durability: for ephemeral runs only). */
export function createMemoryStore(now: () => number = Date.now): Store {
  const sessions = new Map<string, SessionRecord>();
  const partitionEpochs = new Map<number, number>();
  /** Runtime marks by key, as JSON text (`saveMark`). */
  const marks = new Map<string, string>();
  const history = new Map<string, HistoryEntry[]>();
  const transitions = new Map<string, TransitionRecord[]>();
  const deadLetters = new Map<string, DeadLetter>();
  const outbox = new Map<string, OutboxRecord>();
  const schedules = new Map<string, ScheduleRecord>();
  const subscriptions = new Map<string, Set<string>>(); // session → patterns
  const waitpoints = new Map<string, WaitpointRecord>();
  const log = new Map<string, SessionLogEntry[]>(); // session → entries, oldest first
  const logPruned = new Map<string, number>();
  let logId = 0;
  let transitionId = 0;
  const checkpoints = new Map<string, Checkpoint[]>(); // session → checkpoints, oldest first (migration 0010's rules)
  const checkpointTypes = new Set<string>();
  /** Keeps a session's checkpoints within a count and an age (the SQL store's deleteCheckpointsBeyond). */
  const cutCheckpoints = (sid: string, maxCount: number | undefined, before: number | undefined): void => {
    const list = checkpoints.get(sid);
    if (!list) return;
    checkpoints.set(sid, list.filter((c, i) => !((maxCount !== undefined && list.length - i > maxCount) || (before !== undefined && c.at < before))));
  };
  /** Each session's tenant, fixed by its first commit (as the SQL trigger of 0009 does). */
  const tenants = new Map<string, string>();
  /** Each session's tags, fixed by its first commit (as the SQL trigger of 0019 does). */
  const tags = new Map<string, readonly string[]>();
  const budget = createMemoryBudget(sessions, tenants);

  /** Removes a session's entries older than `before` and beyond the newest `keep`; returns how many. */
  const cutLog = (sid: string, before: number, keep: number): number => {
    const entries = log.get(sid);
    if (!entries) return 0;
    const fresh = entries.findIndex((e) => e.at >= before);
    const n = Math.max(fresh === -1 ? entries.length : fresh, entries.length - keep);
    if (n <= 0) return 0;
    const gone = entries.splice(0, n);
    logPruned.set(sid, Math.max(logPruned.get(sid) ?? 0, gone[gone.length - 1]!.id));
    return n;
  };
  const pruneLog = (o: LogPruneOptions): number => {
    const counted = new Set(o.sessionIds);
    let n = 0;
    for (const sid of log.keys()) n += cutLog(sid, o.before, counted.has(sid) ? o.keepPerSession : Infinity);
    return n;
  };

  const push = <T>(map: Map<string, T[]>, key: string, rows: readonly T[]): void => {
    if (rows.length === 0) return;
    const list = map.get(key) ?? [];
    list.push(...rows);
    map.set(key, list);
  };

  return {
    kind: 'memory',
    migrate(): Promise<MigrationResult> {
      return Promise.resolve({ applied: [], current: 0 });
    },
    ping: () => Promise.resolve(),
    loadSession: (id) => Promise.resolve(sessions.get(id) ?? null),
    loadSessions(ids, historyLimit) {
      const out = new Map<string, LoadedSession>();
      try {
        historyLimitFor(historyLimit, ''); // a bad limit fails even when no id is found, as in SQL
        for (const id of ids) {
          const record = sessions.get(id);
          if (!record) continue;
          const n = historyLimitFor(historyLimit, record.type);
          out.set(id, { record, history: n > 0 ? (history.get(id) ?? []).slice(-n).reverse() : [] });
        }
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
      return Promise.resolve(out);
    },
    claimPartition(partition: number, epoch: number): Promise<boolean> {
      const cur = partitionEpochs.get(partition) ?? 0;
      if (cur > epoch) return Promise.resolve(false);
      partitionEpochs.set(partition, epoch);
      return Promise.resolve(true);
    },
    loadMark(key: string): Promise<unknown> {
      const v = marks.get(key);
      return Promise.resolve(v === undefined ? null : JSON.parse(v) as unknown);
    },
    saveMark(key: string, value: unknown): Promise<void> {
      marks.set(key, JSON.stringify(value));
      return Promise.resolve();
    },
    maxPartitionEpoch(): Promise<number> {
      let max = 0;
      for (const e of partitionEpochs.values()) max = Math.max(max, e);
      return Promise.resolve(max);
    },
    maxLastSeq(): Promise<number> {
      let max = 0;
      for (const r of sessions.values()) max = Math.max(max, r.lastSeq);
      return Promise.resolve(max);
    },
    commit(records: readonly CommitRecord[]): Promise<void> {
      // Validate everything first so a failing batch changes nothing, as a transaction would.
      const versions = new Map<string, SessionRecord | undefined>();
      for (const r of records) {
        if ((partitionEpochs.get(r.partition) ?? 0) > r.ownerEpoch) return Promise.reject(new FencedError(r.sessionId, r.ownerEpoch));
        const cur = versions.has(r.sessionId) ? versions.get(r.sessionId) : sessions.get(r.sessionId);
        if ((cur?.version ?? 0) !== r.version - 1) return Promise.reject(new StaleVersionError(r.sessionId, r.version - 1));
        if (cur && cur.ownerEpoch > r.ownerEpoch) return Promise.reject(new FencedError(r.sessionId, r.ownerEpoch));
        versions.set(r.sessionId, toRecord(r, cur, now()));
      }
      for (const r of records) {
        const cur = sessions.get(r.sessionId);
        if (!cur) {
          const t = tenantOfSnapshot(r.snapshot); if (t !== null) tenants.set(r.sessionId, t);
          const g = tagsOfSnapshot(r.snapshot); if (g.length > 0) tags.set(r.sessionId, g); else tags.delete(r.sessionId);
        }
        // The validated record (each record of a session in this batch got its own, in order).
        const rec = toRecord(r, cur, now());
        sessions.set(r.sessionId, rec);
        push(history, r.sessionId, r.history);
        const before = transitions.get(r.sessionId)?.at(-1)?.id ?? 0;
        if (checkpointTypes.has(r.type)) push(checkpoints, r.sessionId, [{
          sessionId: r.sessionId, version: r.version, type: r.type, status: r.status, lastSeq: r.lastSeq,
          snapshot: JSON.parse(JSON.stringify(r.snapshot ?? null)) as unknown, transitionsBefore: before, at: rec.updatedAt,
        }]);
        cutCheckpoints(r.sessionId, CHECKPOINTS_PER_SESSION, undefined);
        // A user state is copied, as a snapshot is: a handler may change it in place later. A frame
        // is not: the host builds a new one per transition and never changes it.
        push(transitions, r.sessionId, r.transitions.map((t) => ({
          ...t, id: ++transitionId,
          ...('userState' in t ? { userState: JSON.parse(JSON.stringify(t.userState ?? null)) as unknown } : {}),
        })));
        for (const o of r.outbox) outbox.set(o.id, o);
        if (r.subscribe?.length || r.unsubscribe?.length) {
          const subs = subscriptions.get(r.sessionId) ?? new Set<string>();
          for (const p of r.unsubscribe ?? []) subs.delete(p);
          for (const p of r.subscribe ?? []) subs.add(p);
          subscriptions.set(r.sessionId, subs);
        }
        for (const w of r.waitpoints ?? []) {
          if (!waitpoints.has(w.id)) waitpoints.set(w.id, { ...w, status: 'pending', value: null, settledAt: null, defaultValue: w.hasDefault ? w.defaultValue ?? null : null });
        }
        const at = now();
        // A log row's data is a new object logRowsOf built from the record (nothing else holds it): kept as is.
        for (const row of logRowsOf(r)) {
          push(log, row.sessionId, [{ id: ++logId, sessionId: row.sessionId, kind: row.kind, data: row.data, at }]);
          cutLog(row.sessionId, at - LOG_MAX_AGE_MS, LOG_MAX_PER_SESSION); // retention costs nothing here: apply it at once
        }
      }
      return Promise.resolve();
    },
    getHistory(sessionId, opts = {}) {
      const rows = (history.get(sessionId) ?? []).filter((h) => opts.before === undefined || h.seq < opts.before);
      const limit = opts.limit ?? 100;
      return Promise.resolve(limit > 0 ? rows.slice(-limit).reverse() : []); // slice(-0) would be all of them
    },
    getTransitions(sessionId, opts = {}) {
      const rows = (transitions.get(sessionId) ?? []).filter((t) => opts.after === undefined || t.at > opts.after);
      return Promise.resolve(rows.slice(0, opts.limit ?? 1000).map((r) => (opts.frames ? { ...bare(r), frame: r.frame ?? null } : bare(r))));
    },
    getSessionStep(sessionId, id) {
      const rows = transitions.get(sessionId) ?? [];
      const i = rows.findIndex((t) => t.id === id);
      if (i < 0) return Promise.resolve(null);
      const prev = i > 0 ? rows[i - 1]! : null;
      const states = rows.slice(0, i + 1).filter((t) => 'userState' in t).reverse().slice(0, 2).map((t) => ({ value: t.userState, transitionId: t.id! }));
      return Promise.resolve(stepOf(bare(rows[i]!), rows[i]!.frame ?? null, prev ? { transition: bare(prev), frame: prev.frame ?? null } : null, states));
    },
    listSessions(query: ListSessionsQuery = {}): Promise<SessionSummary[]> {
      const cmp = sessionComparator(query);
      const sort = query.sort ?? 'id';
      const from = query.from ?? (query.after !== undefined && sort === 'id' ? { id: query.after, updatedAt: 0, type: '', status: '' } : undefined);
      const rows: SessionSummary[] = [];
      for (const [id, s] of sessions) {
        const row = { id, type: s.type, status: s.status, updatedAt: s.updatedAt, tenant: tenants.get(id) ?? null, tags: tags.get(id) ?? [] };
        if (!matchesSessionQuery(row, query)) continue;
        if (from && cmp(row, from) <= 0) continue;
        rows.push({ ...row, wakeAt: s.wakeAt });
      }
      rows.sort(cmp);
      return Promise.resolve(rows.slice(0, Math.max(1, Math.min(query.limit ?? 100, 1000))));
    },
    countSessions(query: ListSessionsQuery, cap: number): Promise<number> {
      let n = 0;
      for (const [id, s] of sessions) {
        if (n >= cap) break;
        if (matchesSessionQuery({ id, type: s.type, status: s.status, updatedAt: s.updatedAt, tenant: tenants.get(id) ?? null, tags: tags.get(id) ?? [] }, query)) n++;
      }
      return Promise.resolve(n);
    },
    countSessionsByStatus() {
      const counts: Record<SessionStatus, number> = { idle: 0, active: 0, sleeping: 0, waiting: 0, stopped: 0 };
      for (const s of sessions.values()) counts[s.status]++;
      return Promise.resolve(counts);
    },
    addDeadLetter(dl) {
      if (!deadLetters.has(dl.id)) deadLetters.set(dl.id, dl);
      return Promise.resolve();
    },
    listDeadLetters(opts = {}) {
      const b = opts.before;
      const rows = [...deadLetters.values()].map((d) => ({ ...d, agentType: sessions.get(d.sessionId)?.type ?? null })).filter((d) =>
        (!opts.sessionId || d.sessionId === opts.sessionId) && (!opts.reason || d.reason === opts.reason)
        && (!opts.agentType || d.agentType === opts.agentType) && (!opts.tenant || tenants.get(d.sessionId) === opts.tenant)
        && (opts.since === undefined || d.createdAt >= opts.since) && (opts.until === undefined || d.createdAt < opts.until)
        && (opts.replayed === undefined || (d.replayedAt !== null) === opts.replayed)
        && (!b || d.createdAt < b.createdAt || (d.createdAt === b.createdAt && d.id < b.id)));
      rows.sort((x, y) => y.createdAt - x.createdAt || (x.id < y.id ? 1 : x.id > y.id ? -1 : 0));
      return Promise.resolve(rows.slice(0, Math.min(opts.limit ?? 100, 1000)));
    },
    deleteDeadLetters(ids) {
      return Promise.resolve([...new Set(ids)].filter((id) => deadLetters.delete(id)));
    },
    async listTenants(opts = {}) {
      const by = new Map<string, Record<SessionStatus, number>>();
      const zero = (): Record<SessionStatus, number> => ({ idle: 0, active: 0, sleeping: 0, waiting: 0, stopped: 0 });
      for (const [id, t] of tenants) {
        const s = sessions.get(id);
        if (!s) continue;
        const c = by.get(t) ?? zero();
        c[s.status]++;
        by.set(t, c);
      }
      for (const l of await budget.listBudgetLimits()) if (l.scope === 'tenant' && !by.has(l.key)) by.set(l.key, zero());
      return [...by.keys()].sort().filter((t) => opts.after === undefined || t > opts.after).slice(0, Math.min(opts.limit ?? 100, 1000))
        .map((t) => { const c = by.get(t)!; return { tenant: t, sessions: Object.values(c).reduce((a, n) => a + n, 0), byStatus: c }; });
    },
    getDeadLetter: (id) => Promise.resolve(deadLetters.get(id) ?? null),
    markDeadLetterReplayed(id, at) {
      const dl = deadLetters.get(id);
      if (dl) deadLetters.set(id, { ...dl, replayedAt: at });
      return Promise.resolve();
    },
    pendingOutbox(limit, opts = {}) {
      const rows = [...outbox.values()].filter((o) => {
        if (opts.createdBefore !== undefined && o.createdAt >= opts.createdBefore) return false;
        const s = sessions.get(o.sessionId);
        return !opts.partitions || !s || opts.partitions.includes(s.partition);
      });
      return Promise.resolve(rows.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1)).slice(0, limit));
    },
    deleteOutbox(ids) {
      for (const id of ids) outbox.delete(id);
      return Promise.resolve();
    },
    dueWakes(partitions, before, limit, from) {
      const rows: DueWake[] = [];
      for (const x of sessions.values()) {
        if (x.wakeAt === null || x.wakeAt >= before || (from !== undefined && x.wakeAt < from) || (x.status !== 'sleeping' && x.status !== 'waiting' && x.status !== 'active')) continue;
        if (partitions && !partitions.includes(x.partition)) continue;
        rows.push({ sessionId: x.id, wakeAt: x.wakeAt, status: x.status, partition: x.partition });
      }
      return Promise.resolve(rows.sort((a, b) => a.wakeAt - b.wakeAt).slice(0, limit));
    },
    eventRecipients(type) {
      const ids = new Set<string>();
      for (const x of sessions.values()) {
        if ((x.status === 'sleeping' || x.status === 'waiting') && x.wakeEvents.includes(type)) ids.add(x.id);
      }
      for (const [sid, pats] of subscriptions) {
        if (sessions.get(sid)?.status === 'stopped') continue;
        for (const p of pats) if (patternMatches(p, type)) ids.add(sid);
      }
      return Promise.resolve([...ids].sort());
    },
    addSchedule(sched) {
      if (schedules.has(sched.id)) return Promise.reject(new StoreError(`schedule ${sched.id} exists`));
      schedules.set(sched.id, sched);
      return Promise.resolve();
    },
    deleteSchedule: (id) => Promise.resolve(schedules.delete(id)),
    getSchedule: (id) => Promise.resolve(schedules.get(id) ?? null),
    listSchedules: (o = {}) => Promise.resolve([...schedules.values()]
      .filter((x) => (!o.sessionId || x.sessionId === o.sessionId) && (!o.tenant || tenants.get(x.sessionId) === o.tenant)
        && (!o.after || x.createdAt > o.after.createdAt || (x.createdAt === o.after.createdAt && x.id > o.after.id)))
      .sort((x, y) => x.createdAt - y.createdAt || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0))
      .slice(0, Math.min(o.limit ?? 1000, 10_000))),
    dueSchedules(partitions, before, limit, from) {
      return Promise.resolve([...schedules.values()]
        .filter((x) => x.nextRunAt !== null && x.nextRunAt < before && (from === undefined || x.nextRunAt >= from) && (!partitions || partitions.includes(x.partition)))
        .sort((a, b) => a.nextRunAt! - b.nextRunAt!).slice(0, limit));
    },
    fireSchedule(id, expected, next, firedAt, o) {
      const cur = schedules.get(id);
      if (cur?.nextRunAt !== expected) return Promise.resolve(false);
      schedules.set(id, { ...cur, nextRunAt: next, lastRunAt: firedAt });
      if (o) outbox.set(o.id, o);
      return Promise.resolve(true);
    },
    getWaitpoint: (id) => Promise.resolve(waitpoints.get(id) ?? null),
    settleWaitpoint(id, status, value, at, beforeExpiry, o) {
      const w = waitpoints.get(id);
      if (!w) return Promise.resolve({ kind: 'missing' as const });
      if (w.status !== 'pending' || (beforeExpiry && w.expiresAt !== null && w.expiresAt <= at)) return Promise.resolve({ kind: 'not-pending' as const, record: w });
      waitpoints.set(id, { ...w, status, value: JSON.parse(JSON.stringify(value ?? null)) as unknown, settledAt: at });
      outbox.set(o.id, o);
      return Promise.resolve({ kind: 'settled' as const });
    },
    listWaitpoints(q = {}) {
      const status = q.status === undefined ? 'pending' : q.status;
      const rows = [...waitpoints.values()]
        .filter((w) => (status === null || w.status === status) && (!q.agentType || w.agentType === q.agentType) && (!q.sessionId || w.sessionId === q.sessionId)
          && (!q.tag || w.tags.includes(q.tag)) && (q.createdBefore === undefined || w.createdAt <= q.createdBefore)
          && (!q.after || w.createdAt > q.after.createdAt || (w.createdAt === q.after.createdAt && w.id > q.after.id)))
        .sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      return Promise.resolve(rows.slice(0, Math.min(1000, q.limit ?? 100)));
    },
    readLog(sessionId, afterId, limit) {
      const entries = log.get(sessionId) ?? [];
      const max = Math.max(0, Math.min(1000, Math.floor(Number.isFinite(limit) ? limit : 100)));
      return Promise.resolve(entries.filter((e) => e.id > afterId).slice(0, max));
    },
    lastLogId: (sessionId) => Promise.resolve(log.get(sessionId)?.at(-1)?.id ?? 0),
    logPrunedThrough: (sessionId) => Promise.resolve(logPruned.get(sessionId) ?? 0),
    pruneLog: (o) => Promise.resolve(pruneLog(o)),
    idleSessions(type, partitions, updatedBefore, afterId, limit) {
      const ids = [...sessions.values()]
        .filter((x) => x.type === type && partitions.includes(x.partition) && x.updatedAt < updatedBefore && (afterId === null || x.id > afterId))
        .map((x) => x.id).sort();
      return Promise.resolve(ids.slice(0, limit));
    },
    setCheckpointTypes(record, skip) {
      for (const t of skip) checkpointTypes.delete(t);
      for (const t of record) checkpointTypes.add(t);
      return Promise.resolve();
    },
    getCheckpoint(sessionId, at) {
      const list = checkpoints.get(sessionId) ?? [];
      let found: Checkpoint | undefined;
      if ('seq' in at) {
        const max = list.reduce((m, c) => Math.max(m, c.lastSeq), -Infinity);
        if (at.seq <= max) found = list.filter((c) => c.lastSeq <= at.seq).at(-1);
      } else if ((transitions.get(sessionId) ?? []).some((t) => t.id === at.transition)) {
        found = list.filter((c) => c.transitionsBefore < at.transition).at(-1);
      }
      return Promise.resolve(found ?? null);
    },
    listCheckpoints(sessionId, limit = 100) {
      return Promise.resolve((checkpoints.get(sessionId) ?? []).slice(-Math.min(Math.max(1, limit), 1000)));
    },
    pageSessions(afterId, limit, type) {
      const rows = [...sessions.values()].filter((x) => (afterId === null || x.id > afterId) && (type === undefined || x.type === type))
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      return Promise.resolve(rows.slice(0, Math.max(1, Math.min(1000, limit))));
    },
    replaceSnapshot(id, expectedVersion, snapshot) {
      const cur = sessions.get(id);
      if (!cur || cur.version !== expectedVersion) return Promise.resolve(false);
      sessions.set(id, { ...cur, snapshot, version: cur.version + 1 });
      return Promise.resolve(true);
    },
    purgeSession(id, expectedVersion) {
      const cur = sessions.get(id);
      if (!cur || cur.version !== expectedVersion || cur.status !== 'stopped' || [...outbox.values()].some((o) => o.sessionId === id)) return Promise.resolve(false);
      sessions.delete(id); tags.delete(id);
      history.delete(id); transitions.delete(id); subscriptions.delete(id); log.delete(id); logPruned.delete(id); checkpoints.delete(id);
      for (const [k, v] of schedules) if (v.sessionId === id) schedules.delete(k);
      for (const [k, v] of waitpoints) if (v.sessionId === id) waitpoints.delete(k);
      return Promise.resolve(true);
    },
    prunePast(o) {
      let h = 0;
      let t = 0;
      for (const id of o.sessionIds) {
        const hist = history.get(id);
        if (hist && o.history && (o.history.maxCount !== undefined || o.history.before !== undefined)) {
          // Newest first as a hydration reads them: seq, at, batch id descending.
          const ranked = [...hist].sort((a, b) => b.seq - a.seq || b.at - a.at || (a.batchId < b.batchId ? 1 : a.batchId > b.batchId ? -1 : 0));
          const { maxCount, before } = o.history;
          const gone = new Set(ranked.filter((e, i) => i >= o.historyFloor && ((maxCount !== undefined && i >= maxCount) || (before !== undefined && e.at < before))));
          if (gone.size > 0) { history.set(id, hist.filter((e) => !gone.has(e))); h += gone.size; }
        }
        const tr = transitions.get(id);
        if (tr && o.transitions && (o.transitions.maxCount !== undefined || o.transitions.before !== undefined)) {
          const { maxCount, before } = o.transitions;
          const keep = tr.filter((e, i) => !((maxCount !== undefined && tr.length - i > maxCount) || (before !== undefined && e.at < before)));
          t += tr.length - keep.length;
          transitions.set(id, keep);
          cutCheckpoints(id, maxCount, before);
        }
      }
      return Promise.resolve({ history: h, transitions: t });
    },
    ...budget,
    close: () => Promise.resolve(),
  };
}

function toRecord(r: CommitRecord, cur: SessionRecord | undefined, at: number): SessionRecord {
  return {
    id: r.sessionId, type: r.type, status: r.status, snapshot: r.snapshot, lastSeq: r.lastSeq,
    version: r.version, partition: r.partition, ownerEpoch: r.ownerEpoch, wakeAt: r.wakeAt,
    wakeEvents: r.wakeEvents, wakePriority: r.wakePriority, createdAt: cur?.createdAt ?? at, updatedAt: at,
  };
}

/** A stored transition without its frame and user state (what getTransitions returns unless asked). */
function bare(t: TransitionRecord): TransitionRecord {
  return { ...(t.id !== undefined ? { id: t.id } : {}), sessionId: t.sessionId, at: t.at, event: t.event, from: t.from, to: t.to };
}
