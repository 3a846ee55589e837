/**
 * Owns a live session's way to the store: its changes become commit records (commitRecord.ts)
 * queued on the session's *chain* — one promise per session, so version v+1 never reaches the
 * store before v — and submitted to group commit. While a record waits for the one in flight,
 * later changes merge into it (commit coalescing: one record per round trip, not per change).
 * After a record lands, the inbox messages it covers are acked (never before: exactly-once
 * state), the history view grows, listeners hear of it, and its outbox rows are published.
 *
 * Dead letters of a live session ride the same chain: a later commit never acks past a dead
 * letter that is not stored yet. A record Postgres refuses as data (StoreDataError) is never
 * retried: a single run's messages become one dead letter `unstorable`; a merged record is
 * split (`markSolo`: its runs come again, one per record, so the poison one stands alone).
 * Any other failure of a link hands the session to `port.failed` (the host drops it; it
 * re-hydrates from the store and its messages come again).
 */
import type { JsMsg } from '@nats-io/jetstream';
import { errorInfo } from '../../actors/errors.js';
import { sessionIdProblem } from '../../actors/sessionId.js';
import { topState, type CompletedRun } from '../../actors/sessionMachine.js';
import type { CommitRecord, DeadLetter } from '../../persistence/types.js';
import { storableText, toStorable } from '../../persistence/storable.js';
import type { Clock } from '../clock.js';
import { retryWhileStoreDown } from '../retry.js';
import { traceCommit, tracePublish } from '../tracing.js';
import { DLQ_SUBJECT } from '../transport.js';
import { addCompletedRun, batchRange, commitRecordOf, newPendingCommit, type PendingCommit } from './commitRecord.js';
import type { HostDeps, HostListener, HostStats } from './hostContract.js';
import { decodePayloadLoose, rememberEvents, type LiveSession } from './liveSession.js';
import { recordExpired } from './mailboxRules.js';
import type { Outbox } from './outbox.js';

/**
 * How long the record a due wake opens waits for the run the wake starts, before it is submitted
 * alone (`CommitChain.commit`). A wake changes the session twice in quick succession (`sleeping`
 * → `active` with the wake record carried over, then the run's end); committed apart, that was
 * two records, two snapshots serialized and two row updates per wake, and the second waited on
 * the chain for the first to land. A run that ends within this time merges into the wake's
 * record: one commit. Nothing is given up meanwhile: until a record of the wake lands, the stored
 * row still holds the due wake (a crash, a drop or a lost lease fires it again, as for the
 * `active` record with its carried-over wake), and no message is acked before the commit that
 * covers it. A longer run (an LLM call) commits its `active` record this much later than before.
 */
export const WAKE_HOLD_MS = 100;

/** What the chain needs of the host beyond its deps. */
export interface CommitPort {
  readonly clock: Clock;
  readonly stats: HostStats;
  readonly listeners: ReadonlySet<HostListener>;
  readonly outbox: Outbox;
  /** Shutdown under way: store outages are not waited out any more. */
  readonly stopping: () => boolean;
  /** A link failed: the live copy can no longer be trusted (the host drops it). */
  failed(s: LiveSession, err: unknown): void;
  /** A commit of `s` settled: a hydration waiting for a live slot may find `s` evictable now. */
  admitNext(s: LiveSession): void;
}

/** Commit records, their chain per session, and what follows a commit (see the module comment). */
export class CommitChain {
  private readonly clock: Clock;

  constructor(private readonly deps: HostDeps, private readonly port: CommitPort) {
    this.clock = port.clock;
  }

  /**
   * Dead-letters a message of a live session that its machine will never see (undecodable,
   * session stopped). Ordered on the session's commit chain, and the message stays in `acks`
   * until the dead letter is stored: a later commit (whose last_seq passes it) must not ack it
   * before that, or a crash in between would lose it.
   */
  deadLetterInSession(s: LiveSession, m: JsMsg, reason: string, detail: string, payload: unknown): void {
    const seq = m.seq;
    s.acks.set(seq, m);
    s.maxEnqueuedSeq = Math.max(s.maxEnqueuedSeq, seq); // a message the tenant rate deferred is older than later ones of the session
    // Detail and payload may quote what a producer sent (a header, the raw bytes): store them in
    // a form Postgres accepts, or the dead letter itself is refused and the message comes again.
    const dl: DeadLetter = { id: `${s.id}:${seq}`, sessionId: s.id, reason, error: storableText(detail), attempts: 0, payload: toStorable(payload), createdAt: this.clock.now(), replayedAt: null };
    this.deps.logger.warn({ sessionId: s.id, seq, reason, detail }, 'message dead-lettered');
    s.open = null; // later changes must not ride on a record that commits (and acks) before this dead letter is stored
    s.inflight++;
    s.chain = s.chain.then(async () => {
      await retryWhileStoreDown(() => this.deps.store.addDeadLetter(dl), this.port.stopping);
      this.port.stats.deadLetters++;
      s.acks.get(seq)?.ack();
      s.acks.delete(seq);
      this.deps.transport.publishCore(DLQ_SUBJECT(s.id), JSON.stringify(dl));
    }).catch((err: unknown) => {
      this.port.failed(s, err);
    }).finally(() => {
      s.inflight--;
      this.port.admitNext(s);
    });
  }

