// Scenario (b): failover. Three nodes under load (60 sessions × 100 messages at 400/s, timers due
// meanwhile); one node is SIGKILLed. The survivors must take its partitions and process
// everything; then it is restarted and the partitions are spread again under load. Each message
// applied once, in order, each timer fired once. The failover time (from the kill until every
// session the dead node had served commits a message published after the kill) is printed, not
// asserted.
//
// On the code this suite was written against, failover lost messages: a commit conflict dropped
// a session and newer redeliveries were applied before older ones (issue 11, item 2).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Scenario } from './scenario.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('failover after SIGKILL of one of three nodes under load', () => {
  let sc: Scenario | undefined;

  beforeAll(async () => { sc = await Scenario.start({ tag: 'failover', nodes: 3, queueSessions: 45, mergeSessions: 15, messages: 100, ratePerSec: 400 }); }, 120_000);
  afterAll(async () => { await sc?.destroy(); }, 60_000);

  it('its partitions are taken over (and handed back when it returns); every message processed once, in order', async () => {
    const s = sc!;
    await s.progress(0.3);
    s.timersAt(Date.now() + 1500, 4000); // due while its partitions change hands
    await sleep(1000);
    const victim = 2;
    const f = s.fault('kill', victim);
    await s.cluster.killNode(victim);
    f.endNow();
    // Once the survivors have its partitions, it comes back and the partitions are spread again
    // (a handover between live nodes, under load).
    await sleep(3 * s.cluster.opts.leaseTtlMs);
    const back = s.fault('restart', victim);
    await s.cluster.startNode(victim);
    try { await s.cluster.waitPartitionsHeld(60_000, 1); } catch (e) { console.log(`[failover] after the restart: ${(e as Error).message}`); }
    back.endNow();
    const report = await s.finish('failover');
    const rec = report.recovery.find((r) => r.kind === 'kill');
    console.log(`[failover] measured failover time of ${s.cluster.nodes[victim]!.id}'s partitions: ${rec?.recoveryMs ?? 'never'} ms over ${rec?.sessions ?? 0} sessions (lease TTL ${s.cluster.opts.leaseTtlMs} ms)`);
    expect(report.problems).toEqual([]);
  }, 240_000);
});
