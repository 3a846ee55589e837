/**
 * The data a session actor works on: inbox messages, wake and wait conditions, and what a
 * handler run hands back. Plain JSON throughout, because all of it ends up in snapshots.
 */

/** Message priorities, lowest first; their order decides mail wake-ups and event wake-ups. */
export const PRIORITIES = ['low', 'normal', 'high', 'urgent'] as const;
export type Priority = (typeof PRIORITIES)[number];

/** Kinds of inbox message (the `Agentry-Kind` header), plus `wake`: the record a woken session receives first. */
export const MESSAGE_KINDS = ['message', 'mail', 'task', 'event', 'control', 'wake'] as const;
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
  /** Milliseconds since the epoch when the runtime received it. */
  readonly at: number;
}

/** What wakes a sleeping session. */
export interface WakeCondition {
  /** Epoch ms at which the scheduler wakes it; null sleeps until something else does. */
  readonly until: number | null;
  readonly events: readonly string[];
  /** Mail at or above this priority wakes the session; null: no mail wakes it. */
  readonly mailPriority: Priority | null;
}

/** What a waiting session waits for. */
export interface WaitCondition {
  readonly event: string | null;
  readonly replyFrom: string | null;
  /** Epoch ms after which it resumes with a timeout result; null waits forever. */
  readonly timeoutAt: number | null;
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
}

/** How pending messages are handled while a run is in flight. */
export type MessagePolicy = 'cancel-and-merge' | 'queue';

/** Per-agent-type limits copied into each session's context (so a snapshot is self-describing). */
export interface SessionLimits {
  readonly policy: MessagePolicy;
  /** Most messages one merged batch may hold. */
  readonly maxMerge: number;
  /** A batch stops absorbing new messages once it has been running this long. */
  readonly maxMergeDelayMs: number;
  /** Attempts per batch before it becomes a dead letter. */
  readonly maxAttempts: number;
  readonly retryBaseMs: number;
  readonly retryCapMs: number;
}
