/**
 * Owns the mapping from driver errors (`pg`, PGlite) to store errors. It is the only place
 * that inspects Postgres error codes, so retry and readiness logic can match by class.
 */
import { StoreDataError, StoreError, StoreUnavailableError } from './errors.js';

/** Socket-level failures reported by Node (`err.code`). */
const SOCKET_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH',
  'ENETUNREACH', 'EAI_AGAIN',
]);

/**
 * SQLSTATEs that mean the server is going away, not accepting work or too slow: 57P01
 * admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now, 53300 too_many_connections,
 * 57014 query_canceled (our statement_timeout). Class 08 (connection exceptions) is matched by prefix.
 *
 * And those where the server answers but cannot write, whatever the data: 25006
 * read_only_sql_transaction (a failover left the pool on a standby, or the database was made
 * read-only), 53000 insufficient_resources, 53100 disk_full, 53200 out_of_memory, 58000
 * system_error, 58030 io_error. They pass when an operator or a promotion fixes the server, so
 * they are outages (waited out, readiness down), never a record's fault: before 2026-11-29 they
 * reached callers raw, so a dead letter being stored dropped its session and restarted its feed
 * at every try, and an API call answered INTERNAL instead of a retryable code.
 */
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300', '57014', '25006', '53000', '53100', '53200', '58000', '58030']);

/** SQLSTATEs where the same transaction can succeed if run again: serialization failure, deadlock. */
const RETRYABLE_SQLSTATES = new Set(['40001', '40P01']);

/**
 * SQLSTATEs where the data itself is refused and a retry fails the same way: class 22 (data
 * exception: 22P05 unsupported Unicode escape (NUL in jsonb), 22021 bad byte sequence (NUL in
 * text), 22P02 invalid text representation (a lone surrogate in jsonb), 22001 value too long, …)
 * and class 54 (program limit exceeded: 54001 stack depth / statement too complex, 54000 a value
 * too large). PGlite reports the same SQLSTATEs as Postgres.
 */
const DATA_SQLSTATE = /^(22|54)[0-9A-Z]{3}$/;

/**
 * What the drivers throw before anything reaches the server when a parameter cannot be
 * serialized (`JSON.stringify` of a value nested too deep, a cycle, a bigint): as deterministic
 * as a data exception, and about the data.
 */
const SERIALIZE_MESSAGES = /Maximum call stack size exceeded|circular structure|serialize a BigInt/i;

/**
 * `pg` raises these without a code (the socket closed under it, the pool timed out or was
 * ended); PGlite says it is closed. Message text is the only signal the drivers give here.
 */
const UNAVAILABLE_MESSAGES = /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Cannot use a pool after calling end|PGlite is closed|Query read timeout/i;

/**
 * Turns any error thrown by a driver into a `StoreError` subclass when we know what it means,
 * so callers retry on `StoreUnavailableError`, never retry a `StoreDataError` (split the batch
 * and dead-letter the record instead), and never parse messages themselves. Store errors pass
 * through; unknown errors (bugs, constraint violations) are returned unchanged.
 */
export function normalizePgError(err: unknown): unknown {
  if (err instanceof StoreError) return err;
  if (isUnavailable(err)) {
    return new StoreUnavailableError(`store unavailable: ${messageOf(err)}`, { cause: err, splitBatch: isTimeout(err) });
  }
  const code = codeOf(err);
  if (code !== undefined && RETRYABLE_SQLSTATES.has(code)) {
    return new StoreError(`transaction aborted, safe to retry: ${messageOf(err)}`, { cause: err });
  }
  if (code !== undefined && DATA_SQLSTATE.test(code)) {
    return new StoreDataError(`the store refused the data (SQLSTATE ${code}): ${messageOf(err)}`, { cause: err, sqlState: code });
  }
  if ((err instanceof RangeError || err instanceof TypeError) && SERIALIZE_MESSAGES.test(err.message)) {
    return new StoreDataError(`a value cannot be serialized for the store: ${err.message}`, { cause: err });
  }
  return err;
}

function isUnavailable(err: unknown): boolean {
  // Node's happy-eyeballs connect reports every failed address in an AggregateError.
  if (err instanceof AggregateError && err.errors.some(isUnavailable)) return true;
  const code = codeOf(err);
  if (code !== undefined) {
    if (SOCKET_CODES.has(code) || UNAVAILABLE_SQLSTATES.has(code)) return true;
    if (/^08[0-9A-Z]{3}$/.test(code)) return true;
  }
  return err instanceof Error && UNAVAILABLE_MESSAGES.test(err.message);
}

/** A deadline passed (Postgres' statement_timeout, pg's client-side query_timeout): slow, maybe not gone. */
function isTimeout(err: unknown): boolean {
  return codeOf(err) === '57014' || (err instanceof Error && /Query read timeout/i.test(err.message));
}

function codeOf(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null || !('code' in err)) return undefined;
  const code = err.code;
  return typeof code === 'string' ? code : undefined;
}

function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message || codeOf(err) || err.name;
  return String(err);
}
