// The store-synchronised clock alone (runtime/storeClock.ts), on a simulated monotonic clock and a
// simulated store clock with round trips: `now()` is the wall clock where it agrees with the
// store's and within a round trip of the store's where it does not; `earliestNow()` (what timers
// fire by) is never ahead of the store's (also when the monotonic clock drifts); neither goes
// backwards; a forward correction re-arms; it runs on through a store outage; it warns about skew.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { HOLD_MAX_MS, StoreClock } from '../../runtime/storeClock.js';

const T0 = Date.UTC(2026, 0, 1);

/**
 * A node and its store. `mono` is the node's monotonic clock; the store's clock reads
 * `storeAt(mono)` (offset and rate set by the test); each read takes `up` ms to reach the
 * store and `down` ms back. The node's wall clock is the store's plus `wallSkew`.
 */
class World {
  mono = 1000;
  storeOffset = T0;
  /** Store ms per monotonic ms: above 1, the node's monotonic clock runs slow. */
  storeRate = 1;
  wallSkew = 0;
  up = 1;
  down = 1;
  failing = false;
  reads = 0;
  /** Round trips of the next reads (up, down), consumed in order; then `up`/`down`. */
  trips: [number, number][] = [];
  storeAt(m: number): number { return this.storeOffset + m * this.storeRate; }
  storeNow(): number { return this.storeAt(this.mono); }
  read = (): Promise<number> => {
    this.reads++;
    if (this.failing) return Promise.reject(new Error('connection refused'));
    const [u, d] = this.trips.shift() ?? [this.up, this.down];
    this.mono += u;
    const v = this.storeNow();
    this.mono += d;
    return Promise.resolve(v);
  };
}

const clocks: StoreClock[] = [];
afterEach(() => { for (const c of clocks.splice(0)) c.stop(); });

function harness(o: { warnMs?: number } = {}) {
  const w = new World();
  const lines: { level: number; msg: string; offsetMs?: number }[] = [];
  const logger = pino({ level: 'info' }, new Writable({
    write(chunk: Buffer, _enc, cb) { lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string }); cb(); },
  }));
  const clock = new StoreClock({ read: w.read, logger, everyMs: 3_600_000, warnMs: o.warnMs ?? 1000, monotonic: () => w.mono, wall: () => w.storeNow() + w.wallSkew });
  clocks.push(clock);
  return { w, clock, lines };
}

