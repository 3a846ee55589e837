/**
 * Owns "one at a time per key": operations queued under the same key run strictly one after the
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
