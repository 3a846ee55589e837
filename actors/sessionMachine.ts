/**
 * Owns the session statechart: `idle`, `active` (`running`, `retrying`), `sleeping`, `waiting`,
 * `stopped`. Pure: no I/O. The runtime provides the handler (`runHandler`) and the retry delay
 * (`backoff`), and stamps every event with the time (`at`), so tests drive it with a fake clock.
 *
 * The mailbox lives in the context: `pending` (received, not yet acked), `batch` (the run in
 * flight), `deferred` (received while asleep: already committed and acked, delivered at wake).
 * A wake moves its wake record and the deferred mail into `pending`: those cannot come back by
 * redelivery, so the durable form of a session caught mid-run keeps them (`carriedOver`).
 * `version` increments on every change that must be committed; `lastSeq` is the highest inbox
 * sequence whose effect the context holds. `completed` describes the last finished run so the
 * host can write its history, outbox and dead letters in the same commit.
 *
 * No durable timer lives here (XState does not restore `after` delays): sleep and wait
 * deadlines are data (`wake.until`, `wait.timeoutAt`) that the scheduler turns into WAKE events.
 * The one `after` (retry backoff) is transient: a restored session re-runs from redelivery.
 */
import { assign, setup } from 'xstate';
import type { ErrorInfo } from './errors.js';
import { errorInfo } from './errors.js';
import type {
  InboxMessage, NextStep, RunInput, RunOutput, SessionLimits, TurnPolicy, WaitCondition, WakeCondition, WakeReason,
} from './types.js';
import { priorityRank } from './types.js';

/** How a finished batch ended (`superseded` / `rolled-back`: aborted by a `latest` / `rollback` message). */
export type RunOutcome = 'ok' | 'dead-letter' | 'interrupted' | 'stopped' | 'superseded' | 'rolled-back';

/** A message settled without running (dropped or refused by a turn policy), recorded with a run. */
export interface SettledMessage {
  readonly message: InboxMessage;
  readonly fate: 'superseded' | 'rejected';
  /** History groups it under this id (`latest`: the aborted run's; `reject`: its own). */
  readonly batchId: string;
}

/** The last batch that left `active`, for the host to commit. */
export interface CompletedRun {
  readonly runId: number;
  readonly batch: readonly InboxMessage[];
  readonly outcome: RunOutcome;
  readonly attempts: number;
  readonly error: ErrorInfo | null;
  /** Messages that did not run but whose fate this record commits (their seqs are covered by its lastSeq). */
  readonly settled?: readonly SettledMessage[];
}

export interface SessionContext {
  readonly sessionId: string;
  readonly agentType: string;
  /** The session's tenant, set at creation and never changed (stored in `sessions.tenant` by the first commit). */
  readonly tenant?: string;
  /** Labels set at creation and never changed (stored in `sessions.tags` by the first commit; listAgents filters by them). */
  readonly tags?: readonly string[];
  readonly limits: SessionLimits;
  readonly userState: unknown;
  readonly pending: readonly InboxMessage[];
  readonly deferred: readonly InboxMessage[];
  readonly batch: readonly InboxMessage[];
  /**
   * Messages refused by `reject` while a turn ran, not recorded yet: a refusal commits (and
   * acks) only with the record that settles every older message, so `lastSeq` never passes
   * an older message that has not been applied. Absent in older snapshots.
   */
  readonly rejected?: readonly InboxMessage[];
  readonly batchStartedAt: number;
  /** Latest time seen on an event; the machine's only notion of "now". */
  readonly clock: number;
  readonly runId: number;
  readonly attempt: number;
  readonly lastSeq: number;
  readonly version: number;
  readonly completed: CompletedRun | null;
  readonly wake: WakeCondition | null;
  readonly wait: WaitCondition | null;
  /** A sleep asked for while a run was in flight; applied when it ends. */
  readonly sleepRequested: WakeCondition | null;
  readonly lastError: ErrorInfo | null;
  /**
   * This incarnation of the session id, made at creation: a session purged and created again
   * under the same id starts over at version 1, and its outbox ids (`Nats-Msg-Id`) name the
   * incarnation so JetStream does not drop them as repeats of the old one's. Absent in sessions
   * created before 2026-11-28 (their ids keep the old form).
   */
  readonly incarnation?: string;
}

