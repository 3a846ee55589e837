// Readiness checks alone, on the fake clock, with pingers that answer, reject or hang (a
// blackholed server accepts and never answers): a hung ping turns the check false at its
// deadline and no second ping starts while it is outstanding; each change is logged once.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createHealth } from '../../runtime/health.js';
import { FakeClock } from '../fakeClock.js';

const T0 = Date.UTC(2026, 0, 1);

/** A pinger the test steers: `answer` (default), `reject`, or `hang` until `settle()`. */
class FakePinger {
  mode: 'answer' | 'reject' | 'hang' = 'answer';
  calls = 0;
  closed = false;
  private pending: { resolve: () => void; reject: (e: Error) => void }[] = [];
  ping = (): Promise<void> => {
    this.calls++;
    if (this.mode === 'answer') return Promise.resolve();
    if (this.mode === 'reject') return Promise.reject(new Error('connection refused'));
    return new Promise<void>((resolve, reject) => { this.pending.push({ resolve, reject }); });
  };
  flush = (): Promise<void> => this.ping();
  isClosed = (): boolean => this.closed;
  /** Settles the hung pings: answered (a healed blackhole) or failed (a reset connection). */
  settle(ok: boolean): void {
    for (const p of this.pending.splice(0)) if (ok) p.resolve(); else p.reject(new Error('connection reset'));
  }
}

const flushMicrotasks = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Health on a fake clock whose first pings (started at creation) have answered. */
async function harness(o: { committerHealthy?: () => boolean } = {}) {
  const clock = new FakeClock(T0);
  const store = new FakePinger();
  const nc = new FakePinger();
  const lines: { level: number; check?: string; msg: string }[] = [];
  const logger = pino({ level: 'info' }, new Writable({
    write(chunk: Buffer, _enc, cb) { lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string }); cb(); },
  }));
  const health = createHealth({ store, nc, logger, clock, intervalMs: 1000, timeoutMs: 2000, ...o });
  await flushMicrotasks();
  return { clock, store, nc, health, lines };
}


describe('readiness pings with deadlines', () => {
  it('a store ping that hangs turns the store check false at its deadline, starts no second ping, and recovers when it answers', async () => {
    const h = await harness();
    await h.clock.advance(3000, 1);
    expect(h.health.readiness()).toEqual({ ok: true, checks: { nats: true, store: true, migrations: true } });
    h.store.mode = 'hang';
    const before = h.store.calls;
    await h.clock.advance(1000, 1); // the next ping starts and hangs
    expect(h.store.calls).toBe(before + 1);
    await h.clock.advance(1999, 1);
    expect(h.health.readiness().checks.store).toBe(true); // not yet past its deadline
    await h.clock.advance(1, 1);
    expect(h.health.readiness()).toEqual({ ok: false, checks: { nats: true, store: false, migrations: true } });
    await h.clock.advance(10_000, 1);
    expect(h.store.calls).toBe(before + 1); // one outstanding ping, never a pile of them
    expect(h.health.readiness().checks.store).toBe(false);
    h.store.mode = 'answer';
    h.store.settle(true); // the blackhole heals: the outstanding ping is answered
    await flushMicrotasks();
    expect(h.health.readiness().ok).toBe(true);
    await h.clock.advance(1000, 1);
    expect(h.store.calls).toBe(before + 2); // pinging again
    const storeLines = h.lines.filter((l) => l.check === 'store');
    expect(storeLines.map((l) => l.level)).toEqual([40, 30]); // one warn when it failed, one info when it recovered
    h.health.stop();
  });

  it('a NATS flush that hangs, then is reset, then answers: false at the deadline, true after the reconnect', async () => {
    const h = await harness();
    h.nc.mode = 'hang';
    await h.clock.advance(1000, 1);
    await h.clock.advance(2000, 1);
    expect(h.health.readiness()).toEqual({ ok: false, checks: { nats: false, store: true, migrations: true } });
    h.nc.settle(false); // the client gives up on the stale connection: the pending flush rejects
    await flushMicrotasks();
    expect(h.health.readiness().checks.nats).toBe(false);
    h.nc.mode = 'answer';
    await h.clock.advance(1000, 1);
    expect(h.health.readiness().ok).toBe(true);
    expect(h.lines.filter((l) => l.check === 'nats').length).toBe(2);
    h.health.stop();
  });

  it('a rejecting ping fails the check at once; a closed NATS connection and a failing committer are not ready', async () => {
    const committer = { ok: true };
    const h = await harness({ committerHealthy: () => committer.ok });
    h.store.mode = 'reject';
    await h.clock.advance(1000, 1);
    expect(h.health.readiness().checks.store).toBe(false);
    await h.clock.advance(5000, 1);
    expect(h.lines.filter((l) => l.check === 'store').length).toBe(1); // logged once, not per ping
    h.store.mode = 'answer';
    await h.clock.advance(1000, 1);
    expect(h.health.readiness().ok).toBe(true);
    committer.ok = false;
    expect(h.health.readiness()).toEqual({ ok: false, checks: { nats: true, store: false, migrations: true } });
    committer.ok = true;
    h.nc.closed = true;
    expect(h.health.readiness()).toEqual({ ok: false, checks: { nats: false, store: true, migrations: true } });
    h.health.stop();
  });

  it('stop() ends the pinging and leaves no timer behind', async () => {
    const h = await harness();
    await h.clock.advance(2500, 1);
    h.health.stop();
    const calls = h.store.calls;
    await h.clock.advance(10_000, 1);
    expect(h.store.calls).toBe(calls);
    expect(h.clock.pending()).toBe(0);
  });
});
