/**
 * Owns the gate between a stored snapshot and the running agent code: on hydration the snapshot
 * is migrated in memory to the agent's current version (actors/agentVersion.ts; the session's
 * next commit writes it). A snapshot the code cannot take — one that does not migrate, or that
 * is not a snapshot XState can restore (a row changed outside the runtime) — blocks the session (blockedSessions.ts):
 * nothing of it is written, its messages are held unacked, the error is announced on its state
 * subject, and its row is read again now and then (`retry`) so a row rewritten by
 * `agentry migrate` releases it without a restart.
 */
import type { JsMsg } from '@nats-io/jetstream';
import { migrateSnapshot, snapshotProblem, type MigrationError } from '../../actors/agentVersion.js';
import type { SessionRecord } from '../../persistence/types.js';
import type { Clock } from '../clock.js';
import { STATE_SUBJECT } from '../transport.js';
import { BlockedSessions } from './blockedSessions.js';
import type { HostDeps } from './hostContract.js';

/** What the gate needs of the host beyond its deps. */
export interface MigrationPort {
  readonly clock: Clock;
  readonly stopping: () => boolean;
  /** Dead-letters a message that never reached a session (commitChain.ts). */
  deadLetterRaw(m: JsMsg, sid: string, reason: string, detail: string): void;
}

/** Lazy snapshot migration and the sessions it blocks (see the module comment). */
export class MigrationGate {
  /** Sessions whose snapshot the running code cannot take (their messages are held unacked). */
  readonly blocked = new BlockedSessions();

  constructor(private readonly deps: HostDeps, private readonly port: MigrationPort) {}

  /**
   * The stored record with its snapshot migrated to the agent's current version (lazy migration,
   * in memory: it is written by the session's next commit). Null when the code cannot take it:
   * the session is blocked (held messages, typed error) and its stored row is left as it is.
   */
  migrated(sid: string, partition: number, rec: SessionRecord): SessionRecord | null {
    const agent = this.deps.agents.get(rec.type);
    if (!agent) return rec; // a type this node does not run: its turns fail as before
    const out = migrateSnapshot(sid, agent, rec.snapshot);
    if (!out.ok) {
      this.refuse(sid, partition, out.error);
      return null;
    }
    if (out.changed) {
      this.blocked.migrated++;
      this.deps.logger.info({ sessionId: sid, agentType: rec.type, fromVersion: out.from, toVersion: out.to }, 'session snapshot migrated');
    }
    return out.changed ? { ...rec, snapshot: out.snapshot } : rec;
  }

  /**
   * Blocks a session whose stored snapshot this code cannot take (a failed migration, or a
   * snapshot XState cannot restore: `SessionHost.makeLive`): its messages are held unacked, the
   * error is logged and announced on its state subject, its row is left as it is.
   */
  refuse(sid: string, partition: number, error: MigrationError): void {
    this.blocked.block(sid, partition, error);
    this.deps.logger.error({ sessionId: sid, agentType: error.agentType, code: error.code, reason: error.reason, fromVersion: error.fromVersion, toVersion: error.toVersion, err: error.message },
      'session snapshot cannot be taken: the session keeps its stored snapshot and its messages stay unacked until a deploy or a corrected row can take it');
    this.deps.transport.publishCore(STATE_SUBJECT(sid), JSON.stringify({ agentId: sid, error: error.toJSON(), at: this.port.clock.now() }));
  }

  /**
   * Reads blocked sessions' rows again (at most every max(5 s, ackWaitMs) each): a row rewritten
   * meanwhile (`agentry migrate` with corrected code) that now migrates releases the session, and
   * its held messages come again, in order (the partition's feed restarts from its ack floor).
   */
  retry(): void {
    if (this.blocked.size === 0 || this.port.stopping()) return;
    for (const { sid, agentType } of this.blocked.due(Date.now() - Math.max(5_000, this.deps.config.ackWaitMs))) {
      const agent = this.deps.agents.get(agentType);
      void this.deps.store.loadSession(sid).then((rec) => {
        if (!rec || !agent) return;
        const out = migrateSnapshot(sid, agent, rec.snapshot);
        if (!out.ok || snapshotProblem(out.snapshot) !== null) return;
        const p = this.blocked.release(sid);
        this.deps.logger.info({ sessionId: sid, agentType }, 'a blocked session\'s snapshot can be taken now (rewritten meanwhile): it hydrates again');
        if (p !== null) this.deps.restartPartition?.(p, `session ${sid} unblocked: its held messages come again`);
      }, (err: unknown) => { this.deps.logger.warn({ err, sessionId: sid }, 'could not re-read a blocked session; retried later'); });
    }
  }

  /**
   * Holds a message of a session blocked by a failed migration, unacked (see BlockedSessions);
   * past the type's maxMailbox it is dead-lettered `mailbox-full` instead. False: not blocked.
   */
  hold(sid: string, m: JsMsg): boolean {
    const err = this.blocked.errorOf(sid);
    if (!err) return false;
    const max = this.deps.agents.get(err.agentType)?.maxMailbox;
    if (max !== undefined && this.blocked.heldCount(sid) >= max) {
      this.port.deadLetterRaw(m, sid, 'mailbox-full', `session ${sid} holds ${max} messages (maxMailbox) while it waits for a deploy that can migrate it (${err.reason})`);
      return true;
    }
    return this.blocked.hold(sid, m);
  }
}
