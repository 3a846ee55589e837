/**
 * Owns how the HTTP ingress (`POST /agents/:id/messages`, `GET /agents/:id/stream`, …) reports
 * errors: the same codes and types as the JSON-RPC API (through `toRpcError`), as
 * `{ error: { code, type, message, retryable, … } }` with the HTTP status that names the class
 * of fault, plus the few faults only plain HTTP can have (no token, foreign origin, unknown
 * route, wrong method or media type), which /rpc never returns because it refuses at the
 * WebSocket handshake.
 */
import { JSONRPCErrorException } from 'json-rpc-2.0';
import { PROTOCOL_ERRORS } from '../../client/index.js';
import { toRpcError } from './rpcErrors.js';

/** Faults only the HTTP routes have, with their codes (4400 + HTTP status) and statuses. */
export const HTTP_ONLY_ERRORS = {
  UNAUTHORIZED: { code: 4401, status: 401 },
  FORBIDDEN: { code: 4403, status: 403 },
  NOT_FOUND: { code: 4404, status: 404 },
  METHOD_NOT_ALLOWED: { code: 4405, status: 405 },
  UNSUPPORTED_MEDIA_TYPE: { code: 4415, status: 415 },
} as const;
export type HttpOnlyErrorType = keyof typeof HTTP_ONLY_ERRORS;

/** An HTTP-only fault, with headers the response must carry (`Allow`, `WWW-Authenticate`). */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(readonly type: HttpOnlyErrorType, message: string, readonly headers: Readonly<Record<string, string>> = {}) {
    super(message);
  }
}

/** HTTP status of an API error type; `retryable` decides for the store and unknown 5xxx types. */
const STATUS_OF: Readonly<Record<string, number>> = {
  PARSE_ERROR: 400, INVALID_REQUEST: 400, INVALID_PARAMS: 400, UNSTORABLE_INPUT: 400, INVALID_SESSION_ID: 400, INVALID_ARGUMENT: 400,
  UNKNOWN_AGENT_TYPE: 400, UNKNOWN_SESSION: 404, POINT_NOT_RECORDED: 404, SESSION_EXISTS: 409, INVALID_TRANSITION: 409, SESSION_STOPPED: 409, SESSION_BUSY: 409,
  STALE_VERSION: 409, STORE_DATA: 422, PAYLOAD_TOO_LARGE: 413, RATE_LIMITED: 429, MAILBOX_FULL: 429, MIGRATION_FAILED: 503, NOT_READY: 503, STORE_UNAVAILABLE: 503, FENCED: 503,
  TIMEOUT: 504, UNKNOWN_WAITPOINT: 404, WAITPOINT_CONFLICT: 409, WAITPOINT_CLOSED: 410,
};

/** The body of every HTTP error answer. */
export interface HttpErrorBody {
  readonly error: { readonly code: number; readonly type: string; readonly message: string; readonly retryable: boolean; readonly [k: string]: unknown };
}

/** An error answer ready to send. */
export interface HttpErrorAnswer {
  readonly status: number;
  readonly body: HttpErrorBody;
  readonly headers: Readonly<Record<string, string>>;
}

/** The JSON-RPC parse error, for a body that is not JSON (same code and type as a bad frame). */
export function parseError(): JSONRPCErrorException {
  return new JSONRPCErrorException('Parse error: the body is not valid JSON', PROTOCOL_ERRORS.PARSE_ERROR, { type: 'PARSE_ERROR', retryable: false });
}

/**
 * Maps anything a route throws to the answer to send, so HTTP clients match on the same
 * `type` as JSON-RPC clients. `logInternal` gets the cause of an INTERNAL error (the client only
 * sees its request id).
 */
export function toHttpError(e: unknown, logInternal: (requestId: string, err: unknown) => void): HttpErrorAnswer {
  if (e instanceof HttpError) {
    const { code, status } = HTTP_ONLY_ERRORS[e.type];
    return { status, body: { error: { code, type: e.type, message: e.message, retryable: false } }, headers: e.headers };
  }
  const rpc = toRpcError(e, logInternal);
  const details: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(rpc.data)) if (!['type', 'retryable', 'code', 'message'].includes(k)) details[k] = v;
  const rawType = rpc.data.type;
  const rawRetryable = rpc.data.retryable;
  const type = typeof rawType === 'string' ? rawType : 'INTERNAL';
  const retryable = rawRetryable === true;
  const status = STATUS_OF[type] ?? (retryable ? 503 : 500);
  // Retry-After in whole seconds: the limiter's own wait when it says (a tenant's rate), else 1.
  const wait = typeof details.retryAfterMs === 'number' ? Math.max(1, Math.ceil(details.retryAfterMs / 1000)) : 1;
  const headers: Record<string, string> = status === 429 || status === 503 ? { 'Retry-After': String(wait) } : {};
  return { status, body: { error: { code: rpc.code, type, message: rpc.message, retryable, ...details } }, headers };
}
