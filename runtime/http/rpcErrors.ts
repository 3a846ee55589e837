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
import { findStorableProblem, unstorableCharIndex, type StorableProblem } from '../../persistence/index.js';

/** A JSON-RPC error object as sent. */
export interface RpcErrorObject {
  readonly code: number;
  readonly message: string;
  readonly data: Readonly<Record<string, unknown>>;
}

/** What a params schema says of its field `key` (its `.describe()` text), if anything. */
function describeField(schema: z.ZodType | undefined, key: string): string | undefined {
  const shape = (schema as { shape?: Record<string, { description?: string } | undefined> } | undefined)?.shape;
  return shape && Object.prototype.hasOwnProperty.call(shape, key) ? shape[key]?.description : undefined;
}

/**
 * The message of one issue. A required param that is missing says so and what it holds (zod
 * reports a missing `z.unknown()` field as "expected nonoptional", which names neither).
 */
function issueMessage(i: z.core.$ZodIssue, schema: z.ZodType | undefined): string {
  const missing = i.code === 'invalid_type' && i.path.length === 1 && (i.expected === 'nonoptional' || / received undefined$/.test(i.message));
  if (!missing) return i.message;
  const what = describeField(schema, String(i.path[0]));
  return `required${what ? ` — ${what}` : ''}`;
}

/**
 * The exception a method throws when its params do not match its schema (`schema`, when given,
 * lets a missing param's message say what the param holds).
 */
export function invalidParams(error: z.ZodError, schema?: z.ZodType): JSONRPCErrorException {
  const issues = error.issues.slice(0, 20).map((i) => ({ path: i.path.map(String), code: i.code, message: issueMessage(i, schema) }));
  const first = issues[0];
  const where = first && first.path.length > 0 ? `${first.path.join('.')}: ` : '';
  return new JSONRPCErrorException(`Invalid params: ${where}${first?.message ?? 'invalid'}`, PROTOCOL_ERRORS.INVALID_PARAMS, { type: 'INVALID_PARAMS', retryable: false, issues });
}

/** `$.k` / `$["odd key"]` / `$[3]`: the param's place, as the first step of a JSONPath. */
function paramStep(k: string | number): string {
  return typeof k === 'number' ? `[${k}]` : /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`;
}

/**
 * Why Postgres could not store these params, or null: a NUL or lone surrogate in any string or
 * key, or a param value nested deeper than `maxDepth` (the runtime's `maxJsonDepth`; each param
 * counts from its own value, so `{ message: [[1]] }` is 2 deep). Iterative: safe on any depth.
 * Checked for every method before its schema or implementation runs, so poison never reaches
 * NATS, a handler or a query (a NUL in `listAgents`' `type` would otherwise fail in Postgres).
 */
export function paramsStorableProblem(params: unknown, maxDepth: number): StorableProblem | null {
  if (params === null || typeof params !== 'object') return findStorableProblem(params, maxDepth);
  const entries: [string | number, unknown][] = Array.isArray(params) ? params.map((v: unknown, i) => [i, v]) : Object.entries(params);
  for (const [k, v] of entries) {
    if (typeof k === 'string') {
      const i = unstorableCharIndex(k);
      if (i >= 0) return findStorableProblem({ [k]: null }, 1);
    }
    const p = findStorableProblem(v, maxDepth);
    if (p !== null) {
      const path = `$${paramStep(k)}${p.path.slice(1)}`;
      return { ...p, path, message: p.message.replace(p.path, () => path) };
    }
  }
  return null;
}

/**
 * The refusal of unstorable params: JSON-RPC invalid params (-32602, HTTP 400) with
 * `data.type` UNSTORABLE_INPUT and what (`data.problem`: nul, lone-surrogate, too-deep) and
 * where (`data.path`) it was found.
 */
export function unstorableInput(p: StorableProblem): JSONRPCErrorException {
  return new JSONRPCErrorException(`Invalid params: cannot be stored: ${p.message}`, codes.UNSTORABLE_INPUT, {
    type: 'UNSTORABLE_INPUT', retryable: false, problem: p.kind, path: p.path,
  });
}

/** Throws `unstorableInput` when `paramsStorableProblem` finds something. */
export function assertStorableParams(params: unknown, maxDepth: number): void {
  const p = paramsStorableProblem(params, maxDepth);
  if (p !== null) throw unstorableInput(p);
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
