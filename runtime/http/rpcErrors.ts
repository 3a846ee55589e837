/**
 * Owns the mapping from what a method throws to the JSON-RPC error a client sees: zod failures
 * become -32602 with the issues, typed errors (AgentryError, store errors: anything with a known
 * `code`) keep their stable code with `data.type` / `data.retryable`, and anything else becomes
 * INTERNAL with a request id to find the logged cause; never a stack or an internal message.
 */
import { randomUUID } from 'node:crypto';
import { JSONRPCErrorException } from 'json-rpc-2.0';
import type { z } from 'zod';
import { codes, type ErrorCode } from '../../actors/errors.js';
import { PROTOCOL_ERRORS } from '../../client/index.js';

/** A JSON-RPC error object as sent. */
export interface RpcErrorObject {
  readonly code: number;
  readonly message: string;
  readonly data: Readonly<Record<string, unknown>>;
}

/** The exception a method throws when its params do not match its schema. */
export function invalidParams(error: z.ZodError): JSONRPCErrorException {
  const issues = error.issues.slice(0, 20).map((i) => ({ path: i.path.map(String), code: i.code, message: i.message }));
  const first = issues[0];
  const where = first && first.path.length > 0 ? `${first.path.join('.')}: ` : '';
  return new JSONRPCErrorException(`Invalid params: ${where}${first?.message ?? 'invalid'}`, PROTOCOL_ERRORS.INVALID_PARAMS, { type: 'INVALID_PARAMS', retryable: false, issues });
}

/** An application error raised by the control plane itself (rate limit, limits of a connection). */
export function appError(code: ErrorCode, message: string, retryable = false): JSONRPCErrorException {
  return new JSONRPCErrorException(message, codes[code], { type: code, retryable });
}

/** Error messages may quote client input (an invalid id, say): never echo more than this. */
const MAX_MESSAGE = 1000;
function clip(s: string): string {
  return s.length > MAX_MESSAGE ? `${s.slice(0, MAX_MESSAGE)}…` : s;
}

function isKnownCode(c: unknown): c is ErrorCode {
  return typeof c === 'string' && Object.prototype.hasOwnProperty.call(codes, c);
}

function safeDetails(d: unknown): Record<string, unknown> {
  if (d === null || typeof d !== 'object') return {};
  try {
    return JSON.parse(JSON.stringify(d)) as Record<string, unknown>;
  } catch {
    return {};
  }
}

/**
 * Maps a thrown value to the error object to send. `logInternal` is called (with a fresh
 * request id) for errors the client only sees as INTERNAL, so operators can find the cause.
 */
export function toRpcError(e: unknown, logInternal: (requestId: string, err: unknown) => void): RpcErrorObject {
  if (e instanceof JSONRPCErrorException) {
    return { code: e.code, message: clip(e.message), data: (e.data ?? {}) as Record<string, unknown> };
  }
  const err = e as { code?: unknown; message?: unknown; retryable?: unknown; details?: unknown } | null;
  if (err && isKnownCode(err.code)) {
    const code = err.code;
    const data: Record<string, unknown> = { ...safeDetails(err.details), type: code, retryable: err.retryable === true };
    if (code === 'INTERNAL') {
      const requestId = randomUUID();
      data.requestId = requestId;
      logInternal(requestId, e);
    }
    return { code: codes[code], message: typeof err.message === 'string' ? clip(err.message) : code, data };
  }
  const requestId = randomUUID();
  logInternal(requestId, e);
  return { code: codes.INTERNAL, message: `internal error (request ${requestId})`, data: { type: 'INTERNAL', retryable: false, requestId } };
}