export type SessionEvent =
  | { type: 'MESSAGE'; message: InboxMessage; at: number }
  | { type: 'SLEEP'; wake: WakeCondition; at: number }
  | { type: 'WAIT'; wait: WaitCondition; at: number }
  | { type: 'WAKE'; reason: WakeReason; at: number; detail?: unknown }
  | { type: 'INTERRUPT'; at: number; reason?: string }
  | { type: 'STOP'; at: number; reason?: string }
  /**
   * Takes up what a restored session carried over from a run it did not finish (`carriedOver`):
   * a restored `idle` with pending work runs it on the next event, and this is that event.
   */
  | { type: 'RESUME'; at: number }
  /** The run `runId` returned (sent by whoever runs handlers: see `startRun`). */
  | { type: 'RUN_DONE'; runId: number; output: RunOutput }
  /** The run `runId` threw. */
  | { type: 'RUN_FAILED'; runId: number; error: unknown };

export interface SessionInput {
  readonly sessionId: string;
  readonly agentType: string;
  readonly tenant?: string;
  readonly limits: SessionLimits;
  readonly userState: unknown;
  readonly at: number;
  /** See `SessionContext.incarnation`; the host makes one for every new session. */
  readonly incarnation?: string;
}

const maxSeq = (seq: number, msgs: readonly InboxMessage[]): number => {
  let m = seq;
  for (let i = 0; i < msgs.length; i++) if (msgs[i]!.seq > m) m = msgs[i]!.seq;
  return m;
};

const wakeRecord = (reason: WakeReason, at: number, detail?: unknown, trace?: { traceparent?: string; tracestate?: string } | null): InboxMessage => ({
  seq: 0, kind: 'wake', body: detail === undefined ? { reason } : { reason, detail }, priority: 'normal', at,
  // The trace of the run that put the session to sleep (or to wait) continues in the wake-up run.
  ...(trace?.traceparent ? { traceparent: trace.traceparent, ...(trace.tracestate ? { tracestate: trace.tracestate } : {}) } : {}),
});

/** The turn policy that decides what `m` does: its own, else the session's. */
export function policyOf(context: Pick<SessionContext, 'limits'>, m: InboxMessage): TurnPolicy {
  return m.policy ?? context.limits.policy;
}

const merging = (p: TurnPolicy): boolean => p === 'cancel-and-merge' || p === 'debounce';

/**
 * The next batch from `pending`: a leading run of merging messages (`cancel-and-merge`,
 * `debounce`) up to maxMerge, or the first message alone.
 */
function nextBatch(context: SessionContext, pending: readonly InboxMessage[]): Pick<SessionContext, 'batch' | 'pending' | 'batchStartedAt' | 'runId' | 'attempt'> {
  let n = Math.min(1, pending.length);
  if (pending.length > 0 && merging(policyOf(context, pending[0]!))) {
    while (n < pending.length && n < context.limits.maxMerge && merging(policyOf(context, pending[n]!))) n++;
  }
  return { batch: pending.slice(0, n), pending: pending.slice(n), batchStartedAt: context.clock, runId: context.runId + 1, attempt: 1 };
}

/**
 * The context changes of a finished batch: `run` becomes `completed`, with the refused messages
 * that every still `unsettled` message is newer than (the rest wait for a later record), and
 * `lastSeq` covers all of them.
 */
function complete(context: SessionContext, run: CompletedRun, unsettled: readonly InboxMessage[]): Partial<SessionContext> {
  const refused = context.rejected;
  if ((refused === undefined || refused.length === 0) && run.settled === undefined) {
    // The common case (nothing refused, nothing settled without running): no filtering, no copies.
    return { completed: run, rejected: refused ?? [], lastSeq: maxSeq(context.lastSeq, run.batch), version: context.version + 1 };
  }
  const oldest = unsettled.reduce((min, x) => (x.seq > 0 && x.seq < min ? x.seq : min), Infinity);
  const rejected = context.rejected ?? [];
  const now = rejected.filter((r) => r.seq < oldest);
  const settled = [...(run.settled ?? []), ...now.map((message): SettledMessage => ({ message, fate: 'rejected', batchId: `r${message.seq}` }))];
  return {
    completed: settled.length > 0 ? { ...run, settled } : run,
    rejected: now.length === rejected.length ? [] : rejected.filter((r) => r.seq >= oldest),
    lastSeq: maxSeq(maxSeq(context.lastSeq, run.batch), settled.map((x) => x.message)),
    version: context.version + 1,
  };
}

