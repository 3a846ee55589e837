/**
 * Owns "one at a time per key" and "a few at a time": operations queued under the same key run strictly one after the
 * other, each after the previous one settled (fulfilled or rejected); different keys do not wait
 * for each other. The runtime runs a partition's lease acquisitions and releases this way: a
 * release still closing its consumer when the partition was taken again dropped the sessions the
 * new feed had just filled, and their messages were later acked as duplicates (lost).
 */
export type KeyedSerial<K> = (key: K, op: () => Promise<void>) => Promise<void>;

/** A queue per key; a key's entry is forgotten once its last operation settled. */
export function createKeyedSerial<K>(): KeyedSerial<K> & { pending(): number } {
  const tails = new Map<K, Promise<void>>();
  const run = (key: K, op: () => Promise<void>): Promise<void> => {
    const result = (tails.get(key) ?? Promise.resolve()).then(op);
    const tail = result.catch(() => undefined);
    tails.set(key, tail);
    void tail.then(() => { if (tails.get(key) === tail) tails.delete(key); });
    return result;
  };
  return Object.assign(run, { pending: () => tails.size });
}

/** Runs a function when fewer than the limit run; see `createLimiter`. */
export type Limiter = <T>(fn: () => Promise<T>) => Promise<T>;

/**
 * At most `n` of the functions given run at once; the others wait, in the order they came, and a
 * function that fails frees its place like one that succeeds. For work that a burst would turn
 * into a storm on a shared server (every partition consumer re-created after a reconnect).
 */
export function createLimiter(n: number): Limiter {
  let running = 0;
  const waiting: (() => void)[] = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (running >= n) await new Promise<void>((r) => { waiting.push(r); });
    else running++;
    try {
      return await fn();
    } finally {
      // The place passes straight to the next in line (running stays the same), or is freed.
      const next = waiting.shift();
      if (next) next(); else running--;
    }
  };
}
