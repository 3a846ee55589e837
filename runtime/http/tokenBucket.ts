/**
 * A token bucket: the per-connection rate limit of the control API. Bursts up to `capacity`
 * requests, then `ratePerSec` sustained. Time comes from a function so tests can drive it.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(private readonly ratePerSec: number, private readonly capacity: number, private readonly now: () => number = () => performance.now()) {
    this.tokens = capacity;
    this.last = now();
  }

  /** Takes one token if there is one; false means the caller is over its rate. */
  take(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((t - this.last) / 1000) * this.ratePerSec);
    this.last = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
