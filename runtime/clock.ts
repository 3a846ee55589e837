/**
 * Owns the runtime's notion of time: every timer and deadline the runtime arms goes through a
 * `Clock`, so tests can drive time with a fake one (test/fakeClock.ts) instead of sleeping.
 */

/** Time source and timers; the default is the real clock, tests inject a fake one. */
export interface Clock {
  now(): number;
  setTimeout(fn: (...args: unknown[]) => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
}

/** The wall clock and Node's timers. */
export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => { clearTimeout(id as NodeJS.Timeout); },
};
