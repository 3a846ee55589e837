// Owns the chaos suite's verdict. After the load and a settle period it reads what the system
// actually did — each session's committed user state (`seen`, and for sleepers `timers` and
// `wakes`) through the snapshot in Postgres, the history rows, the dead letters, the inbox
// stream, and the nodes' commit logs — and compares it with what the producer had acked:
//
//   lost          published and acked by JetStream, not in `seen`, not dead-lettered, and no
//                 longer in the inbox stream (so the runtime acked it)
//   unprocessed   the same, but still in the stream: never acked (a stalled node)
//   doubled       in `seen` more than once, or in history under two batches
//   out of order  in `seen` after a higher i of the same session
//   dead-lettered a good message that became a dead letter (only poison may)
//   poison        each poison message must be exactly one dead letter and never applied
//   timers        each timer set by a sleeper fires once (a `time` wake), never before its time
//   events        each event the producer had acked is in every subscriber's committed `got`
//                 exactly once (missed: never handled; doubled: handled twice)
//   mail          each mailer's mail `{ from, i }` is in its mailbox's committed `mail[from]`
//                 exactly once for every `i` in the mailer's committed `seen`, and never for an
//                 `i` that is not (a phantom: mail of a run that did not commit). Mail order is
//                 counted, not judged: the runtime does not promise it (see countMail)
//   cron          each firing (its `scheduledFor`) is handled at most once, never before its due
//                 time, none is missing (a gap in the firings not explained by the catch-up rule:
//                 see checkFires), and every task fired after the settle began
//   unacked       messages still in the work-queue inbox stream after settling
//   stale commits a commit prepared after another node committed the same partition with a
//                 higher fencing epoch (from the commit logs)
//   recovery      per fault: time until every load session the fault touched commits a
//                 message published after the fault began
import { existsSync, readFileSync } from 'node:fs';
import type { Cluster } from './cluster.js';
import type { Load, PoisonSent, Published } from './load.js';

/** One fault as it happened. */
export interface FaultRecord {
  readonly kind: string;
  /** The node it hit (index), or null for the whole system (nats-server restart). */
  readonly node: number | null;
  readonly start: number;
  /** When the fault was lifted (the node restarted, resumed, the proxy passes again). */
  end: number;
  readonly detail?: Record<string, unknown>;
}

/** Mail between sessions and cron firings the scenario set up: what the verifier checks them against. */
export interface Traffic {
  /** Mailer → the mailbox it mails. */
  readonly mailTo: ReadonlyMap<string, string>;
  /** Cron session → its task id. */
  readonly cron: ReadonlyMap<string, string>;
  /** The cron schedule's period (ms): firings are this far apart unless late ones were collapsed. */
  readonly cronPeriodMs: number;
}

/** A line of a node's commit log (see test/fixtures/crash-runtime.mjs). */
export interface CommitLine { t: number; a: number | null; n: string; p: number; e: number | null; s: string; v: number; q: number; h: number[] }

export interface Recovery {
  readonly kind: string;
  readonly node: string | null;
  readonly start: number;
  readonly durationMs: number;
  /** Sessions the fault touched that had messages published after it began. */
  readonly sessions: number;
  /** From the fault's start until every such session committed a message published after the start; null when one never did. */
  readonly recoveryMs: number | null;
  /** The same, counted from when the fault was lifted (0 when it recovered while the fault lasted). */
  readonly afterEndMs: number | null;
  /** The session that took longest (or never recovered). */
  readonly slowest: string | null;
}

export interface Report {
  /** True when there are no problems. */
  readonly ok: boolean;
  /** One line per problem kind, with examples (session and i). */
  readonly problems: string[];
  readonly counts: {
    sessions: number; published: number; applied: number; lost: number; unprocessed: number; doubled: number; outOfOrder: number;
    deadLetteredGood: number; unacked: number; publishRetries: number;
    poison: { sent: number; deadLettered: number; missing: number; multiple: number; applied: number };
    timers: { set: number; fired: number; missed: number; twice: number; early: number; unexpectedWakes: number };
    events: { published: number; subscribers: number; delivered: number; missed: number; doubled: number };
    mail: MailCounts;
    cron: CronCounts;
    commitsByNode: Record<string, number>; staleCommits: number;
  };
  readonly recovery: Recovery[];
  readonly examples: Record<string, string[]>;
}

