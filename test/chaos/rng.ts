// A small seeded random generator (mulberry32) so a chaos run is repeatable from its seed:
// the same seed picks the same faults, nodes, durations, poison and timers.

/** Random numbers in [0, 1) from a 32-bit seed, with the helpers the chaos runner needs. */
export class Rng {
  private s: number;

  constructor(seed: number) { this.s = seed >>> 0; }

  /** The next number in [0, 1). */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number { return min + Math.floor(this.next() * (max - min + 1)); }

  /** One element of a non-empty list. */
  pick<T>(xs: readonly T[]): T { return xs[Math.floor(this.next() * xs.length)]!; }
}