  /** Dead-letters a message that never reached a session, then acks it (the dead letter keeps it). */
  deadLetterRaw(m: JsMsg, sessionId: string, reason: string, detail: string, payload?: unknown): void {
    // The id may be anything a producer put in a subject: store it in a form Postgres accepts.
    const sid = storableText(sessionId.slice(0, 200));
    const dl: DeadLetter = {
      id: `${sid}:${m.seq}`, sessionId: sid, reason, error: storableText(detail), attempts: 0,
      payload: toStorable(payload ?? decodePayloadLoose(m)), createdAt: this.clock.now(), replayedAt: null,
    };
    this.deps.logger.warn({ sessionId: dl.sessionId, seq: m.seq, reason, detail }, 'message dead-lettered');
    this.port.stats.deadLetters++;
    void retryWhileStoreDown(() => this.deps.store.addDeadLetter(dl), this.port.stopping).then(() => {
      m.ack();
      this.deps.transport.publishCore(DLQ_SUBJECT(sessionIdProblem(sessionId) === null ? sessionId : '_invalid'), JSON.stringify(dl));
    }, () => undefined);
  }

  /**
   * Records a session's durable change. With no record of the session waiting, it opens one
   * and queues its submission on the session's chain (after the record in flight, so v+1
   * never reaches the store before v); otherwise the change merges into the waiting record.
   */
  commit(s: LiveSession, force: boolean): void {
    const snap = s.actor.getSnapshot();
    const ctx = snap.context;
    if (!force && ctx.version <= s.submittedVersion) return;
    s.submittedVersion = ctx.version;
    const completed = ctx.completed && ctx.completed.runId !== s.lastCompletedRunId ? ctx.completed : null;
    if (completed) s.lastCompletedRunId = completed.runId;
    const epoch = this.deps.ownerEpoch?.(s.partition) ?? 0;
    let p = s.open;
    if (p && (p.epoch !== epoch || this.soloCommits.has(s.id))) p = null;
    const fresh = p === null;
    if (!p) s.open = p = newPendingCommit(snap, epoch);
    p.snap = snap;
    if (s.transitions.length > 0) p.transitions.push(...s.transitions.splice(0));
    if (completed) {
      addCompletedRun(p, s.id, completed, s.outputs.get(completed.runId) ?? [], this.clock.now(), ctx.incarnation);
      recordExpired(p, s.id, completed, s.expired);
      if (s.outputs.size > 0) for (const k of s.outputs.keys()) if (k <= completed.runId) s.outputs.delete(k);
    }
    if (!fresh) {
      this.port.stats.coalesced++;
      // The run the held wake started has ended (or the session left `active` otherwise): submit.
      if (p.release !== null && topState(snap.value) !== 'active') p.release();
      return;
    }
    const record = p;
    s.inflight++;
    // A due wake that started a run: its record waits for the run's end (WAKE_HOLD_MS at most).
    const hold = s.wakeHold && topState(snap.value) === 'active' ? this.holdFor(record) : null;
    const before = hold === null ? s.chain : s.chain.then(() => hold);
    s.chain = before.then(() => this.submitPending(s, record)).catch((err: unknown) => {
      this.port.failed(s, err);
    }).finally(() => {
      s.inflight--;
      this.port.admitNext(s);
    });
  }

