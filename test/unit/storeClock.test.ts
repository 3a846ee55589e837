// The store-synchronised clock alone (runtime/storeClock.ts), on a simulated monotonic clock and a
// simulated store clock with round trips: it follows the store's time, never ahead of it (also
// when this node's monotonic clock runs fast), never backwards, re-arms on a forward correction,
// runs on through a store outage, and warns about a skewed wall clock.
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
  it('reads the store\'s time from the sample with the shortest round trip, as a lower bound', async () => {
    const { w, clock } = harness();
    w.trips = [[40, 40], [3, 5], [1, 0.5], [20, 1], [7, 7]];
    await clock.start();
    expect(w.reads).toBe(5);
    const now = clock.now();
    expect(now).toBeLessThanOrEqual(w.storeNow());
    expect(w.storeNow() - now).toBeLessThanOrEqual(1.5 + 1e-6); // behind by at most the best round trip
    expect(clock.status()).toMatchObject({ source: 'store', uncertaintyMs: 0.8 });
    expect(Number.isInteger(now)).toBe(true); // due times are stored as bigint
  });

  it('is never ahead of the store between syncs, also when this node\'s monotonic clock runs 90 ppm fast', async () => {
    const { w, clock } = harness();
    w.storeRate = 1 - 90e-6;
    await clock.start();
    for (let i = 0; i < 100; i++) {
      w.mono += 60_000;
      expect(clock.now()).toBeLessThanOrEqual(w.storeNow());
    }
    // 100 minutes on, it is behind by no more than the unused drift allowance (10 ppm) and the round trip.
    expect(w.storeNow() - clock.now()).toBeLessThan(6_000_000 * 10e-6 + 2 + 1);
  });

  it('ignores the wall clock: a node 20 s ahead or behind reads the store\'s time, and reports its offset', async () => {
    for (const skew of [20_000, -20_000]) {
      const { w, clock } = harness();
      w.wallSkew = skew;
      await clock.start();
      expect(w.storeNow() - clock.now()).toBeGreaterThanOrEqual(0);
      expect(w.storeNow() - clock.now()).toBeLessThanOrEqual(2);
      expect(Math.abs(clock.status().offsetMs! + skew)).toBeLessThanOrEqual(1);
      w.wallSkew = skew + 5_000; // the wall clock steps: nothing moves
      w.mono += 1000;
      expect(w.storeNow() - clock.now()).toBeLessThanOrEqual(2);
    }
  });

  it('never goes backwards: a store clock a little behind is waited for, far behind is stepped back to', async () => {
    const { w, clock } = harness();
    await clock.start();
    const t1 = clock.now();
    w.storeOffset -= 2_000; // the store's clock stepped back 2 s
    await clock.sync();
    const held = clock.now();
    expect(held).toBeGreaterThanOrEqual(t1);
    w.mono += 1_000;
    expect(clock.now()).toBe(held); // held, not set back
    w.mono += 1_100;
    expect(clock.now()).toBeGreaterThan(held); // the store's time caught up
    expect(clock.now()).toBeLessThanOrEqual(w.storeNow());

    const t2 = clock.now();
    w.storeOffset -= HOLD_MAX_MS + 60_000; // far back: stepped, not held for a minute
    await clock.sync();
    expect(clock.now()).toBeLessThan(t2);
    expect(clock.now()).toBeLessThanOrEqual(w.storeNow());
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
    await clock.start();
    w.failing = true;
    expect(await clock.sync()).toBe(false);
    expect(await clock.sync()).toBe(false);
    w.mono += 10_000;
    const now = clock.now();
    expect(now).toBeLessThanOrEqual(w.storeNow());
    expect(w.storeNow() - now).toBeLessThan(10);
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
    w.failing = false;
    await clock.sync();
    expect(clock.now()).toBeGreaterThan(before + 2_900);
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
