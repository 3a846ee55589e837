/**
 * Owns what the Cluster page derives from `listNodes` / `getPartitions`: a stable colour per
 * node (so a node keeps its colour between refreshes and in the grid, table and legend alike),
 * partition lists as ranges, and how alarming a lease renewal lag is against the lease TTL.
 * Pure functions, no DOM: the model tests run them in Node.
 */

/** How many distinct owner colours the stylesheet defines (`.owner-0` … `.owner-9`). */
export const OWNER_COLOURS = 10;

/**
 * Colour slot per node id: by sorted id, so the assignment does not depend on answer order.
 * Owners missing from the node list (a lease outliving its node's heartbeat) get one too.
 */
export function ownerSlots(nodeIds: Iterable<string | null>): Map<string, number> {
  const ids = [...new Set([...nodeIds].filter((n): n is string => n !== null))].sort();
  return new Map(ids.map((id, i) => [id, i % OWNER_COLOURS]));
}

/**
 * Partition numbers as ranges: `[0, 1, 2, 3, 8, 10, 11]` → `0–3, 8, 10–11`.
 *
 * @example
 * partitionRanges([5, 0, 1, 2]) // '0–2, 5'
 */
export function partitionRanges(list: readonly number[]): string {
  const sorted = [...list].sort((a, b) => a - b);
  const out: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    out.push(j === i ? String(sorted[i]) : `${sorted[i]}–${sorted[j]}`);
    i = j + 1;
  }
  return out.join(', ');
}

/** A lease lag's level: `bad` from 90% of the TTL (partitions suspended), `warn` from half, else `ok`. */
export function lagLevel(lagMs: number | null, ttlMs: number): 'ok' | 'warn' | 'bad' | 'unknown' {
  if (lagMs === null) return 'unknown';
  if (lagMs >= ttlMs * 0.9) return 'bad';
  if (lagMs >= ttlMs / 2) return 'warn';
  return 'ok';
}
