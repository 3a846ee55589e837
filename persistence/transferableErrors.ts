/**
 * Owns how an error crosses a thread boundary (the PGlite worker): structured clone keeps an
 * `Error`'s message but drops its class and its fields, and the runtime matches store errors
 * by class (`instanceof StaleVersionError`) and by `code`/`retryable`. `serializeError` turns
 * any thrown value into plain data; `reviveError` rebuilds it on the other side as an instance
 * of the same class from `errors.ts` with the same own fields, cause and (worker) stack.
 *
 * New `StoreError` subclasses exported from `errors.ts` are found by name automatically. An
 * error that is not a store error comes back as the built-in class of its name (`TypeError`,
 * `RangeError`, …) or a plain `Error` that keeps its `name` and fields (e.g. a driver's
 * SQLSTATE `code`), so callers inspecting those see what an in-thread store would give them.
 */
import { inspect } from 'node:util';
import * as storeErrors from './errors.js';
import { StoreError } from './errors.js';

/** An error as plain, structured-cloneable data. */
export interface SerializedError {
  readonly name: string;
  readonly message: string;
  readonly stack: string | undefined;
  /** Own enumerable fields that survive structured clone (`code`, `retryable`, `sessionId`, …). */
  readonly fields: Readonly<Record<string, unknown>>;
  /** The `cause`, when there is one: another error, or a plain value. */
  readonly cause?: { readonly error: SerializedError } | { readonly value: unknown };
  /** Set when the thrown value was not an `Error` at all (`throw 'text'`). */
  readonly thrown?: { readonly value: unknown };
}

type ErrorClass = new (...args: never[]) => Error;

/** Store error classes by class name, from the module's exports (so a new subclass needs no change here). */
const STORE_CLASSES: ReadonlyMap<string, ErrorClass> = new Map(
  Object.values(storeErrors)
    .filter((v): v is typeof StoreError => typeof v === 'function' && (v === StoreError || v.prototype instanceof StoreError))
    .map((c) => [c.name, c as unknown as ErrorClass]),
);

const BUILTIN_CLASSES: ReadonlyMap<string, ErrorClass> = new Map<string, ErrorClass>([
  ['Error', Error], ['TypeError', TypeError], ['RangeError', RangeError], ['SyntaxError', SyntaxError],
  ['ReferenceError', ReferenceError], ['EvalError', EvalError], ['URIError', URIError],
]);

/** Causes nest rarely more than twice (store error → driver error); a cycle must not recurse forever. */
const MAX_CAUSE_DEPTH = 8;

/**
 * Plain data for any thrown value, safe to `postMessage`. Fields that cannot be cloned
 * (functions, handles) are left out rather than failing the whole reply.
 */
export function serializeError(err: unknown, depth = 0): SerializedError {
  if (!(err instanceof Error)) {
    return { name: 'Error', message: String(err), stack: undefined, fields: {}, thrown: { value: cloneable(err) ? err : inspect(err) } };
  }
  const fields: Record<string, unknown> = {};
  for (const key of Object.keys(err)) {
    if (key === 'cause') continue;
    const value = (err as unknown as Record<string, unknown>)[key];
    if (cloneable(value)) fields[key] = value;
  }
  const base = { name: err.name, message: err.message, stack: err.stack, fields };
  if (!('cause' in err) || err.cause === undefined) return base;
  if (err.cause instanceof Error && depth < MAX_CAUSE_DEPTH) return { ...base, cause: { error: serializeError(err.cause, depth + 1) } };
  return { ...base, cause: { value: cloneable(err.cause) ? err.cause : inspect(err.cause) } };
}

/**
 * The error `serializeError` described, as an instance of the same class: a `StoreError`
 * subclass (so `instanceof` and `code` work as if the store ran in this thread), a built-in
 * error class, or an `Error` carrying the original `name`.
 */
export function reviveError(s: SerializedError): unknown {
  if (s.thrown) return s.thrown.value;
  const cause = s.cause === undefined ? undefined : 'error' in s.cause ? reviveError(s.cause.error) : s.cause.value;
  const err = s.cause === undefined ? new Error(s.message) : new Error(s.message, { cause });
  const cls = STORE_CLASSES.get(s.name) ?? BUILTIN_CLASSES.get(s.name);
  if (cls) Object.setPrototypeOf(err, cls.prototype as object);
  // Own fields as class field initialisers define them (store errors' name, code, retryable, …).
  for (const [key, value] of Object.entries(s.fields)) {
    Object.defineProperty(err, key, { value, writable: true, enumerable: true, configurable: true });
  }
  if (!cls && s.name !== 'Error' && !('name' in s.fields)) {
    Object.defineProperty(err, 'name', { value: s.name, writable: true, enumerable: false, configurable: true });
  }
  if (s.stack !== undefined) Object.defineProperty(err, 'stack', { value: s.stack, writable: true, enumerable: false, configurable: true });
  return err;
}

function cloneable(value: unknown): boolean {
  if (value === null || value === undefined) return true;
  const t = typeof value;
  if (t === 'string' || t === 'number' || t === 'boolean' || t === 'bigint') return true;
  if (t === 'function' || t === 'symbol') return false;
  try {
    structuredClone(value);
    return true;
  } catch {
    return false;
  }
}