/** Does this message wake a sleeper with these conditions? Mail by threshold, events by name or `urgent`. */
export function wakesSleeper(wake: WakeCondition | null, m: InboxMessage): WakeReason | null {
  if (!wake) return null;
  if (m.kind === 'mail' && wake.mailPriority !== null && priorityRank(m.priority) >= priorityRank(wake.mailPriority)) return 'mail';
  if (m.kind === 'event' && (m.priority === 'urgent' || (m.eventType !== undefined && wake.events.includes(m.eventType)))) return 'event';
  return null;
}

/**
 * Does this message end a wait? The awaited event, any mail/message from the awaited sender, or
 * the settlement of the awaited waitpoint (a `waitpoint` message naming its id; one naming
 * another id is deferred like any other message).
 */
export function endsWait(wait: WaitCondition | null, m: InboxMessage): boolean {
  if (!wait) return false;
  if (wait.waitpoint) return m.kind === 'waitpoint' && (m.body as { id?: unknown } | null)?.id === wait.waitpoint.id;
  if (wait.event !== null && m.kind === 'event' && m.eventType === wait.event) return true;
  return wait.replyFrom !== null && m.from === wait.replyFrom && (m.kind === 'mail' || m.kind === 'message');
}

/** Default retry delay without jitter; the runtime provides a jittered one. */
export function backoffDelay(limits: SessionLimits, attempt: number): number {
  return Math.min(limits.retryCapMs, limits.retryBaseMs * 2 ** Math.max(0, attempt - 1));
}