/** Mail between sessions: expected (mailers' applied messages), delivered, and what went wrong. */
export interface MailCounts { mailers: number; expected: number; delivered: number; missing: number; doubled: number; phantom: number; reordered: number }

/**
 * Cron firings: handled, twice, early, missing (a gap the catch-up rule does not explain),
 * collapsed (due times skipped because a firing was late: the promised catch-up), reordered
 * (handled after a later firing: not promised), and tasks that stopped firing before the settle.
 */
export interface CronCounts { tasks: number; fired: number; twice: number; early: number; missing: number; collapsed: number; reordered: number; stopped: number }

const EXAMPLES = 8;

/** Reads a commit log (missing file: no lines). */
export function readCommitLog(file: string): CommitLine[] {
  if (!existsSync(file)) return [];
  const out: CommitLine[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    try { out.push(JSON.parse(line) as CommitLine); } catch { /* a torn last line of a killed node */ }
  }
  return out;
}

/** Every node's commit log, merged and sorted by report time. */
export function allCommits(cluster: Cluster): CommitLine[] {
  return cluster.nodes.flatMap((n) => readCommitLog(n.commitLog)).sort((a, b) => a.t - b.t);
}

interface SessionRow { id: string; status: string; last_seq: string; user_state: { seen?: unknown[]; timers?: { i: number; until: number }[]; wakes?: { at: number; reason: string | null; i: number | null; until: number | null }[] } | null }
interface HistoryRow { session_id: string; seq: string; batch_id: string; outcome: string; body_i: string | null }
interface DeadLetterRow { id: string; session_id: string; reason: string; error: string | null; payload_seqs: string[] | null }

/** The inbox sequences a dead letter covers: its payload's `seq`s, else the `<sid>:<seq>` / `<sid>:<a>-<b>` of its id. */
function coveredSeqs(dl: DeadLetterRow): number[] {
  const fromPayload = (dl.payload_seqs ?? []).map(Number).filter((q) => Number.isFinite(q) && q > 0);
  if (fromPayload.length > 0) return fromPayload;
  const m = /:(\d+)(?:-(\d+))?$/.exec(dl.id);
  if (!m) return [];
  const a = Number(m[1]);
  const b = m[2] ? Number(m[2]) : a;
  return b - a <= 10_000 ? Array.from({ length: b - a + 1 }, (_, k) => a + k) : [a, b];
}

