/**
 * Owns session TTL: an agent type's `sessionTtl` (or the runtime default `AGENTRY_SESSION_TTL_MS`)
 * stops sessions that committed nothing for `idleMs`, and with `purge` deletes them. A background
 * job like retention's idle walk (runtime/retention.ts): at most every `everyMs`, for each type
 * with a TTL, it visits the next page (500, in id order, wrapping around) of that type's
 * sessions in this node's partitions not updated for `idleMs` (Store.idleSessions) and asks the
 * host to expire each one (SessionHost.expireIdle: the checks, the STOP through the normal
 * commit path under the partition's epoch, and the compare-and-set purge).
 *
 * Only the owner of a partition touches its sessions, so a stop is one committed change like
 * any other and a purge cannot race a message on another node. A failed round is logged and its
 * page visited again next time (the cursor does not move past sessions it could not read).
 */
import type { ResolvedAgent, SessionTtl } from '../actors/defineAgent.js';
import type { Store } from '../persistence/types.js';
import type { Logger } from './logger.js';

/** The TTL of each agent type: its own, else the runtime default (undefined: none). */
export function ttlOf(agent: ResolvedAgent, fallback: SessionTtl | undefined): SessionTtl | undefined {
  return agent.sessionTtl ?? fallback;
}

/** Creates the job; `stop` waits for a round in flight. */
export function createSessionTtl(deps: {
  readonly store: Pick<Store, 'idleSessions'>;
  readonly agents: () => ReadonlyMap<string, ResolvedAgent>;
  readonly expire: (sessionId: string, cutoff: number, purge: boolean) => Promise<'stopped' | 'purged' | 'kept'>;
  readonly logger: Logger;
  /** How often a round may run (0: never). */
  readonly everyMs: number;
  /** The clock sessions' updated_at is written with. */
  readonly now: () => number;
  /** The partitions this node owns. */
  readonly owned: () => readonly number[];
  /** The runtime default for types without their own. */
  readonly fallback?: SessionTtl;
}): { round(): Promise<void>; stop(): Promise<void> } {
  const cursors = new Map<string, string | null>();
  let running: Promise<void> | null = null;
  let stopped = false;

  const roundOnce = async (): Promise<void> => {
    for (const [type, agent] of deps.agents()) {
      const ttl = ttlOf(agent, deps.fallback);
      if (!ttl || stopped) continue;
      const cutoff = deps.now() - ttl.idleMs;
      try {
        const after = cursors.get(type) ?? null;
        const ids = await deps.store.idleSessions(type, deps.owned(), cutoff, after, 500);
        let done: string | null = after;
        for (const id of ids) {
          if (stopped) break;
          const r = await deps.expire(id, cutoff, ttl.purge === true);
          if (r !== 'kept') deps.logger.info({ sessionId: id, agentType: type, idleMs: ttl.idleMs }, r === 'purged' ? 'session purged (sessionTtl)' : 'session stopped (sessionTtl)');
          done = id;
        }
        cursors.set(type, ids.length < 500 ? null : done);
      } catch (err) {
        deps.logger.warn({ err, type }, 'session TTL round failed; retried next round');
      }
    }
  };
  const round = (): Promise<void> => {
    running ??= roundOnce().finally(() => { running = null; });
    return running;
  };
  const any = (): boolean => deps.fallback !== undefined || [...deps.agents().values()].some((a) => a.sessionTtl !== undefined);
  const timer = deps.everyMs > 0 ? setInterval(() => { if (!stopped && any()) void round(); }, deps.everyMs) : undefined;
  timer?.unref();
  return {
    round,
    async stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      await running;
    },
  };
}