export const sessionMachine = setup({
  types: {
    context: {} as SessionContext,
    events: {} as SessionEvent,
    input: {} as SessionInput,
  },
  delays: {
    backoff: ({ context }) => backoffDelay(context.limits, context.attempt),
    /** Quiet time left: `debounceMs` after the last message, never past maxMergeDelayMs after the first. */
    debounce: ({ context }) => Math.max(0, Math.min(context.limits.debounceMs ?? 0, context.batchStartedAt + context.limits.maxMergeDelayMs - context.clock)),
  },
  guards: {
    hasPending: ({ context }) => context.pending.length > 0,
    canMerge: ({ context, event }) =>
      event.type === 'MESSAGE' &&
      policyOf(context, event.message) === 'cancel-and-merge' &&
      context.batch.length < context.limits.maxMerge &&
      event.at - context.batchStartedAt < context.limits.maxMergeDelayMs,
    canDebounce: ({ context, event }) =>
      event.type === 'MESSAGE' &&
      policyOf(context, event.message) === 'debounce' &&
      context.batch.length < context.limits.maxMerge &&
      event.at - context.batchStartedAt < context.limits.maxMergeDelayMs,
    rejects: ({ context, event }) => event.type === 'MESSAGE' && policyOf(context, event.message) === 'reject',
    supersedes: ({ context, event }) => event.type === 'MESSAGE' && policyOf(context, event.message) === 'latest',
    rollsBack: ({ context, event }) => event.type === 'MESSAGE' && policyOf(context, event.message) === 'rollback',
    /** A batch led by a `debounce` message waits for quiet first (a wake record runs at once). */
    debounces: ({ context }) => {
      const head = context.batch[0];
      return head !== undefined && head.kind !== 'wake' && policyOf(context, head) === 'debounce' && (context.limits.debounceMs ?? 0) > 0;
    },
    /** `debounces` for a message that will lead a batch of its own (from a stable `idle`). */
    debouncesMessage: ({ context, event }) =>
      event.type === 'MESSAGE' && event.message.kind !== 'wake' && policyOf(context, event.message) === 'debounce' && (context.limits.debounceMs ?? 0) > 0,
    /**
     * A run that finished `ok` with more queued and nothing that would stop at `idle` (no sleep or
     * wait, none requested, no budget requeue, no debounce at the head): `idle`'s `always` would
     * take the next batch and `starting` would run it, so `running` re-enters with it directly.
     */
    continuesWithPending: ({ context, event }) => {
      if (event.type !== 'RUN_DONE' || event.runId !== context.runId) return false;
      const out = event.output;
      if (out.next.type === 'sleep' || out.next.type === 'wait' || out.requeue || context.sleepRequested !== null) return false;
      const head = context.pending[0];
      return head !== undefined && !(head.kind !== 'wake' && policyOf(context, head) === 'debounce' && (context.limits.debounceMs ?? 0) > 0);
    },
    wakesSleeper: ({ context, event }) => event.type === 'MESSAGE' && wakesSleeper(context.wake, event.message) !== null,
    endsWait: ({ context, event }) => event.type === 'MESSAGE' && endsWait(context.wait, event.message),
  },
  actions: {
    /**
     * Starts the handler on the batch (entry of `running`); provided by the host, which sends
     * RUN_DONE / RUN_FAILED with the run's id when it settles. A plain action, not an invoked
     * actor: a child actor per run cost a sizeable share of the per-message CPU.
     */
    startRun: () => { throw new Error('startRun was not provided (see withRunner)'); },
    /** Aborts the run in flight (exit of `running`: a merge, an interrupt, a stop). */
    cancelRun: () => undefined,
    tick: assign({ clock: ({ context, event }) => ('at' in event ? Math.max(context.clock, event.at) : context.clock) }),
    /** `tick` and queueing the message in one assign: the hot path of every message (one context copy, not two). */
    receive: assign(({ context, event }) => (event.type === 'MESSAGE'
      ? { clock: Math.max(context.clock, event.at), pending: [...context.pending, event.message] }
      : {})),
    /** `receive` then `takeBatch`, in one assign, for a message that starts a run from a stable idle (nothing else pending). */
    receiveAndTake: assign(({ context, event }) => {
      if (event.type !== 'MESSAGE') return {};
      const clock = Math.max(context.clock, event.at);
      if (context.pending.length === 0) {
        return { batch: [event.message], pending: context.pending, batchStartedAt: clock, runId: context.runId + 1, attempt: 1, clock };
      }
      return { ...nextBatch(context, [...context.pending, event.message]), clock, batchStartedAt: clock };
    }),
    takeBatch: assign(({ context }) => nextBatch(context, context.pending)),
    /** `reject`: the message is refused; its refusal is recorded with the record that settles every older message. */
    reject: assign(({ context, event }) => (event.type === 'MESSAGE' ? { rejected: [...(context.rejected ?? []), event.message] } : {})),
    /** `latest`: the batch in flight and the queued messages are superseded; the new message runs alone. */
    supersede: assign(({ context, event }) => {
      if (event.type !== 'MESSAGE') return {};
      const batchId = String(context.runId);
      const run: CompletedRun = {
        runId: context.runId, batch: context.batch, outcome: 'superseded', attempts: context.attempt, error: null,
        settled: context.pending.map((message): SettledMessage => ({ message, fate: 'superseded', batchId })),
      };
      return { ...complete(context, run, [event.message]), ...nextBatch(context, [event.message]) };
    }),
    /** `rollback`: the batch in flight is rolled back (its turn never commits); the queue, then the new message, run next. */
    rollback: assign(({ context, event }) => {
      if (event.type !== 'MESSAGE') return {};
      const run: CompletedRun = { runId: context.runId, batch: context.batch, outcome: 'rolled-back', attempts: context.attempt, error: null };
      const queue = [...context.pending, event.message];
      return { ...complete(context, run, queue), ...nextBatch(context, queue) };
    }),
    mergeIntoBatch: assign(({ context, event }) => ({
      batch: event.type === 'MESSAGE' ? [...context.batch, event.message] : context.batch,
      runId: context.runId + 1,
    })),
    nextAttempt: assign({ attempt: ({ context }) => context.attempt + 1, runId: ({ context }) => context.runId + 1 }),
    defer: assign(({ context, event }) => {
      if (event.type !== 'MESSAGE') return {};
      return {
        deferred: [...context.deferred, event.message],
        lastSeq: maxSeq(context.lastSeq, [event.message]),
        version: context.version + 1,
      };
    }),

    deferPending: assign(({ context }) => {
      const rejected = context.rejected ?? [];
      if (context.pending.length === 0 && rejected.length === 0) return {};
      // Refusals still waiting for older messages commit now, with those (deferred) messages.
      let extra: Partial<SessionContext> = {};
      if (rejected.length > 0) {
        const fresh = context.completed !== null && context.completed.runId === context.runId;
        const base: CompletedRun = fresh ? context.completed : { runId: context.runId + 1, batch: [], outcome: 'ok', attempts: 0, error: null };
        extra = { ...complete(context, base, []), ...(fresh ? {} : { runId: context.runId + 1 }) };
      }
      return {
        ...extra,
        deferred: [...context.deferred, ...context.pending],
        lastSeq: maxSeq(extra.lastSeq ?? context.lastSeq, context.pending),
        pending: [],
        version: context.version + 1,
      };
    }),
    finishOk: assign(({ context, event }) => {
      const out = (event as unknown as { output: RunOutput }).output;
      const next: NextStep = out.next;
      if (out.requeue) {
        // A turn held back by a budget: its requeued messages wait in the mailbox (the sleep or
        // wait it enters defers them) and its state is unchanged; the rest of its batch completes.
        const keep = new Set(out.requeue);
        const done = context.batch.filter((_, i) => !keep.has(i));
        const queue = [...context.batch.filter((_, i) => keep.has(i)), ...context.pending];
        return {
          ...(done.length > 0
            ? complete(context, { runId: context.runId, batch: done, outcome: 'ok', attempts: context.attempt, error: null }, queue)
            : { version: context.version + 1 }),
          pending: queue,
          batch: [],
          lastError: null,
          clock: Math.max(context.clock, out.finishedAt),
          wake: next.type === 'sleep' ? next.wake : null,
          wait: next.type === 'wait' ? next.wait : null,
        };
      }
      return {
        userState: out.userState,
        ...complete(context, { runId: context.runId, batch: context.batch, outcome: 'ok', attempts: context.attempt, error: null }, context.pending),
        batch: [],
        lastError: null,
        clock: Math.max(context.clock, out.finishedAt),
        wake: next.type === 'sleep' ? next.wake : null,
        wait: next.type === 'wait' ? next.wait : null,
      };
    }),
    finishDeadLetter: assign(({ context, event }) => {
      const info = errorInfo((event as unknown as { error: unknown }).error);
      return {
        ...complete(context, { runId: context.runId, batch: context.batch, outcome: 'dead-letter', attempts: context.attempt, error: info }, context.pending),
        batch: [],
        lastError: info,
      };
    }),
    finishInterrupted: assign(({ context, event }) => ({
      ...complete(context, {
        runId: context.runId, batch: context.batch, outcome: 'interrupted', attempts: context.attempt,
        error: { message: (event as { reason?: string }).reason ?? 'interrupted', code: 'INTERRUPTED', terminal: true },
      }, context.pending),
      batch: [],
    })),
    stopAll: assign(({ context, event }) => {
      const all = [...context.batch, ...context.deferred, ...context.pending];
      return {
        ...complete(context, {
          runId: context.runId + 1, batch: all, outcome: 'stopped', attempts: 0,
          error: { message: (event as { reason?: string }).reason ?? 'session stopped', code: 'SESSION_STOPPED', terminal: true },
        }, []),
        batch: [], pending: [], deferred: [], wake: null, wait: null, sleepRequested: null,
      };
    }),
    wakeUp: assign(({ context, event }) => {
      const reason: WakeReason = event.type === 'WAKE' ? event.reason : 'manual';
      const detail = event.type === 'WAKE' ? event.detail : undefined;
      return {
        pending: [wakeRecord(reason, context.clock, detail, context.wake ?? context.wait), ...context.deferred, ...context.pending],
        deferred: [], wake: null, wait: null, version: context.version + 1,
      };
    }),
    wakeByMessage: assign(({ context, event }) => {
      if (event.type !== 'MESSAGE') return {};
      const reason = wakesSleeper(context.wake, event.message) ?? 'manual';
      return {
        pending: [wakeRecord(reason, context.clock, undefined, context.wake), ...context.deferred, ...context.pending, event.message],
        deferred: [], wake: null, version: context.version + 1,
      };
    }),
    resumeWithMessage: assign(({ context, event }) => {
      if (event.type !== 'MESSAGE') return {};
      // The awaited message comes first: it is what the handler asked to wait for. Without a trace
      // of its own it continues the trace of the run that started the wait.
      const w = context.wait;
      const m = event.message.traceparent !== undefined || !w?.traceparent ? event.message
        : { ...event.message, traceparent: w.traceparent, ...(w.tracestate ? { tracestate: w.tracestate } : {}) };
      return {
        pending: [m, ...context.deferred, ...context.pending],
        deferred: [], wait: null, version: context.version + 1,
      };
    }),
  },
}).createMachine({
  id: 'session',
  context: ({ input }) => ({
    sessionId: input.sessionId,
    agentType: input.agentType,
    ...(input.tenant !== undefined ? { tenant: input.tenant } : {}),
    ...(input.incarnation !== undefined ? { incarnation: input.incarnation } : {}),
    limits: input.limits,
    userState: input.userState,
    pending: [],
    deferred: [],
    batch: [],
    rejected: [],
    batchStartedAt: input.at,
    clock: input.at,
    runId: 0,
    attempt: 0,
    lastSeq: 0,
    version: 0,
    completed: null,
    wake: null,
    wait: null,
    sleepRequested: null,
    lastError: null,
  }),
  initial: 'idle',
  states: {
    idle: {
      always: [
        {
          guard: ({ context }) => context.sleepRequested !== null,
          target: 'sleeping',
          actions: assign(({ context }) => ({ wake: context.sleepRequested, sleepRequested: null, version: context.version + 1 })),
        },
        { guard: 'hasPending', target: 'active', actions: 'takeBatch' },
      ],
      on: {
        // Straight to the run (or to waiting for quiet): a stable idle session has nothing
        // pending, so the message is the whole batch. Going through `always` and `starting`
        // cost two more microsteps per message.
        MESSAGE: [
          { guard: 'debouncesMessage', target: 'active.debouncing', actions: 'receiveAndTake' },
          { target: 'active.running', actions: 'receiveAndTake' },
        ],
        SLEEP: {
          target: 'sleeping',
          actions: ['tick', assign(({ context, event }) => ({ wake: event.wake, version: context.version + 1 }))],
        },
        WAIT: {
          target: 'waiting',
          actions: ['tick', assign(({ context, event }) => ({ wait: event.wait, version: context.version + 1 }))],
        },
        STOP: { target: 'stopped', actions: ['tick', 'stopAll'] },
        // No transition of its own: any event makes XState try `always` (hasPending) first.
        RESUME: {},
      },
    },
    active: {
      initial: 'starting',
      // Every way into `active` takes the next batch as its transition's action (`takeBatch`,
      // `receiveAndTake`): one assign fewer per message than an entry action after `receive`.
      on: {
        // Turn policies of the message (substates try merging first): refuse it, drop what runs
        // and what waits (latest), undo what runs (rollback), or queue it.
        MESSAGE: [
          { guard: 'rejects', actions: ['tick', 'reject'] },
          { guard: 'supersedes', target: '.starting', actions: ['tick', 'supersede'] },
          { guard: 'rollsBack', target: '.starting', actions: ['tick', 'rollback'] },
          { actions: 'receive' },
        ],
        SLEEP: { actions: ['tick', assign(({ context, event }) => ({ sleepRequested: event.wake, version: context.version + 1 }))] },
        INTERRUPT: { target: 'idle', actions: ['tick', 'finishInterrupted'] },
        STOP: { target: 'stopped', actions: ['tick', 'stopAll'] },
      },
      states: {
        /** Transient: a batch led by a `debounce` message waits for quiet, any other runs at once. */
        starting: {
          always: [{ guard: 'debounces', target: 'debouncing' }, { target: 'running' }],
        },
        /**
         * Waiting for quiet (`debounce`) before the run: each mergeable message joins the batch and
         * restarts the wait, bounded by maxMergeDelayMs from the first. Transient like `retrying`:
         * a durable snapshot holds no batch, and the messages are redelivered after a restart.
         */
        debouncing: {
          after: { debounce: { target: 'running' } },
          on: {
            MESSAGE: [
              { guard: 'canDebounce', target: 'debouncing', reenter: true, actions: ['tick', 'mergeIntoBatch'] },
              { guard: 'canMerge', target: 'debouncing', reenter: true, actions: ['tick', 'mergeIntoBatch'] },
            ],
          },
        },
        running: {
          on: {
            // Cancel-and-merge: re-entering `running` stops the invoked handler (its signal aborts)
            // and starts it again on the merged batch; a debounce message stops it and waits for
            // quiet. When the guards refuse, `active` applies the other policies or queues it.
            MESSAGE: [
              { guard: 'canMerge', target: 'running', reenter: true, actions: ['tick', 'mergeIntoBatch'] },
              { guard: 'canDebounce', target: 'debouncing', actions: ['tick', 'mergeIntoBatch'] },
            ],
            // A result of an older run (superseded by a merge) is ignored: its batch runs again.
            RUN_DONE: [
              { guard: ({ context, event }) => event.runId === context.runId && event.output.next.type === 'sleep', target: '#session.sleeping', actions: 'finishOk' },
              { guard: ({ context, event }) => event.runId === context.runId && event.output.next.type === 'wait', target: '#session.waiting', actions: 'finishOk' },
              // The next batch at once, when going through `idle` would take it anyway (the same
              // actions in the same order: finishOk, then takeBatch): one microstep, not three.
              { guard: 'continuesWithPending', target: 'running', reenter: true, actions: ['finishOk', 'takeBatch'] },
              { guard: ({ context, event }) => event.runId === context.runId, target: '#session.idle', actions: 'finishOk' },
            ],
            RUN_FAILED: [
              {
                guard: ({ context, event }) => event.runId === context.runId && !errorInfo(event.error).terminal && context.attempt < context.limits.maxAttempts,
                target: 'retrying',
                actions: assign({ lastError: ({ event }) => errorInfo(event.error) }),
              },
              { guard: ({ context, event }) => event.runId === context.runId, target: '#session.idle', actions: 'finishDeadLetter' },
            ],
          },
          entry: 'startRun',
          exit: 'cancelRun',
        },
        retrying: {
          after: { backoff: { target: 'running', actions: 'nextAttempt' } },
        },
      },
    },
    sleeping: {
      entry: 'deferPending',
      on: {
        MESSAGE: [
          { guard: 'wakesSleeper', target: 'idle', actions: ['tick', 'wakeByMessage'] },
          { actions: ['tick', 'defer'] },
        ],
        WAKE: { target: 'idle', actions: ['tick', 'wakeUp'] },
        SLEEP: { actions: ['tick', assign(({ context, event }) => ({ wake: event.wake, version: context.version + 1 }))] },
        STOP: { target: 'stopped', actions: ['tick', 'stopAll'] },
      },
    },
    waiting: {
      entry: 'deferPending',
      on: {
        MESSAGE: [
          { guard: 'endsWait', target: 'idle', actions: ['tick', 'resumeWithMessage'] },
          { actions: ['tick', 'defer'] },
        ],
        WAKE: { target: 'idle', actions: ['tick', 'wakeUp'] },
        STOP: { target: 'stopped', actions: ['tick', 'stopAll'] },
      },
    },
    stopped: { type: 'final' },
  },
});

