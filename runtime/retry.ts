/**
 * Owns the runtime's one rule for store calls during an outage: a call that fails because the
 * store is unavailable (a `STORE…` error not marked unretryable) is tried again with doubling
 * delays from 50 ms up to 2 s, while readiness reports the store down; any other error (data,
 * fencing, a stale version) is the caller's, at once. `stopping` ends the wait at shutdown.
 */

/** Calls `fn` until it succeeds, retrying only store outages (see the module comment). */
export async function retryWhileStoreDown<T>(fn: () => Promise<T>, stopping: () => boolean): Promise<T> {
  let delay = 50;
  for (;;) {
    try { return await fn(); } catch (e) {
      if ((e as { retryable?: boolean }).retryable === false || !(e as { code?: string }).code?.startsWith('STORE')) throw e;
      if (stopping()) throw e;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 2000);
    }
  }
}