/** Reads Postgres, the stream and the commit logs, and judges the run (see the module comment). */
export async function verify(
  cluster: Cluster, load: Load, faults: readonly FaultRecord[],
  opts: { timerGraceMs?: number; now?: number; traffic?: Traffic; cronLiveFrom?: number } = {},
): Promise<Report> {
  const now = opts.now ?? Date.now();
  const examples: Record<string, string[]> = {};
  const note = (kind: string, text: string): void => {
    const l = (examples[kind] ??= []);
    if (l.length < EXAMPLES) l.push(text);
  };
  const sessionIds = [...load.published.keys()];
  // The stream first, then Postgres: a node still working (a settle that ran out of time) acks a
  // message only after committing it, so a message gone from the stream by the first read is
  // in the rows read after it. Read the other way round, a message committed and acked between
  // the two reads was in neither and counted lost (seed 202: 179 "lost" that the commit logs
  // show committed a second before the end).
  let inStream = new Set<number>();
  let streamReadable = true;
  try { inStream = await cluster.unackedSeqs(); } catch { streamReadable = false; }
  // What they are, read now: a message being handled when the settle ended is acked a moment later.
  const inStreamSeen = inStream.size > 0 ? await cluster.describeInbox(inStream).catch((err: Error) => [`unreadable (${err.message})`]) : [];
  const db = await cluster.db();
  let sessions: SessionRow[];
  let history: HistoryRow[];
  let dls: DeadLetterRow[];
  let events: { id: string; got: unknown[] | null }[];
  let boxes: { id: string; user_state: BoxState | null }[];
  const traffic = opts.traffic ?? { mailTo: new Map<string, string>(), cron: new Map<string, string>(), cronPeriodMs: 0 };
  const boxIds = [...new Set([...traffic.mailTo.values(), ...traffic.cron.keys()])];
  try {
    // The mailboxes before the mailers: a mail is published only after its sender's commit, so
    // every mail read here has its sender's `i` in the rows read next (a phantom is a real one).
    boxes = boxIds.length === 0 ? [] : (await db.query<{ id: string; user_state: BoxState | null }>(
      `SELECT id, snapshot->'context'->'userState' AS user_state FROM sessions WHERE id = ANY($1)`, [boxIds])).rows;
    sessions = (await db.query<SessionRow>(
      `SELECT id, status, last_seq::text AS last_seq, snapshot->'context'->'userState' AS user_state FROM sessions WHERE id = ANY($1)`, [sessionIds])).rows;
    history = (await db.query<HistoryRow>(
      `SELECT session_id, seq::text AS seq, batch_id, outcome, CASE WHEN jsonb_typeof(body) = 'object' THEN body->>'i' END AS body_i
         FROM history WHERE session_id = ANY($1) AND seq > 0 ORDER BY session_id, seq, batch_id`, [sessionIds])).rows;
    dls = (await db.query<DeadLetterRow>(
      `SELECT id, session_id, reason, error,
              CASE WHEN jsonb_typeof(payload) = 'array' THEN ARRAY(SELECT e->>'seq' FROM jsonb_array_elements(payload) e WHERE jsonb_typeof(e) = 'object') END AS payload_seqs
         FROM dead_letters WHERE session_id = ANY($1)`, [sessionIds])).rows;
    events = load.eventSubscribers.length === 0 ? [] : (await db.query<{ id: string; got: unknown[] | null }>(
      `SELECT id, snapshot->'context'->'userState'->'got' AS got FROM sessions WHERE id = ANY($1)`, [[...load.eventSubscribers]])).rows;
  } finally {
    await db.end();
  }
  const bySession = new Map(sessions.map((r) => [r.id, r]));
  const historyBySession = new Map<string, HistoryRow[]>();
  for (const h of history) { const l = historyBySession.get(h.session_id) ?? []; l.push(h); historyBySession.set(h.session_id, l); }
  const dlBySession = new Map<string, DeadLetterRow[]>();
  for (const d of dls) { const l = dlBySession.get(d.session_id) ?? []; l.push(d); dlBySession.set(d.session_id, l); }
  const poisonBySession = new Map<string, PoisonSent[]>();
  for (const p of load.poison) { const l = poisonBySession.get(p.sessionId) ?? []; l.push(p); poisonBySession.set(p.sessionId, l); }

  // A message still in the work-queue stream was never acked: not lost (it is redelivered), but not processed either.
  let published = 0; let applied = 0; let lost = 0; let unprocessed = 0; let doubled = 0; let outOfOrder = 0; let deadLetteredGood = 0;
  const poison = { sent: load.poison.length, deadLettered: 0, missing: 0, multiple: 0, applied: 0 };
  const timers = { set: load.timers.length, fired: 0, missed: 0, twice: 0, early: 0, unexpectedWakes: 0 };
  const timerGrace = opts.timerGraceMs ?? 0;

  for (const sid of sessionIds) {
    const pubs: Published[] = load.published.get(sid) ?? [];
    published += pubs.length;
    const row = bySession.get(sid);
    const seenRaw = row?.user_state?.seen ?? [];
    const seen = seenRaw.filter((x): x is number => typeof x === 'number');
    const nonNumbers = seenRaw.length - seen.length;
    const dlSeqs = new Map<number, number>();
    for (const d of dlBySession.get(sid) ?? []) for (const q of new Set(coveredSeqs(d))) dlSeqs.set(q, (dlSeqs.get(q) ?? 0) + 1);
    const count = new Map<number, number>();
    for (const i of seen) count.set(i, (count.get(i) ?? 0) + 1);

    for (const p of pubs) {
      const c = count.get(p.i) ?? 0;
      const dl = dlSeqs.get(p.seq) ?? 0;
      if (c > 0) applied++;
      if (c === 0 && dl === 0) {
        if (inStream.has(p.seq)) { unprocessed++; note('unprocessed', `${sid} i=${p.i} (seq ${p.seq})`); } else { lost++; note('lost', `${sid} i=${p.i} (seq ${p.seq})`); }
      }
      if (c > 1) { doubled++; note('doubled', `${sid} i=${p.i} applied ${c} times`); }
      if (dl > 0) { deadLetteredGood++; note('deadLetteredGood', `${sid} i=${p.i} (seq ${p.seq}) dead-lettered${c > 0 ? ' and applied' : ''}`); }
    }
    // Order: each first application must be above every earlier one.
    let max = 0;
    const firstSeen = new Set<number>();
    for (const i of seen) {
      if (firstSeen.has(i)) continue;
      firstSeen.add(i);
      if (i < max) { outOfOrder++; note('outOfOrder', `${sid} i=${i} applied after i=${max}`); }
      max = Math.max(max, i);
    }
    // History: one ok row per inbox sequence; a seq under two batches was applied twice.
    const rowsBySeq = new Map<string, HistoryRow[]>();
    for (const h of historyBySession.get(sid) ?? []) { const l = rowsBySeq.get(h.seq) ?? []; l.push(h); rowsBySeq.set(h.seq, l); }
    for (const [seq, rows] of rowsBySeq) {
      const ok = rows.filter((r) => r.outcome === 'ok');
      if (ok.length > 1) {
        doubled++;
        note('doubled', `${sid} seq ${seq} (i=${ok[0]!.body_i ?? '?'}) in history under batches ${ok.map((r) => r.batch_id).join(', ')}`);
      }
    }
    // Poison: exactly one dead letter each, never applied (in history as ok, or handed to the recorder).
    const ps = poisonBySession.get(sid) ?? [];
    let poisonApplied = 0;
    for (const p of ps) {
      const dl = dlSeqs.get(p.seq) ?? 0;
      if (dl === 1) poison.deadLettered++;
      else if (dl === 0) { poison.missing++; note('poison', `${sid} ${p.kind} (seq ${p.seq}, after i=${p.afterI}) not dead-lettered`); }
      else { poison.multiple++; note('poison', `${sid} ${p.kind} (seq ${p.seq}) dead-lettered ${dl} times`); }
      if ((rowsBySeq.get(String(p.seq)) ?? []).some((r) => r.outcome === 'ok')) { poisonApplied++; note('poison', `${sid} ${p.kind} (seq ${p.seq}) applied (history outcome ok)`); }
    }
    if (nonNumbers > poisonApplied) note('poison', `${sid}: ${nonNumbers} non-numeric entries in seen (a poison message handed to the handler)`);
    poison.applied += Math.max(poisonApplied, nonNumbers);
    // Timers of sleepers.
    const wakes = row?.user_state?.wakes ?? [];
    for (const t of load.timers.filter((x) => x.sessionId === sid)) {
      const fired = wakes.filter((w) => w.reason === 'time' && w.i === t.i);
      if (fired.length === 0) {
        if (t.until + timerGrace <= now) { timers.missed++; note('timers', `${sid} timer i=${t.i} due ${new Date(t.until).toISOString()} never fired`); }
        continue;
      }
      timers.fired++;
      if (fired.length > 1) { timers.twice++; note('timers', `${sid} timer i=${t.i} fired ${fired.length} times`); }
      for (const w of fired) if (w.at < t.until) { timers.early++; note('timers', `${sid} timer i=${t.i} fired ${t.until - w.at} ms early`); }
    }
    for (const w of wakes) {
      if (w.reason !== 'time') { timers.unexpectedWakes++; note('timers', `${sid} woke for ${w.reason} (timer i=${w.i})`); }
    }
  }

  // Events: every acked event once in every subscriber's committed state (order across events is not promised).
  const ev = { published: load.events.length, subscribers: load.eventSubscribers.length, delivered: 0, missed: 0, doubled: 0 };
  const gotBy = new Map(events.map((r) => [r.id, r.got ?? []]));
  for (const sid of load.eventSubscribers) {
    const count = new Map<unknown, number>();
    for (const k of gotBy.get(sid) ?? []) count.set(k, (count.get(k) ?? 0) + 1);
    for (const e of load.events) {
      const c = count.get(e.k) ?? 0;
      if (c === 0) { ev.missed++; note('events', `${sid} never handled event ${e.k} (seq ${e.seq})`); } else ev.delivered++;
      if (c > 1) { ev.doubled++; note('events', `${sid} handled event ${e.k} ${c} times (copies published: ${(load.eventCopies.get(`${sid} ${e.k}`) ?? []).join(', ')})`); }
    }
  }

  // Mail: what each mailer's committed turns sent, against what its mailbox committed.
  const boxBy = new Map(boxes.map((r) => [r.id, r.user_state]));
  const mail: MailCounts = { mailers: traffic.mailTo.size, expected: 0, delivered: 0, missing: 0, doubled: 0, phantom: 0, reordered: 0 };
  for (const [from, to] of traffic.mailTo) {
    const sent = (bySession.get(from)?.user_state?.seen ?? []).filter((x): x is number => typeof x === 'number');
    const got = (boxBy.get(to)?.mail?.[from] ?? []).filter((x): x is number => typeof x === 'number');
    countMail(from, to, sent, got, mail, note);
  }
  // Cron: each task's firings as its session committed them.
  const cron: CronCounts = { tasks: traffic.cron.size, fired: 0, twice: 0, early: 0, missing: 0, collapsed: 0, reordered: 0, stopped: 0 };
  for (const sid of traffic.cron.keys()) {
    checkFires(sid, boxBy.get(sid)?.fires ?? [], traffic.cronPeriodMs, opts.cronLiveFrom ?? null, cron, note);
  }

  const unacked = streamReadable ? inStream.size : -1;
  if (unacked !== 0) for (const d of inStreamSeen) note('unacked', d);

  const commits = allCommits(cluster);
  const commitsByNode: Record<string, number> = {};
  for (const c of commits) commitsByNode[c.n] = (commitsByNode[c.n] ?? 0) + 1;
  const staleCommits = findStaleCommits(commits, (t) => { note('staleCommits', t); });
  const recovery = faults.map((f) => recoveryOf(f, cluster, load, commits));

  const problems: string[] = [];
  const add = (n: number, what: string, key: string): void => {
    if (n > 0) problems.push(`${n} ${what}${examples[key] ? `: ${examples[key].join('; ')}` : ''}`);
  };
  add(lost, 'lost (acked by JetStream, never applied, not dead-lettered)', 'lost');
  add(unprocessed, 'never processed (still unacked in the inbox stream when the run ended)', 'unprocessed');
  add(doubled, 'applied twice', 'doubled');
  add(outOfOrder, 'applied out of order', 'outOfOrder');
  add(deadLetteredGood, 'good messages dead-lettered', 'deadLetteredGood');
  add(poison.missing + poison.multiple + poison.applied, 'poison messages not exactly one dead letter', 'poison');
  add(timers.missed + timers.twice + timers.early + timers.unexpectedWakes, 'timer faults (missed, fired twice, early or unexpected)', 'timers');
  add(ev.missed + ev.doubled, 'event deliveries not exactly once (missed or doubled)', 'events');
  add(mail.missing + mail.doubled + mail.phantom, 'mail not exactly once per committed turn (missing, doubled or from a turn that did not commit)', 'mail');
  add(cron.twice + cron.early + cron.missing + cron.stopped, 'cron firings wrong (twice, early, missing, or the task stopped firing)', 'cron');
  if (unacked !== 0) problems.push(`${unacked < 0 ? 'inbox stream unreadable' : `${unacked} messages left unacked in the inbox stream`}${examples.unacked ? `: ${examples.unacked.join('; ')}` : ''}`);
  add(staleCommits, 'stale commits (a deposed owner committed after the new owner)', 'staleCommits');
  const never = recovery.filter((r) => r.sessions > 0 && r.recoveryMs === null);
  if (never.length > 0) problems.push(`${never.length} faults never recovered: ${never.map((r) => `${r.kind}@${r.node ?? 'all'} (${r.slowest})`).join('; ')}`);

  return {
    ok: problems.length === 0,
    problems,
    counts: {
      sessions: sessionIds.length, published, applied, lost, unprocessed, doubled, outOfOrder, deadLetteredGood, unacked,
      publishRetries: load.retries, poison, timers, events: ev, mail, cron, commitsByNode, staleCommits,
    },
    recovery,
    examples,
  };
}