export type SessionMachine = typeof sessionMachine;

/** What a run is given: the batch and the state it starts from. */
export function runInputOf(context: SessionContext): RunInput {
  return {
    sessionId: context.sessionId, agentType: context.agentType, runId: context.runId,
    attempt: context.attempt, batch: context.batch, userState: context.userState,
  };
}

/**
 * The statechart with handler runs done by `run` (tests, tools): each run gets its own abort
 * signal, aborted when the run is superseded, interrupted or stopped through the machine.
 * The runtime provides `startRun`/`cancelRun` itself (sessionHost.ts).
 */
export function withRunner(run: (input: RunInput, signal: AbortSignal) => Promise<RunOutput>) {
  const running = new WeakMap<object, AbortController>();
  return sessionMachine.provide({
    actions: {
      startRun: ({ context, self }) => {
        const ctl = new AbortController();
        running.set(self, ctl);
        const runId = context.runId;
        run(runInputOf(context), ctl.signal).then(
          (output) => { if (!ctl.signal.aborted) self.send({ type: 'RUN_DONE', runId, output }); },
          (error: unknown) => { if (!ctl.signal.aborted) self.send({ type: 'RUN_FAILED', runId, error }); },
        );
      },
      cancelRun: ({ self }) => { running.get(self)?.abort(); running.delete(self); },
    },
  });
}

