/**
 * The data a session actor works on: inbox messages, wake and wait conditions, and what a
 * handler run hands back. Plain JSON throughout, because all of it ends up in snapshots.
 */

/** Message priorities, lowest first; their order decides mail wake-ups and event wake-ups. */
export const PRIORITIES = ['low', 'normal', 'high', 'urgent'] as const;
export type Priority = (typeof PRIORITIES)[number];

/**
 * Kinds of inbox message (the `Agentry-Kind` header), plus `wake`: the record a woken session
 * receives first, and `waitpoint`: the settlement of a waitpoint (`WaitpointMessage` body).
 */
export const MESSAGE_KINDS = ['message', 'mail', 'task', 'event', 'control', 'wake', 'waitpoint'] as const;
export type MessageKind = (typeof MESSAGE_KINDS)[number];

/** Why a session woke; delivered to the handler as the body of a `wake` record. */
export type WakeReason = 'time' | 'event' | 'mail' | 'manual' | 'load' | 'timeout';

/** Numeric rank of a priority, for threshold comparisons. */
export function priorityRank(p: Priority): number {
  return PRIORITIES.indexOf(p);
}

/** True when `value` is one of the four priority names. */
export function isPriority(value: unknown): value is Priority {
  return typeof value === 'string' && (PRIORITIES as readonly string[]).includes(value);
}

/** One message as the session sees it (and as history keeps it). */
export interface InboxMessage {
  /** Inbox stream sequence; 0 for records the runtime makes itself (wake records). */
  readonly seq: number;
  readonly kind: MessageKind;
  /** Parsed JSON, or the raw text when the payload was not JSON. */
  readonly body: unknown;
  readonly priority: Priority;
  readonly from?: string;
  /** Event type, for `kind: 'event'`. */
  readonly eventType?: string;
  /** The producer's de-duplication id (`Nats-Msg-Id`), when it gave one. */
  readonly msgId?: string;
  /**
   * For an event's copy (`kind: 'event'`): the event's own id (`Agentry-Event-Id`: its stream
   * sequence and stream time), the same on every copy the router makes of it. A session remembers
   * the ids of its recent events, so a copy routed again after the duplicate window is skipped.
   * For mail, a cron firing or a waitpoint result (an outbox row): its delivery id
   * (`Agentry-Delivery-Id`), remembered the same way, so a row sent again after NATS forgot its
   * `Nats-Msg-Id` (a nats-server restart, a lost PubAck) is skipped too.
   */
  readonly eventId?: string;
  /** Milliseconds since the epoch when the runtime received it. */
  readonly at: number;
  /** The sender's turn policy for this message (`Agentry-Turn-Policy`); unset: the session's. */
  readonly policy?: TurnPolicy;
  /** W3C trace context the producer sent (header `traceparent`), kept with the message so its trace continues after a restart. */
  readonly traceparent?: string;
  /** W3C `tracestate` that came with `traceparent`. */
  readonly tracestate?: string;
  /** Epoch ms after which it must not start being handled (`Agentry-Expires-At`): it is dead-lettered `expired` instead. */
  readonly expiresAt?: number;
}

/** What wakes a sleeping session. */
export interface WakeCondition {
  /** Epoch ms at which the scheduler wakes it; null sleeps until something else does. */
  readonly until: number | null;
  readonly events: readonly string[];
  /** Mail at or above this priority wakes the session; null: no mail wakes it. */
  readonly mailPriority: Priority | null;
  /** Trace context of the run that put the session to sleep: the wake-up run continues its trace. */
  readonly traceparent?: string;
  readonly tracestate?: string;
  /** Set when a budget limit (policy `pause`) put the session to sleep: raising the limit (setBudget) or wakeAgent resumes it. */
  readonly budget?: BudgetHold | null;
}

/** The limit that holds a session (a `pause`, or an `ask` waitpoint), as its snapshot keeps it. */
export interface BudgetHold {
  readonly scope: string;
  readonly key: string;
  readonly metric: string;
  readonly window: string;
  readonly max: string;
  readonly policy: string;
}

/** What a waiting session waits for. */
export interface WaitCondition {
  readonly event: string | null;
  readonly replyFrom: string | null;
  /** Epoch ms after which it resumes with a timeout result; null waits forever. */
  readonly timeoutAt: number | null;
  /** A durable waitpoint (human in the loop): the wait ends with its `waitpoint` message. Absent in older snapshots. */
  readonly waitpoint?: WaitpointSpec | null;
  /** Trace context of the run that started the wait: the run that ends it continues its trace. */
  readonly traceparent?: string;
  readonly tracestate?: string;
}

/**
 * A waitpoint as the session's snapshot keeps it: the runtime stores it (table `waitpoints`) in
 * the same commit that puts the session in `waiting`. Its expiry is the wait's `timeoutAt`.
 */