/** What a `rec-mailbox` session commits: mail by sender, cron firings as `[scheduledFor, at]`. */
interface BoxState { mail?: Record<string, unknown[]>; fires?: [unknown, unknown][] }

/**
 * Judges one mailer → mailbox pair: every `i` the mailer applied (`sent`) must be in the
 * mailbox's list (`got`) exactly once, and nothing else. Order is only counted: each run's rows
 * go out in order, but a row whose publish failed (NATS away, a crash after the commit) is
 * published by a later sweep, after the mail of the sender's later turns went out directly.
 */
export function countMail(from: string, to: string, sent: readonly number[], got: readonly number[], c: MailCounts, note: (kind: string, text: string) => void): void {
  const n = new Map<number, number>();
  for (const i of got) n.set(i, (n.get(i) ?? 0) + 1);
  const applied = new Set(sent);
  for (const i of applied) {
    c.expected++;
    const k = n.get(i) ?? 0;
    if (k === 0) { c.missing++; note('mail', `${to} never got mail i=${i} from ${from} (its turn committed)`); } else c.delivered++;
    if (k > 1) { c.doubled++; note('mail', `${to} got mail i=${i} from ${from} ${k} times`); }
  }
  for (const [i, k] of n) if (!applied.has(i)) { c.phantom += k; note('mail', `${to} got mail i=${i} from ${from}, whose turn for i=${i} never committed`); }
  let max = -Infinity;
  const first = new Set<number>();
  for (const i of got) {
    if (first.has(i)) continue;
    first.add(i);
    if (i < max) { c.reordered++; note('mailOrder', `${to} got mail i=${i} from ${from} after i=${max}`); }
    max = Math.max(max, i);
  }
}