/** The top-level state name of a snapshot value (`{ active: 'running' }` → `active`). */
export function topState(value: unknown): 'idle' | 'active' | 'sleeping' | 'waiting' | 'stopped' {
  if (typeof value === 'string') return value as 'idle' | 'active' | 'sleeping' | 'waiting' | 'stopped';
  for (const k in value as object) return k as 'idle' | 'active' | 'sleeping' | 'waiting' | 'stopped'; // the first key, without an array
  return undefined as never;
}

/** Paths of nested values already seen (`active` → `running` → `active.running`): a few entries, made once. */
const PATHS = new Map<string, Map<string, string>>();

/** Full state path for timelines (`active.running`). Runs on every snapshot: no allocation for a known path. */
export function statePath(value: unknown): string {
  if (typeof value === 'string') return value;
  for (const k in value as Record<string, unknown>) {
    const v = (value as Record<string, unknown>)[k];
    if (typeof v !== 'string') return `${k}.${statePath(v)}`;
    let m = PATHS.get(k);
    if (!m) PATHS.set(k, (m = new Map<string, string>()));
    let p = m.get(v);
    if (p === undefined) { p = `${k}.${v}`; if (m.size < 64) m.set(v, p); }
    return p;
  }
  return '?.';
}

interface PersistedShape {
  value: unknown;
  context: SessionContext;
  children: Record<string, unknown>;
  [k: string]: unknown;
}

