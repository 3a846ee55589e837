/**
 * Typed errors of the runtime, with stable codes. The same code and `retryable` flag reach
 * JSON-RPC clients (as `error.data.type` / `error.data.retryable`), so never match on messages.
 */

/** Stable application error codes; JSON-RPC numeric codes are assigned in `codes`. */
export type ErrorCode =
  | 'INVALID_SESSION_ID'
  | 'INVALID_ARGUMENT'
  | 'UNKNOWN_SESSION'
  | 'POINT_NOT_RECORDED'
  | 'UNKNOWN_AGENT_TYPE'
  | 'SESSION_EXISTS'
  | 'INVALID_TRANSITION'
  | 'SESSION_STOPPED'
  | 'SESSION_BUSY'
  | 'UNKNOWN_WAITPOINT'
  | 'WAITPOINT_CONFLICT'
  | 'WAITPOINT_CLOSED'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSTORABLE_INPUT'
  | 'NOT_READY'
  | 'TIMEOUT'
  | 'HANDLER_FAILED'
  | 'TERMINAL'
  | 'CONFIG_INVALID'
  | 'PARTITION_MISMATCH'
  | 'RATE_LIMITED'
  | 'BUDGET_EXCEEDED'
  | 'TENANT_MISMATCH'
  | 'STORE_ERROR'
  | 'STORE_UNAVAILABLE'
  | 'SCHEMA_TOO_NEW'
  | 'STALE_VERSION'
  | 'FENCED'
  | 'STORE_DATA'
  | 'MIGRATION_FAILED'
  | 'MAILBOX_FULL'
  | 'INTERNAL';

/** JSON-RPC error numbers, outside the reserved -32768..-32000 range (except UNSTORABLE_INPUT: a params fault). */
export const codes: Readonly<Record<ErrorCode, number>> = Object.freeze({
  INVALID_SESSION_ID: 4001,
  INVALID_ARGUMENT: 4002,
  UNKNOWN_SESSION: 4004,
  /** forkSession: the flight recorder holds no state for that point (pruned by retention, coalesced into a later commit, or never reached). */
  POINT_NOT_RECORDED: 4041,
  UNKNOWN_AGENT_TYPE: 4005,
  SESSION_EXISTS: 4009,
  INVALID_TRANSITION: 4010,
  SESSION_STOPPED: 4011,
  /** A message with turn policy `reject` arrived while the session ran a turn; it was refused (retry later). */
  SESSION_BUSY: 4012,
  /** No waitpoint has this id (never had: ids are unguessable capabilities). */
  UNKNOWN_WAITPOINT: 4014,
  /** The waitpoint was already completed with a different value (the same value is a no-op success). */
  WAITPOINT_CONFLICT: 4015,
  /** The waitpoint is no longer pending: it timed out (or is past its expiry) or was cancelled. */
  WAITPOINT_CLOSED: 4016,
  PAYLOAD_TOO_LARGE: 4013,
  /**
   * Input Postgres could not store (a NUL character, a lone UTF-16 surrogate, JSON nested deeper
   * than `maxJsonDepth`): refused at the door. A fault of the params, so it is sent as JSON-RPC's
   * invalid params, with `data.type` UNSTORABLE_INPUT (HTTP: 400).
   */
  UNSTORABLE_INPUT: -32602,
  NOT_READY: 5003,
  TIMEOUT: 5004,
  HANDLER_FAILED: 5010,
  TERMINAL: 5011,
  CONFIG_INVALID: 5020,
  PARTITION_MISMATCH: 5021,
  /** A control-API client sent requests faster than its connection's rate limit. */
  RATE_LIMITED: 4029,
  /** A budget reservation (ctx.budget.reserve) would break a limit: the turn is aborted, paused or asks a person, per the limit's policy. */
  BUDGET_EXCEEDED: 4030,
  /** A message or command names another tenant than the session's (a session's tenant never changes). */
  TENANT_MISMATCH: 4031,
  /** Store errors (persistence/errors.ts) keep their codes on the wire. */
  STORE_ERROR: 5030,
  STORE_UNAVAILABLE: 5031,
  SCHEMA_TOO_NEW: 5032,
  STALE_VERSION: 5033,
  FENCED: 5034,
  /** The store refused a value as data (persistence StoreDataError); retrying cannot help. */
  STORE_DATA: 5035,
  INTERNAL: 5000,
  /**
   * The session's stored snapshot cannot be taken by the running agent code (no migrate path,
   * a migrate step threw, an invalid migrated state, a snapshot of a newer version): the session
   * keeps its old snapshot and its messages until a deploy that can take it. `data.reason` says which.
   */
  MIGRATION_FAILED: 5040,
  /** The session already holds `maxMailbox` messages not yet handled: this one was refused (HTTP 429). Retry later. */
  MAILBOX_FULL: 4032,
});