  /** Resolves when `p.release()` is called or WAKE_HOLD_MS after now, whichever is first. */
  private holdFor(p: PendingCommit): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        if (p.release !== done) return;
        p.release = null;
        this.clock.clearTimeout(timer);
        resolve();
      };
      const timer = this.clock.setTimeout(done, WAKE_HOLD_MS);
      p.release = done;
    });
  }

  /** Submits a session's waiting record (closing it to further changes) and settles what it covers. */
  private async submitPending(s: LiveSession, p: PendingCommit): Promise<void> {
    if (s.open === p) s.open = null;
    if (s.broken) return; // an earlier link failed: this version can never land
    const version = ++s.storeVersion;
    // Records are built in chain order, so `seenEvents` is what this version (and every earlier
    // one) settled: a record never remembers an event a later record settles.
    if (p.events.length > 0) {
      s.seenEvents = rememberEvents(s.seenEvents, p.events);
      if (s.liveEvents) for (const id of p.events) s.liveEvents.delete(id);
    }
    const record = commitRecordOf(p, s, version, this.deps.agents.get(s.type)?.subscribe ?? []);
    for (const dl of p.deadLetters) await retryWhileStoreDown(() => this.deps.store.addDeadLetter(dl), this.port.stopping);
    const runs = p.completed.map((c) => ({ runId: c.runId, run: s.runTraces?.get(c.runId), batch: c.batch, settled: c.settled ?? [], outcome: c.outcome }));
    for (const c of p.completed) s.runTraces?.delete(c.runId);
    try {
      await traceCommit(s.id, runs, () => this.deps.committer.submit(record));
    } catch (err) {
      if ((err as { code?: string }).code === 'STORE_DATA') {
        if (p.completed.length === 1) await this.deadLetterUnstorable(s, p.completed[0]!, err);
        // Several runs in one record: which one is poison is unknown. Its messages come again
        // (the drop restarts the feed) and commit one run per record, so the poison one stands alone.
        else if (p.completed.length > 1) this.markSolo(s.id);
      }
      throw err;
    }
    this.port.stats.commits++;
    p.committed = true;
    this.afterCommit(s, record, p.deadLetters);
    await tracePublish(s.id, runs.map((r) => r.run), record.outbox.length, () => this.port.outbox.publish(record.outbox));
  }

  /** Sessions whose records must not merge changes (a merged record was refused as data). */
  private readonly soloCommits = new Set<string>();

  private markSolo(sid: string): void {
    if (this.soloCommits.size >= 10_000) this.soloCommits.delete(this.soloCommits.values().next().value as string);
    this.soloCommits.add(sid);
  }

  /**
   * The run's commit holds data Postgres cannot store (handler state or output with a NUL, a
   * lone surrogate, …). Retrying cannot help: its messages become one dead letter (stored in a
   * form Postgres accepts) and are acked; the session re-hydrates from its last good snapshot.
   */
  private async deadLetterUnstorable(s: LiveSession, c: CompletedRun, err: unknown): Promise<void> {
    const seqs = c.batch.map((m) => m.seq).filter((q) => q > 0);
    const dl: DeadLetter = {
      id: `${s.id}:${batchRange(c, s.actor.getSnapshot().context.incarnation)}`, sessionId: s.id, reason: 'unstorable',
      error: `the store refused the run's result: ${errorInfo(err).message}`, attempts: c.attempts,
      payload: toStorable(c.batch), createdAt: this.clock.now(), replayedAt: null,
    };
    await retryWhileStoreDown(() => this.deps.store.addDeadLetter(dl), this.port.stopping);
    this.soloCommits.delete(s.id); // the poison run is found: this session's records may merge again
    this.port.stats.deadLetters++;
    s.log.error({ deadLetterId: dl.id, reason: dl.reason, attempts: dl.attempts, error: dl.error }, 'batch dead-lettered');
    for (const q of seqs) { s.acks.get(q)?.ack(); s.acks.delete(q); }
    this.deps.transport.publishCore(DLQ_SUBJECT(s.id), JSON.stringify(dl));
  }

  private afterCommit(s: LiveSession, record: CommitRecord, deadLetters: readonly DeadLetter[]): void {
    s.committedLastSeq = Math.max(s.committedLastSeq, record.lastSeq);
    s.updatedAt = this.clock.now();
    // By key: the entry iterator made a pair per unacked message of the session on every commit.
    for (const seq of s.acks.keys()) {
      if (seq <= record.lastSeq) { s.acks.get(seq)!.ack(); s.acks.delete(seq); }
    }
    if (record.history.length > 0) {
      const agent = this.deps.agents.get(s.type);
      const max = agent?.maxHistory ?? 50;
      for (const h of record.history) s.historyView.push(h);
      if (s.historyView.length > max) s.historyView.splice(0, s.historyView.length - max);
    }
    for (const dl of deadLetters) {
      this.port.stats.deadLetters++;
      s.log[dl.reason === 'handler-failed' ? 'error' : 'warn']({ deadLetterId: dl.id, reason: dl.reason, attempts: dl.attempts, error: dl.error }, 'batch dead-lettered');
      this.deps.transport.publishCore(DLQ_SUBJECT(s.id), JSON.stringify(dl));
    }
    for (const l of this.port.listeners) l.onCommitted?.(record);
  }
}