/**
 * What a session caught mid-run must keep in its durable snapshot, in order: the items of its
 * batch and pending mail that no redelivery would bring back — wake records (a wake is not an
 * inbox message: `seq` 0) and mail deferred while it slept (acked when its deferral committed:
 * `seq` at most `lastSeq`). Everything else there is unacked and JetStream delivers it again.
 * Dropping them lost a wake for good when a node died (or lost its partition) after committing
 * the wake's start and before its run committed: the row said `active`, no wake time, nothing
 * pending, and no message would ever load it again (chaos/natsCut, 2 of 4 runs with 40 sleepers).
 */
export function carriedOver(context: Pick<SessionContext, 'batch' | 'pending' | 'lastSeq'>): InboxMessage[] {
  // Runs once per commit over the whole queue: a loop, not two copies (most entries are unacked
  // messages, left out).
  const out: InboxMessage[] = [];
  for (const list of [context.batch, context.pending]) {
    for (let i = 0; i < list.length; i++) {
      const m = list[i]!;
      if (m.seq === 0 || m.seq <= context.lastSeq) out.push(m);
    }
  }
  return out;
}

/**
 * Reduces a persisted snapshot to what is durable: a session caught mid-run is stored as `idle`
 * with no batch and, in `pending`, only what it carried over (`carriedOver`: wake records and
 * deferred mail); the messages left out are not acked and JetStream delivers them again (in
 * order) after a restart. Deferred messages stay: they were acked. A restored `idle` with
 * pending work runs it on its first event (the host sends RESUME when its wake time, the
 * commit's time, falls due: see `commitRecordOf`).
 */