/** Base class: every error the runtime raises on purpose has a code and says whether a retry can help. */
export class AgentryError extends Error {
  override readonly name: string = 'AgentryError';
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly details: Readonly<Record<string, unknown>> | undefined;
  constructor(code: ErrorCode, message: string, opts: { retryable?: boolean; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.retryable = opts.retryable ?? false;
    this.details = opts.details;
  }
}

/** A session id that cannot be a NATS subject token (or is too long). */
export class InvalidSessionIdError extends AgentryError {
  override readonly name = 'InvalidSessionIdError';
  constructor(id: unknown, reason: string) {
    super('INVALID_SESSION_ID', `invalid session id ${JSON.stringify(id)}: ${reason}`, { details: { reason } });
  }
}

/** A command that the session's current state cannot accept (e.g. waking a stopped session). */
export class InvalidTransitionError extends AgentryError {
  override readonly name = 'InvalidTransitionError';
  constructor(readonly sessionId: string, readonly state: string, readonly command: string) {
    super('INVALID_TRANSITION', `session ${sessionId} is ${state}: cannot ${command}`, { details: { state, command } });
  }
}

/**
 * A message sent with turn policy `reject` reached the session while it was running a turn: it
 * was refused (its history row says `rejected`, a dead letter `busy` keeps it). Retry later.
 */
export class SessionBusyError extends AgentryError {
  override readonly name = 'SessionBusyError';
  constructor(readonly sessionId: string, readonly seq: number) {
    super('SESSION_BUSY', `session ${sessionId} is running a turn: message ${seq} was rejected (turn policy reject)`, { retryable: true, details: { seq } });
  }
}

/** No waitpoint has this id. */
export class UnknownWaitpointError extends AgentryError {
  override readonly name = 'UnknownWaitpointError';
  constructor(readonly waitpointId: string) {
    super('UNKNOWN_WAITPOINT', 'no such waitpoint');
  }
}

/** A waitpoint completed before with another value: completion is single-use. */
export class WaitpointConflictError extends AgentryError {
  override readonly name = 'WaitpointConflictError';
  constructor(readonly waitpointId: string) {
    super('WAITPOINT_CONFLICT', 'the waitpoint was already completed with a different value', { details: { status: 'completed' } });
  }
}

/** A waitpoint that timed out or was cancelled cannot be completed (nor cancelled again). */
export class WaitpointClosedError extends AgentryError {
  override readonly name = 'WaitpointClosedError';
  constructor(readonly waitpointId: string, readonly status: string) {
    super('WAITPOINT_CLOSED', `the waitpoint is ${status}`, { details: { status } });
  }
}

/** Throw from a handler to fail the batch without retries (it goes straight to the dead letters). */
export class TerminalError extends AgentryError {
  override readonly name: string = 'TerminalError';
  constructor(message: string, opts: { cause?: unknown; code?: ErrorCode; details?: Record<string, unknown> } = {}) {
    super(opts.code ?? 'TERMINAL', message, opts);
  }
}

/**
 * `ctx.budget.reserve()` would break a limit (details: scope, key, metric, window, max, used,
 * requested, policy). Terminal: with policy `abort` the batch goes to the dead letters with
 * reason `budget`; with `pause` or `ask` the runtime holds the turn's messages instead (even
 * if the handler catches this), so retrying inside the handler cannot help either.
 */
export class BudgetExceededError extends TerminalError {
  override readonly name = 'BudgetExceededError';
  constructor(message: string, details: Record<string, unknown>) {
    super(message, { code: 'BUDGET_EXCEEDED', details });
  }
}

/** Turns anything thrown into an Error, so logging and dead letters always have a message. */
export function ensureError(e: unknown): Error {
  if (e instanceof Error) return e;
  return new Error(typeof e === 'string' ? e : JSON.stringify(e));
}

/** The shape of an error as stored in snapshots and dead letters (Errors do not serialize). */
export interface ErrorInfo {
  readonly message: string;
  readonly code: string;
  readonly terminal: boolean;
}

/** Reduces an error to the serializable facts the machine and the dead letters keep. */
export function errorInfo(e: unknown): ErrorInfo {
  const err = ensureError(e);
  const code = err instanceof AgentryError ? err.code : (err as { code?: unknown }).code;
  return { message: err.message, code: typeof code === 'string' ? code : 'HANDLER_FAILED', terminal: err instanceof TerminalError };
}