export interface WaitpointSpec {
  /** 128 random bits, base64url: the capability that completes it. */
  readonly id: string;
  /** JSON Schema the value must match (a zod schema is stored as its JSON Schema). */
  readonly schema: unknown;
  /** Whether a timeout completes it with `default` (else the session gets status `timed-out` and no value). */
  readonly hasDefault: boolean;
  readonly default: unknown;
  readonly tags: readonly string[];
}

/** How a waitpoint was settled: by a value, by `cancelWaitpoint`, or by its timeout. */
export type WaitpointStatus = 'completed' | 'cancelled' | 'timed-out';

/** Body of the `waitpoint` message a session receives when its waitpoint is settled. */
export interface WaitpointMessage {
  readonly id: string;
  readonly status: WaitpointStatus;
  /** The completed value, the default on a timeout with a default, else null. */
  readonly value: unknown;
}

/** How a handler run ended, as chosen by the handler's return value. */
export type NextStep =
  | { readonly type: 'idle' }
  | { readonly type: 'sleep'; readonly wake: WakeCondition }
  | { readonly type: 'wait'; readonly wait: WaitCondition };

/** Input to one handler run (the invoked promise actor). */
export interface RunInput {
  readonly sessionId: string;
  readonly agentType: string;
  readonly runId: number;
  readonly attempt: number;
  readonly batch: readonly InboxMessage[];
  readonly userState: unknown;
}

/** What a successful handler run resolves to; the outputs it produced stay with the host, keyed by runId. */
export interface RunOutput {
  readonly userState: unknown;
  readonly next: NextStep;
  readonly finishedAt: number;
  /**
   * Positions in the batch of messages that did not run (a turn held back by a budget limit):
   * they go back to the mailbox, deferred by the sleep or wait the turn ends in, and the
   * session's state stays as it was. The rest of the batch completes.
   */
  readonly requeue?: readonly number[];
}

/**
 * What happens to a message that arrives while a turn runs (LangGraph's `multitask_strategy`):
 * - `queue`: it waits; turns run one message at a time, in order.
 * - `cancel-and-merge` (default): the running turn is aborted and re-run on both.
 * - `latest`: the running turn is aborted and queued older messages are dropped (`superseded`);
 *   only the newest runs.
 * - `reject`: it is refused (`rejected`; SESSION_BUSY to an API sender, a dead letter `busy`).
 * - `debounce`: turns start after `debounceMs` of quiet, on everything that arrived meanwhile.
 * - `rollback`: the running turn is aborted and its messages dropped (`rolled-back`); the new
 *   message runs on the state from before that turn.
 */
export const TURN_POLICIES = ['queue', 'cancel-and-merge', 'latest', 'reject', 'debounce', 'rollback'] as const;
export type TurnPolicy = (typeof TURN_POLICIES)[number];
/** The former name of `TurnPolicy`. */
export type MessagePolicy = TurnPolicy;

/** True when `value` names a turn policy. */
export function isTurnPolicy(value: unknown): value is TurnPolicy {
  return typeof value === 'string' && (TURN_POLICIES as readonly string[]).includes(value);
}

/**
 * What became of one inbox message, as history shows it: `handled` (its turn committed),
 * `merged` (it shared its turn with other messages), `superseded` (dropped by `latest`),
 * `rejected` (refused by `reject`), `rolled-back` (its turn was undone by `rollback`), or the
 * run outcomes `dead-letter`, `interrupted`, `stopped`.
 */
export type MessageFate = 'handled' | 'merged' | 'superseded' | 'rejected' | 'rolled-back' | 'dead-letter' | 'interrupted' | 'stopped';

/**
 * The fate of a history row from its stored `outcome` and how many inbox messages its batch
 * held: an `ok` run is `handled` alone and `merged` with others; other outcomes are fates.
 */
export function fateOf(outcome: string, batchMessages: number): MessageFate {
  if (outcome === 'ok') return batchMessages > 1 ? 'merged' : 'handled';
  return outcome as MessageFate;
}

/** Per-agent-type limits copied into each session's context (so a snapshot is self-describing). */
export interface SessionLimits {
  readonly policy: TurnPolicy;
  /** `debounce`: quiet time before a turn starts (absent in snapshots older than the policy: 0). */
  readonly debounceMs?: number;
  /** Most messages one merged batch may hold. */
  readonly maxMerge: number;
  /** A batch stops absorbing new messages once it has been running this long. */
  readonly maxMergeDelayMs: number;
  /** Attempts per batch before it becomes a dead letter. */
  readonly maxAttempts: number;
  readonly retryBaseMs: number;
  readonly retryCapMs: number;
}
