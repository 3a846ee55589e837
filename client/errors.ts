/**
 * Errors the typed client raises: `RpcError` when the server answered with a JSON-RPC error,
 * `ConnectionError` when no answer could be had (refused, lost, timed out). Match on the class
 * and on `type`, never on messages.
 */

/** The server's JSON-RPC error, with the stable application code it carries. */
export class RpcError extends Error {
  override readonly name = 'RpcError';
  /** JSON-RPC error number (negative for protocol faults, 4xxx/5xxx for application errors). */
  readonly code: number;
  /** Stable code name, e.g. `UNKNOWN_SESSION`, `INVALID_TRANSITION`, `INVALID_PARAMS`, `METHOD_NOT_FOUND`. */
  readonly type: string;
  /** True when the same call may succeed later (rate limit, NATS or store outage). */
  readonly retryable: boolean;
  /** The full `error.data` object (e.g. `state` of an invalid transition, `issues` of invalid params, `requestId` of an internal error). */
  readonly data: Readonly<Record<string, unknown>>;
  constructor(code: number, message: string, data: unknown) {
    super(message);
    this.code = code;
    const d = data !== null && typeof data === 'object' ? (data as Record<string, unknown>) : {};
    this.data = d;
    this.type = typeof d.type === 'string' ? d.type : PROTOCOL_TYPES[code] ?? 'UNKNOWN';
    this.retryable = d.retryable === true;
  }
}

const PROTOCOL_TYPES: Readonly<Record<number, string>> = {
  [-32700]: 'PARSE_ERROR',
  [-32600]: 'INVALID_REQUEST',
  [-32601]: 'METHOD_NOT_FOUND',
  [-32602]: 'INVALID_PARAMS',
  [-32603]: 'INTERNAL',
};

/** Why a call got no answer. */
export type ConnectionErrorType = 'CONNECT_FAILED' | 'UNAUTHORIZED' | 'FORBIDDEN' | 'CONNECTION_LOST' | 'TIMEOUT' | 'CLOSED';

/** No answer from the server: it could not be reached, refused the connection, or the connection dropped mid-call. */
export class ConnectionError extends Error {
  override readonly name = 'ConnectionError';
  readonly type: ConnectionErrorType;
  /** HTTP status of a refused handshake (401, 403), when the WebSocket implementation reports it. */
  readonly status: number | undefined;
  /** A lost connection or a timeout may succeed on retry; a refusal (401/403) or a closed client will not. */
  readonly retryable: boolean;
  constructor(type: ConnectionErrorType, message: string, opts: { status?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.type = type;
    this.status = opts.status;
    this.retryable = type === 'CONNECT_FAILED' || type === 'CONNECTION_LOST' || type === 'TIMEOUT';
  }
}
