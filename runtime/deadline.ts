/**
 * Deadlines for waits that a dead peer could stretch forever (a close on a lost connection, a
 * drain with the server gone): every wait in shutdown and restart paths has one.
 */

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

/** Rejects with `TimeoutError`-named error when `p` has not settled after `ms`. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => { t = setTimeout(() => { reject(Object.assign(new Error(`${what} timed out after ${ms} ms`), { name: 'TimeoutError' })); }, ms); }),
    ]);
  } finally {
    clearTimeout(t);
  }
}