/**
 * Judges one cron task's firings (`[scheduledFor, at]` in handling order), for a schedule that
 * fires every `periodMs`. The runtime fires a due time once (a compare-and-set on the task's next
 * due time, in the transaction that stores the firing) and then sets the next due time to the
 * first one after the moment it fired: firings that fell due while it was late (an outage, a
 * partition moving) collapse into the late one (`cronCatchUp: 'run-once'`). So a firing `a`
 * followed by `b` more than a period later is explained only when `a` fired at or after
 * `b - periodMs`; its handling time `at` comes later still, so `at < b - periodMs` means a due
 * time in between was skipped without a late firing to stand for it: missing.
 */
export function checkFires(sid: string, fires: readonly [unknown, unknown][], periodMs: number, liveFrom: number | null, c: CronCounts, note: (kind: string, text: string) => void): void {
  const firstAt = new Map<number, number>();
  let max = -Infinity;
  for (const [due, at] of fires) {
    if (typeof due !== 'number' || typeof at !== 'number') { c.missing++; note('cron', `${sid}: a task message without its due time (${JSON.stringify([due, at])})`); continue; }
    if (firstAt.has(due)) { c.twice++; note('cron', `${sid}: firing due ${new Date(due).toISOString()} handled twice`); continue; }
    firstAt.set(due, at);
    c.fired++;
    if (at < due) { c.early++; note('cron', `${sid}: firing due ${new Date(due).toISOString()} handled ${due - at} ms early`); }
    if (due < max) { c.reordered++; note('cronOrder', `${sid}: firing due ${new Date(due).toISOString()} handled after the one due ${new Date(max).toISOString()}`); }
    max = Math.max(max, due);
  }
  const dues = [...firstAt.keys()].sort((x, y) => x - y);
  for (let k = 1; periodMs > 0 && k < dues.length; k++) {
    const a = dues[k - 1]!;
    const b = dues[k]!;
    if (b - a <= periodMs) continue;
    const skipped = Math.round((b - a) / periodMs) - 1;
    if (firstAt.get(a)! >= b - periodMs) { c.collapsed += skipped; continue; }
    c.missing += skipped;
    note('cron', `${sid}: ${skipped} firing(s) between ${new Date(a).toISOString()} and ${new Date(b).toISOString()} never handled (the one due ${new Date(a).toISOString()} was handled at ${new Date(firstAt.get(a)!).toISOString()}, before the next due time)`);
  }
  if (liveFrom !== null && !(dues.length > 0 && dues[dues.length - 1]! > liveFrom)) {
    c.stopped++;
    note('cron', `${sid}: no firing due after the settle began (last: ${dues.length ? new Date(dues[dues.length - 1]!).toISOString() : 'none'})`);
  }
}

