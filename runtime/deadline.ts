/**
 * Deadlines for waits that a dead peer could stretch forever (a close on a lost connection, a
 * drain with the server gone): every wait in shutdown and restart paths has one, and so has
 * every session command a client waits on.
 */
import { AgentryError } from '../actors/errors.js';

/** Waits for `p` to settle (either way), for at most `ms`; true when it settled in time. */
export async function settleWithin(p: Promise<unknown> | undefined, ms: number): Promise<boolean> {
  if (!p) return true;
  let t: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    p.then(() => true, () => true),
    new Promise<boolean>((r) => { t = setTimeout(() => { r(false); }, ms); }),
  ]);
  clearTimeout(t);
  return settled;
}

/** Rejects with `TimeoutError`-named error (or `timeoutError()`) when `p` has not settled after `ms`. */
export async function within<T>(p: Promise<T>, ms: number, what: string, timeoutError?: () => Error): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        t = setTimeout(() => { reject(timeoutError?.() ?? Object.assign(new Error(`${what} timed out after ${ms} ms`), { name: 'TimeoutError' })); }, ms);
      }),
    ]);
  } finally {
    clearTimeout(t);
  }
}

/**
 * A session command's answer within `ms`: past it the caller gets a retryable `TIMEOUT` while
 * the command goes on (a commit waiting out a store that refuses writes lands when the store is
 * back). Without it a command on the session's own node waited as long as the outage — a
 * JSON-RPC call held open for good — while the same command sent from another node timed out.
 * The answer says the outcome is unknown, so a client reads the session before it retries.
 */
export function commandWithin<T>(p: Promise<T>, ms: number, op: string, sessionId: string): Promise<T> {
  return within(p, ms, op, () => new AgentryError('TIMEOUT', `${op} on session ${sessionId} did not complete within ${ms} ms (the store is slow or refusing writes); it may still take effect when the store answers: read the session before retrying`, { retryable: true }));
}