export function toDurableSnapshot(persisted: unknown): unknown {
  const p = persisted as PersistedShape;
  const state = topState(p.value);
  const ctx: SessionContext = { ...p.context, pending: carriedOver(p.context), batch: [], rejected: [], completed: null, attempt: 0, lastError: p.context.lastError };
  return { ...p, value: state === 'active' ? 'idle' : p.value, context: ctx, children: {} };
}

/**
 * The durable snapshot of a live snapshot, built from its fields: the same value as
 * `toDurableSnapshot(actor.getPersistedSnapshot())` (a test holds them equal) without XState
 * walking the whole context and every child actor first. It runs once per commit.
 */
export function durableSnapshotOf(snap: { status: string; value: unknown; context: SessionContext; historyValue?: unknown; error?: unknown; output?: unknown }, agentry?: unknown): unknown {
  const ctx: SessionContext = { ...snap.context, pending: carriedOver(snap.context), batch: [], rejected: [], completed: null, attempt: 0 };
  const value = topState(snap.value) === 'active' ? 'idle' : snap.value;
  // `agentry`: the stamp (actors/agentVersion.ts), last, as `stamped` puts it.
  return agentry === undefined
    ? { status: snap.status, value, historyValue: {}, context: ctx, children: {}, error: snap.error, output: snap.output }
    : { status: snap.status, value, historyValue: {}, context: ctx, children: {}, error: snap.error, output: snap.output, agentry };
}

/** The context of a durable snapshot (for reads that do not need a live actor). */
export function snapshotContext(snapshot: unknown): SessionContext {
  return (snapshot as PersistedShape).context;
}
