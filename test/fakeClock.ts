// A fake clock for the runtime (scheduler, statechart timers, handler ctx.now): time moves only
// when the test advances it, so months pass in milliseconds. The only fake besides the LLM.
import type { Clock } from '../runtime/clock.js';

interface Timer { id: number; at: number; fn: (...args: unknown[]) => void }

export class FakeClock implements Clock {
  private t: number;
  private timers: Timer[] = [];
  private nextId = 1;

  constructor(start: number | Date) {
    this.t = typeof start === 'number' ? start : start.getTime();
  }

  now = (): number => this.t;

  setTimeout = (fn: (...args: unknown[]) => void, ms: number): unknown => {
    const id = this.nextId++;
    this.timers.push({ id, at: this.t + Math.max(0, ms), fn });
    return id;
  };

  clearTimeout = (id: unknown): void => {
    this.timers = this.timers.filter((x) => x.id !== id);
  };

  /** Number of pending timers. */
  pending(): number { return this.timers.length; }

  /**
   * Moves time to `target`, firing every timer due on the way in time order (each at its own
   * instant) and letting real async work (database, NATS) settle for `settleMs` after each.
   */
  async advanceTo(target: number, settleMs = 15): Promise<void> {
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this.timers[0];
      if (!next || next.at > target) break;
      this.timers.shift();
      this.t = Math.max(this.t, next.at);
      next.fn();
      await new Promise((r) => setTimeout(r, settleMs));
    }
    this.t = Math.max(this.t, target);
  }

  advance(ms: number, settleMs?: number): Promise<void> {
    return this.advanceTo(this.t + ms, settleMs);
  }
}