describe('StoreClock', () => {
  it('bounds the store\'s time by the sample with the shortest round trip; fires by the lower bound', async () => {
    const { w, clock } = harness();
    w.wallSkew = 60_000; // reads the upper bound
    w.trips = [[40, 40], [3, 5], [1, 0.5], [20, 1], [7, 7]];
    await clock.start();
    expect(w.reads).toBe(5);
    const earliest = clock.earliestNow();
    expect(Number.isInteger(earliest)).toBe(true); // due times are stored as bigint
    expect(earliest).toBeLessThanOrEqual(w.storeNow());
    expect(w.storeNow() - earliest).toBeLessThanOrEqual(1.5 + 1); // behind by at most the best round trip (+ rounding down)
    const now = clock.now();
    expect(now).toBeGreaterThanOrEqual(earliest);
    expect(now - w.storeNow()).toBeLessThanOrEqual(1.5); // ahead by at most the round trip
    expect(clock.status()).toMatchObject({ source: 'store', uncertaintyMs: 0.8 });
  });

  it('reads this node\'s wall clock exactly where it agrees with the store\'s (NTP works)', async () => {
    const { w, clock } = harness();
    w.up = 0.4;
    w.down = 0.4;
    w.mono = 1000.3;
    await clock.start();
    for (let i = 0; i < 50; i++) {
      w.mono += 617.3;
      expect(clock.now()).toBe(Math.floor(w.storeNow()));
      expect(clock.earliestNow()).toBeLessThanOrEqual(w.storeNow());
    }
  });

  it('keeps both bounds, also when this node\'s monotonic clock runs 90 ppm fast or slow', async () => {
    for (const rate of [1 - 90e-6, 1 + 90e-6]) {
      const { w, clock } = harness();
      w.storeRate = rate;
      w.wallSkew = 20_000;
      await clock.start();
      for (let i = 0; i < 100; i++) {
        w.mono += 60_000;
        expect(clock.earliestNow()).toBeLessThanOrEqual(w.storeNow());
        expect(clock.now()).toBeGreaterThanOrEqual(Math.floor(w.storeNow()));
      }
      // 100 minutes on, within the unused drift allowance (10 ppm) and the round trip.
      expect(w.storeNow() - clock.earliestNow()).toBeLessThan(6_000_000 * 190e-6 + 3);
    }
  });

  it('ignores a wall clock 20 s ahead or behind (and its steps): within a round trip of the store\'s, and reports the offset', async () => {
    for (const skew of [20_000, -20_000]) {
      const { w, clock } = harness();
      w.wallSkew = skew;
      await clock.start();
      expect(Math.abs(clock.now() - w.storeNow())).toBeLessThanOrEqual(2);
      expect(clock.earliestNow()).toBeLessThanOrEqual(w.storeNow());
      expect(Math.abs(clock.status().offsetMs! + skew)).toBeLessThanOrEqual(1);
      w.wallSkew = skew + 5_000; // the wall clock steps: nothing moves
      w.mono += 1000;
      expect(Math.abs(clock.now() - w.storeNow())).toBeLessThanOrEqual(2);
      expect(clock.earliestNow()).toBeLessThanOrEqual(w.storeNow());
    }
  });

  it('never goes backwards: a store clock a little behind is waited for, far behind is stepped back to', async () => {
    const { w, clock } = harness();
    w.wallSkew = 600_000;
    await clock.start();
    const t1 = clock.now();
    const e1 = clock.earliestNow();
    w.storeOffset -= 2_000; // the store's clock stepped back 2 s
    await clock.sync();
    const held = clock.now();
    const heldEarliest = clock.earliestNow();
    expect(held).toBeGreaterThanOrEqual(t1);
    expect(heldEarliest).toBeGreaterThanOrEqual(e1);
    w.mono += 1_000;
    expect(clock.now()).toBe(held); // held, not set back
    expect(clock.earliestNow()).toBe(heldEarliest);
    w.mono += 1_100;
    expect(clock.now()).toBeGreaterThan(held); // the store's time caught up
    expect(clock.earliestNow()).toBeGreaterThan(heldEarliest);
    expect(clock.earliestNow()).toBeLessThanOrEqual(w.storeNow());

    const t2 = clock.now();
    w.storeOffset -= HOLD_MAX_MS + 60_000; // far back: stepped, not held for a minute
    await clock.sync();
    expect(clock.now()).toBeLessThan(t2);
    expect(clock.earliestNow()).toBeLessThanOrEqual(w.storeNow());
  });

  it('tells its listeners when a sync moves it forward (the scheduler re-arms)', async () => {
    const { w, clock } = harness();
    await clock.start();
    let adjusted = 0;
    const off = clock.onAdjust(() => { adjusted++; });
    w.storeOffset += 500;
    await clock.sync();
    expect(adjusted).toBe(1);
    off();
    w.storeOffset += 500;
    await clock.sync();
    expect(adjusted).toBe(1);
  });

  it('runs on through a store outage from its last sync, logs it once, and resyncs after', async () => {
    const { w, clock, lines } = harness();
    w.wallSkew = -30_000;
    await clock.start();
    w.failing = true;
    expect(await clock.sync()).toBe(false);
    expect(await clock.sync()).toBe(false);
    w.mono += 10_000;
    const earliest = clock.earliestNow();
    expect(earliest).toBeLessThanOrEqual(w.storeNow());
    expect(w.storeNow() - earliest).toBeLessThan(10);
    expect(clock.status().syncAgeMs).toBeGreaterThanOrEqual(10_000);
    expect(lines.filter((l) => /could not read the store's clock/.test(l.msg))).toHaveLength(1);
    w.failing = false;
    expect(await clock.sync()).toBe(true);
    expect(clock.status().syncAgeMs).toBeLessThan(20); // from the best of this sync's five samples
  });

  it('runs on the wall clock when the store cannot be read at start, and takes the store\'s time at the first sync', async () => {
    const { w, clock } = harness();
    w.failing = true;
    w.wallSkew = -3_000;
    await clock.start();
    expect(clock.status()).toMatchObject({ source: 'local', offsetMs: null });
    const before = clock.now();
    expect(clock.earliestNow()).toBe(before);
    w.failing = false;
    await clock.sync();
    expect(clock.now()).toBeGreaterThan(before + 2_900);
    expect(clock.earliestNow()).toBeGreaterThan(before + 2_900);
  });

  it('warns when the wall clock is off the store\'s by more than warnMs, once, and says when it is back', async () => {
    const { w, clock, lines } = harness({ warnMs: 1000 });
    w.wallSkew = 30_000;
    await clock.start();
    await clock.sync();
    const warns = lines.filter((l) => l.level === 40 && /ahead of the store's/.test(l.msg));
    expect(warns).toHaveLength(1);
    expect(Math.round(warns[0]!.offsetMs! / 1000)).toBe(-30);
    w.wallSkew = 10;
    await clock.sync();
    expect(lines.some((l) => /agrees with the store's again/.test(l.msg))).toBe(true);
  });
});