/**
 * Commits prepared (their latest event time) after another node had already committed the same
 * partition with a higher epoch, and carrying a lower epoch themselves: a deposed owner's writes.
 * A commit whose events all predate the other node's commit is not counted: it may have reached
 * Postgres before the takeover and only been reported late (a paused process reports on resume).
 */
export function findStaleCommits(commits: readonly CommitLine[], note: (text: string) => void): number {
  const byPartition = new Map<number, CommitLine[]>();
  for (const c of commits) { if (c.e === null) continue; const l = byPartition.get(c.p) ?? []; l.push(c); byPartition.set(c.p, l); }
  let stale = 0;
  type Best = { e: number; n: string; t: number } | null;
  for (const [p, list] of byPartition) {
    list.sort((x, y) => x.t - y.t);
    // For each prefix: the highest epoch, and the highest from a node other than that one's.
    const best1: Best[] = [];
    const best2: Best[] = [];
    let b1: Best = null;
    let b2: Best = null;
    for (const c of list) {
      const cur = { e: c.e!, n: c.n, t: c.t };
      if (!b1 || cur.e > b1.e) { if (b1 && b1.n !== cur.n) b2 = b1; b1 = cur; }
      else if (cur.n !== b1.n && (!b2 || cur.e > b2.e)) b2 = cur;
      best1.push(b1);
      best2.push(b2);
    }
    for (const c of list) {
      const prepared = c.a ?? c.t;
      // Last index with t < prepared.
      let lo = 0; let hi = list.length - 1; let k = -1;
      while (lo <= hi) { const mid = (lo + hi) >> 1; if (list[mid]!.t < prepared) { k = mid; lo = mid + 1; } else hi = mid - 1; }
      if (k < 0) continue;
      const top = best1[k]!.n !== c.n ? best1[k] : best2[k];
      if (top && top.e > c.e!) {
        stale++;
        note(`${c.n} committed ${c.s} (partition ${p}, epoch ${c.e}, last_seq ${c.q}) after ${top.n} had committed the partition with epoch ${top.e}`);
      }
    }
  }
  return stale;
}

