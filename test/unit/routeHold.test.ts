// The event router's hold on an event it took (runtime/wakeups.ts `RouteHold`): before each chunk
// of a fan-out it renews the ack deadline, unless 80 % of the ack wait passed since the
// delivery or the last renewal — then another node may be routing the event, and the route stops.
// The end-to-end case (a node SIGSTOPped mid-route) is test/durability/eventRoutePause.test.ts.
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../runtime/config.js';
import { RouteHold } from '../../runtime/wakeups.js';

describe('RouteHold', () => {
  it('renews while the route keeps up, and refuses after a gap longer than 80 % of the ack wait', () => {
    let now = 1_000;
    let renewals = 0;
    const hold = new RouteHold(30_000, () => now, now);
    const renew = (): boolean => hold.renew(() => { renewals++; });
    expect(renew()).toBe(true);
    now += 20_000; expect(renew()).toBe(true); // each renewal restarts the deadline
    now += 24_000; expect(renew()).toBe(true);
    expect(renewals).toBe(3);
    now += 24_001; expect(renew()).toBe(false); // a pause: the event may be another node's now
    expect(renewals).toBe(3); // no working() for a delivery that may be stale
  });

  it('counts from the delivery, so an event that waited behind others too long is not routed', () => {
    let now = 0;
    const hold = new RouteHold(2_000, () => now, 0);
    now = 1_700;
    expect(hold.held()).toBe(false);
    expect(hold.renew(() => {})).toBe(false);
  });

  it('the configuration refuses a duplicate window shorter than twice the ack wait', () => {
    expect(() => loadConfig({ ackWaitMs: 30_000, duplicateWindowMs: 40_000 }, {})).toThrow(/duplicateWindowMs \(AGENTRY_DUPLICATE_WINDOW_MS\): must be at least twice ackWaitMs/);
    expect(loadConfig({ ackWaitMs: 30_000, duplicateWindowMs: 60_000 }, {}).duplicateWindowMs).toBe(60_000);
    expect(loadConfig({}, {}).duplicateWindowMs).toBe(120_000);
  });
});
