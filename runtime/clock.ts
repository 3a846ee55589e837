/**
 * Owns the runtime's notion of time: every timer and deadline the runtime arms goes through a
 * `Clock`, so tests can drive time with a fake one (test/fakeClock.ts) instead of sleeping.
 * With Postgres as the store, the runtime's clock follows the store's (runtime/storeClock.ts), so
 * that nodes whose wall clocks disagree still agree on when a timer is due.
 */

/** Time source and timers; the default is the real clock, tests inject a fake one. */
export interface Clock {
  now(): number;
  setTimeout(fn: (...args: unknown[]) => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
  /**
   * Registers `fn` to run after the clock was corrected forward by more than time passing (a
   * clock synchronised with the store's, whose `earliestNow()` moved on at a sync): a timer armed
   * for a due time before the correction would fire late by the correction, so its owner re-arms
   * it. Returns the unregistration. Absent on clocks that are never corrected.
   */
  onAdjust?(fn: () => void): () => void;
  /**
   * The earliest the authority's time can be now, at most `now()`: a clock that only estimates
   * its authority's time (runtime/storeClock.ts: Postgres' clock, known within a round trip) says
   * here when a due time has certainly come, and timers fire by it so that none fires early.
   * Absent: `now()` is exact.
   */
  earliestNow?(): number;
}

/** The wall clock and Node's timers. */
export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => { clearTimeout(id as NodeJS.Timeout); },
};
