/**
 * Owns the retention of sessions' stored past (an agent type's `retention`): history and
 * transitions grow with every message and state change, and a long-lived session would otherwise
 * keep all of them forever. Driven by commits: every session a commit touched, of a type with a
 * retention, is remembered; at most every `everyMs` the remembered ones are pruned in the
 * background (batches of 500 ids, one DELETE per table per batch), outside any commit, so a
 * commit never waits for it. A failed round keeps its sessions for the next one. A session that
 * commits nothing any more is reached by a walk instead, for types with an age bound: each round
 * also visits the next page (500, in id order) of that type's sessions in this node's partitions
 * that have not changed for that age, and wraps around at the end; a count bound needs no walk
 * (a session's rows only grow when it commits).
 *
 * A hydration reads the newest `maxHistory` history rows: those always stay, whatever the bounds.
 */
import type { ResolvedAgent } from '../actors/defineAgent.js';
import type { CommitRecord, Store } from '../persistence/types.js';
import type { Logger } from './logger.js';

/** Rows removed so far, by table (metrics). */
export interface RetentionCounts { history: number; transitions: number }

/** Creates the job; `committed` is fed every committed record, `stop` waits for a round in flight. */
export function createRetention(deps: {
  readonly store: Pick<Store, 'prunePast' | 'idleSessions'>;
  readonly agents: () => ReadonlyMap<string, ResolvedAgent>;
  readonly logger: Logger;
  /** How often a round may run (0: never). */
  readonly everyMs: number;
  /** The clock history and transition times are written with. */
  readonly now: () => number;
  readonly counts: RetentionCounts;
  /** The partitions this node owns: the idle walk visits only their sessions. */
  readonly owned: () => readonly number[];
}): { committed(record: CommitRecord): void; stop(): Promise<void> } {
  const touched = new Map<string, Set<string>>(); // agent type → session ids
  const cursors = new Map<string, string | null>(); // agent type → the idle walk's last id

  /** The next page of `type`'s sessions idle for its shortest age bound, added to this round's work. */
  const walk = async (type: string, ageMs: number): Promise<void> => {
    const after = cursors.get(type) ?? null;
    const ids = await deps.store.idleSessions(type, deps.owned(), deps.now() - ageMs, after, 500);
    cursors.set(type, ids.length < 500 ? null : ids[ids.length - 1]!);
    if (ids.length === 0) return;
    let set = touched.get(type);
    if (!set) touched.set(type, set = new Set());
    for (const id of ids) set.add(id);
  };
  let running: Promise<void> | null = null;
  let stopped = false;

  const round = async (): Promise<void> => {
    for (const [type, agent] of deps.agents()) {
      const ages = [agent.retention?.history?.maxAgeMs, agent.retention?.transitions?.maxAgeMs].filter((a): a is number => a !== undefined);
      if (ages.length === 0) continue;
      try { await walk(type, Math.min(...ages)); } catch (err) { deps.logger.warn({ err, type }, 'retention: listing idle sessions failed; retried next round'); }
    }
    const work = [...touched];
    touched.clear();
    for (const [type, ids] of work) {
      const agent = deps.agents().get(type);
      const r = agent?.retention;
      if (!r) continue;
      const now = deps.now();
      const bound = (b: { maxCount?: number; maxAgeMs?: number } | undefined) => b && {
        ...(b.maxCount !== undefined ? { maxCount: b.maxCount } : {}),
        ...(b.maxAgeMs !== undefined ? { before: now - b.maxAgeMs } : {}),
      };
      const history = bound(r.history);
      const transitions = bound(r.transitions);
      try {
        const n = await deps.store.prunePast({
          sessionIds: [...ids], historyFloor: agent.maxHistory,
          ...(history ? { history } : {}), ...(transitions ? { transitions } : {}),
        });
        deps.counts.history += n.history;
        deps.counts.transitions += n.transitions;
      } catch (err) {
        deps.logger.warn({ err, type, sessions: ids.size }, 'retention round failed; its sessions are pruned next time');
        const again = touched.get(type) ?? new Set<string>();
        for (const id of ids) again.add(id);
        touched.set(type, again);
      }
    }
  };

  const start = (): Promise<void> => {
    running ??= round().finally(() => { running = null; });
    return running;
  };
  const aged = (): boolean => [...deps.agents().values()].some((a) => a.retention?.history?.maxAgeMs !== undefined || a.retention?.transitions?.maxAgeMs !== undefined);
  const timer = deps.everyMs > 0 ? setInterval(() => { if ((touched.size > 0 || aged()) && !stopped) void start(); }, deps.everyMs) : undefined;
  timer?.unref();

  return {
    committed(record) {
      if (stopped || !deps.agents().get(record.type)?.retention) return;
      let ids = touched.get(record.type);
      if (!ids) touched.set(record.type, ids = new Set());
      ids.add(record.sessionId);
    },
    async stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      await running;
    },
  };
}