/** How long a fault took to recover from (see `Recovery`). */
export function recoveryOf(f: FaultRecord, cluster: Cluster, load: Load, commits: readonly CommitLine[]): Recovery {
  const nodeId = f.node === null ? null : cluster.nodes[f.node]!.id;
  // The sessions it touched: those the faulted node committed last before the fault (all, for a server fault).
  const lastBy = new Map<string, string>();
  for (const c of commits) if (c.t < f.start) lastBy.set(c.s, c.n);
  // Sleepers are left out: a message to a sleeping session legitimately waits for its timer.
  const touched = [...lastBy].filter(([s, n]) => (nodeId === null || n === nodeId) && !load.sleeperIds.has(s)).map(([s]) => s);
  const commitsOf = new Map<string, CommitLine[]>();
  for (const c of commits) if (c.t >= f.start) { const l = commitsOf.get(c.s) ?? []; l.push(c); commitsOf.set(c.s, l); }
  let worst = 0;
  let slowest: string | null = null;
  let n = 0;
  let never = false;
  for (const sid of touched) {
    const first = (load.published.get(sid) ?? []).find((p) => p.sentAt >= f.start);
    if (!first) continue;
    n++;
    const done = (commitsOf.get(sid) ?? []).find((c) => c.q >= first.seq);
    if (!done) { never = true; slowest = `${sid} i=${first.i}`; continue; }
    const ms = done.t - f.start;
    if (!never && ms > worst) { worst = ms; slowest = `${sid} i=${first.i}`; }
  }
  const recoveryMs = never ? null : n === 0 ? 0 : worst;
  const durationMs = Math.max(0, f.end - f.start);
  return {
    kind: f.kind, node: nodeId, start: f.start, durationMs, sessions: n, recoveryMs,
    afterEndMs: recoveryMs === null ? null : Math.max(0, recoveryMs - durationMs), slowest,
  };
}

