// The tenant rate's deferral (runtime/host/tenantPacer.ts) alone, on a fake clock: a tenant over
// its rate has its messages held (in the session's acks, never dropped) and released one per
// token, in order per session, sessions of the tenant in turn; other tenants are not touched;
// what this node's API charged is not charged again; a dropped session's entries are skipped
// without taking a token; stop() leaves what it holds unacked.
import type { JsMsg } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import type { LiveSession } from '../../runtime/host/liveSession.js';
import { TenantPacer } from '../../runtime/host/tenantPacer.js';
import { createTenantRate, RATE_CHARGED_HEADER } from '../../runtime/tenantRate.js';
import { FakeClock } from '../fakeClock.js';

const session = (id: string): LiveSession => ({ id, acks: new Map(), maxEnqueuedSeq: 0, broken: false } as unknown as LiveSession);
const msg = (seq: number, hdrs: Record<string, string> = {}): JsMsg => ({ seq, headers: { get: (k: string) => hdrs[k] ?? '' } } as unknown as JsMsg);

function setup(rate = 10, burst = 2) {
  const clock = new FakeClock(1_000_000);
  const limiter = createTenantRate(rate, burst, () => clock.now());
  const released: string[] = [];
  const dropped = new Set<LiveSession>();
  const pacer = new TenantPacer({
    rate: limiter, clock, alive: (s) => !dropped.has(s),
    release: (s, m) => { released.push(`${s.id}:${m.seq}`); s.acks.delete(m.seq); },
    failed: () => undefined,
  });
  /** What the host does: deliver now when admitted. */
  const deliver = (s: LiveSession, tenant: string, m: JsMsg): void => { if (pacer.admit(s, tenant, m)) released.push(`${s.id}:${m.seq}`); };
  return { clock, limiter, pacer, released, dropped, deliver };
}

describe('TenantPacer', () => {
  it('lets the burst through, then releases one message per token, in order per session, sessions in turn', async () => {
    const { clock, limiter, pacer, released, deliver } = setup(10, 2);
    const a = session('a');
    const b = session('b');
    for (let seq = 1; seq <= 6; seq++) deliver(seq % 2 ? a : b, 'T', msg(seq));
    expect(released).toEqual(['a:1', 'b:2']); // the burst
    expect(a.paced).toEqual([3, 5]);
    expect(b.paced).toEqual([4, 6]);
    expect([...a.acks.keys()]).toEqual([3, 5]); // held, unacked (kept alive by the host)
    expect(a.maxEnqueuedSeq).toBe(5);
    expect(limiter.deferred.get('T')).toBe(4);
    expect(pacer.depths().get('T')).toBe(4);
    await clock.advance(99, 0);
    expect(released).toHaveLength(2); // no token before 100 ms
    await clock.advance(1, 0);
    expect(released).toEqual(['a:1', 'b:2', 'a:3']);
    await clock.advance(300, 0);
    expect(released).toEqual(['a:1', 'b:2', 'a:3', 'b:4', 'a:5', 'b:6']);
    expect(pacer.depths().size).toBe(0);
    expect(clock.pending()).toBe(0);
  });

  it('keeps a session\'s later messages behind its deferred ones, even when a token is there', async () => {
    const { clock, released, deliver } = setup(10, 1);
    const a = session('a');
    deliver(a, 'T', msg(1));
    deliver(a, 'T', msg(2)); // deferred
    await clock.advance(150, 0); // a token accrued, the timer released 2
    deliver(a, 'T', msg(3)); // half a token: deferred
    expect(released).toEqual(['a:1', 'a:2']);
    await clock.advance(100, 0);
    expect(released).toEqual(['a:1', 'a:2', 'a:3']);
  });

  it('does not hold another tenant', () => {
    const { released, deliver } = setup(10, 1);
    const a = session('a');
    const b = session('b');
    for (let seq = 1; seq <= 5; seq++) deliver(a, 'A', msg(seq));
    deliver(b, 'B', msg(6));
    expect(released).toEqual(['a:1', 'b:6']);
  });

  it('does not charge again what this node\'s API charged, but keeps it in its session\'s order', async () => {
    const { clock, limiter, released, deliver } = setup(10, 1);
    const a = session('a');
    const charged = { [RATE_CHARGED_HEADER]: limiter.chargedMark };
    deliver(a, 'T', msg(1, charged));
    deliver(a, 'T', msg(2, charged));
    expect(released).toEqual(['a:1', 'a:2']); // the bucket is still full
    deliver(a, 'T', msg(3)); // takes the one token
    deliver(a, 'T', msg(4)); // deferred
    deliver(a, 'T', msg(5, charged)); // behind 4, but free when its turn comes
    deliver(a, 'T', msg(6, { [RATE_CHARGED_HEADER]: 'another-node' })); // charged elsewhere: counts here
    await clock.advance(100, 0);
    expect(released).toEqual(['a:1', 'a:2', 'a:3', 'a:4', 'a:5']);
    await clock.advance(100, 0);
    expect(released).toEqual(['a:1', 'a:2', 'a:3', 'a:4', 'a:5', 'a:6']);
  });

  it('skips a dropped session without taking a token; stop() leaves the rest unacked', async () => {
    const { clock, pacer, released, dropped, deliver } = setup(10, 1);
    const a = session('a');
    const b = session('b');
    deliver(a, 'T', msg(1));
    deliver(a, 'T', msg(2));
    deliver(b, 'T', msg(3));
    deliver(b, 'T', msg(4));
    dropped.add(a); // its feed restarted: 2 comes again to a fresh hydration
    await clock.advance(100, 0);
    expect(released).toEqual(['a:1', 'b:3']);
    pacer.stop();
    await clock.advance(1_000, 0);
    expect(released).toEqual(['a:1', 'b:3']);
    expect([...b.acks.keys()]).toEqual([4]);
    expect(clock.pending()).toBe(0);
  });
});