/** A human summary of a report (a few lines, then the problems). */
export function summarize(r: Report, title = 'chaos'): string {
  const c = r.counts;
  const rec = r.recovery.filter((x) => x.sessions > 0);
  const lines = [
    `[${title}] ${r.ok ? 'OK' : 'FAILED'}: ${c.sessions} sessions, ${c.published} published, ${c.applied} applied; ` +
      `lost ${c.lost}, never processed ${c.unprocessed}, doubled ${c.doubled}, out of order ${c.outOfOrder}, good dead-lettered ${c.deadLetteredGood}, unacked ${c.unacked}`,
    `[${title}] poison: ${c.poison.sent} sent, ${c.poison.deadLettered} dead-lettered once, ${c.poison.missing} missing, ${c.poison.multiple} multiple, ${c.poison.applied} applied; ` +
      `timers: ${c.timers.set} set, ${c.timers.fired} fired, ${c.timers.missed} missed, ${c.timers.twice} twice, ${c.timers.early} early; ` +
      `events: ${c.events.published} × ${c.events.subscribers} subscribers, ${c.events.delivered} delivered, ${c.events.missed} missed, ${c.events.doubled} doubled`,
    `[${title}] mail: ${c.mail.mailers} mailers, ${c.mail.expected} expected, ${c.mail.delivered} delivered, ${c.mail.missing} missing, ${c.mail.doubled} doubled, ${c.mail.phantom} phantom, ${c.mail.reordered} reordered (not promised); ` +
      `cron: ${c.cron.tasks} tasks, ${c.cron.fired} firings, ${c.cron.twice} twice, ${c.cron.early} early, ${c.cron.missing} missing, ${c.cron.collapsed} collapsed (catch-up), ${c.cron.reordered} reordered, ${c.cron.stopped} stopped`,
    `[${title}] commits by node: ${JSON.stringify(c.commitsByNode)}; stale commits ${c.staleCommits}; publish retries ${c.publishRetries}`,
    ...rec.map((x) => `[${title}] recovery ${x.kind}@${x.node ?? 'all'}: ${x.recoveryMs === null ? 'NEVER' : `${x.recoveryMs} ms`} from start` +
      ` (fault lasted ${x.durationMs} ms; ${x.afterEndMs === null ? '-' : `${x.afterEndMs} ms`} after it ended; ${x.sessions} sessions; slowest ${x.slowest ?? '-'})`),
    ...r.problems.map((p) => `[${title}] PROBLEM ${p}`),
  ];
  return lines.join('\n');
}
