// Scenario (e): operating a cluster under load (issue 14). Three node processes on one
// nats-server and one Postgres serve a steady load (150 msg/s over 300 sessions, queue and
// cancel-and-merge agents, timers falling due meanwhile). Each node in turn is restarted the way
// an operator rolls a deployment: SIGTERM, wait for the process to exit, start it again, wait
// until it owns partitions again. Then a fourth node joins mid-load and must take its share.
// At the end the load stops and every message is checked from Postgres: none lost, none applied
// twice, each session's order kept, every timer fired once, nothing left unacked, no commit by a
// deposed owner.
//
// Every wait has a deadline; nothing asserts a duration. Printed, not asserted: how long each
// SIGTERM took, how long until the other nodes held all partitions (the handoff), and the
// verifier's recovery time per restart.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cluster } from './cluster.js';
import { Scenario } from './scenario.js';
import { allCommits } from './verifier.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const PARTITIONS = 12; // 3 nodes: 4 each; 4 nodes: 3 each
const GRACE_MS = 3000;
const log: string[] = [];

/**
 * Polls the nodes other than `leaving` until together they hold every partition (each claimed
 * once); resolves with the time that took, or null at the deadline. How long a graceful leave
 * leaves partitions without an owner.
 */
async function handoff(c: Cluster, leaving: number, t0: number, deadlineMs: number): Promise<number | null> {
  const others = c.nodes.filter((n) => n.index !== leaving && n.child !== null && !n.child.exited()).map((n) => n.index);
  while (Date.now() - t0 < deadlineMs) {
    const pings = await Promise.all(others.map((i) => c.ping(i, 1000)));
    const claims = pings.flatMap((p) => p?.owned ?? []);
    if (pings.every((p) => p !== null) && claims.length === PARTITIONS && new Set(claims).size === PARTITIONS) return Date.now() - t0;
    await sleep(50);
  }
  return null;
}

describe('rolling restart of three nodes under load, then a fourth node joins', () => {
  let sc: Scenario | undefined;

  beforeAll(async () => {
    sc = await Scenario.start({
      tag: 'rolling', nodes: 4, startNodes: 3, partitions: PARTITIONS, shutdownGraceMs: GRACE_MS,
      messages: null, ratePerSec: 150, queueSessions: 240, mergeSessions: 60, sleepers: 6,
    });
  }, 120_000);
  afterAll(async () => {
    console.log(`[rolling] summary (lease TTL ${sc?.cluster.opts.leaseTtlMs ?? '?'} ms, shutdownGraceMs ${GRACE_MS} ms):\n${log.join('\n')}`);
    await sc?.destroy();
  }, 60_000);

  it('each node is SIGTERMed, exits, restarts and owns partitions again, in turn', async () => {
    const s = sc!;
    const c = s.cluster;
    await c.waitPartitionsHeld(60_000, PARTITIONS / 3);
    await sleep(2000); // load flowing on every node before the first restart
    for (const victim of [0, 1, 2]) {
      const before = (await c.ping(victim))?.owned ?? [];
      s.timersAt(Date.now() + 500, 3000); // timers due while its partitions change hands
      const f = s.fault('term', victim);
      const t0 = Date.now();
      const handed = handoff(c, victim, t0, 60_000);
      const r = await c.termNode(victim, GRACE_MS + 30_000);
      const handoffMs = await handed;
      await c.startNode(victim);
      // Back with its share again (4 of 12), every partition held by exactly one node.
      await c.waitPartitionsHeld(60_000, PARTITIONS / 3);
      f.endNow();
      const after = (await c.ping(victim))?.owned ?? [];
      const line = `[rolling] ${c.nodes[victim]!.id}: owned ${JSON.stringify(before)}; SIGTERM → ${r.hung ? 'hung (SIGKILLed)' : `exit ${r.code}`} after ${r.ms} ms; ` +
        `others held all partitions ${handoffMs === null ? 'never (within 60 s)' : `${handoffMs} ms after SIGTERM`}; back owning ${JSON.stringify(after)} ${Date.now() - t0} ms after SIGTERM`;
      log.push(line);
      console.log(line);
      expect(r.hung, `${c.nodes[victim]!.id} did not exit within ${GRACE_MS + 30_000} ms of SIGTERM:\n${r.logTail}`).toBe(false);
      expect(after.length).toBeGreaterThan(0);
      await sleep(2000); // load on the full cluster again before the next restart
    }
  }, 360_000);

  it('a fourth node started mid-load takes its share of the partitions and processes messages', async () => {
    const s = sc!;
    const c = s.cluster;
    const joiner = 3;
    const f = s.fault('join', joiner);
    const t0 = Date.now();
    await c.startNode(joiner);
    // ceil(12 / 4) = 3 each: the three old nodes drain one partition each, the new one takes them.
    await c.waitPartitionsHeld(60_000, PARTITIONS / 4);
    f.endNow();
    const owners = await c.ownership();
    const line = `[rolling] ${c.nodes[joiner]!.id} joined: ownership ${JSON.stringify(owners.byNode)} ${Date.now() - t0} ms after its start`;
    log.push(line);
    console.log(line);
    expect(owners.overlaps).toEqual([]);
    expect(owners.unowned).toEqual([]);
    expect(owners.byNode[c.nodes[joiner]!.id]).toHaveLength(PARTITIONS / 4);
    // It serves its partitions: its commits reach Postgres (and the commit log).
    const deadline = Date.now() + 60_000;
    const id = c.nodes[joiner]!.id;
    while (!allCommits(c).some((x) => x.n === id && x.t >= t0)) {
      if (Date.now() > deadline) throw new Error(`${id} owns ${JSON.stringify(owners.byNode[id])} but committed nothing within 60 s`);
      await sleep(200);
    }
    await sleep(3000); // load on four nodes before it stops
  }, 180_000);

  it('meanwhile every message was applied once, in order; every timer fired once', async () => {
    const report = await sc!.finish('rolling', 90_000);
    const byNode = report.counts.commitsByNode;
    log.push(`[rolling] commits by node ${JSON.stringify(byNode)}; ${report.counts.published} published, ${report.counts.applied} applied; ` +
      report.recovery.filter((r) => r.kind === 'term').map((r) => `${r.node}: recovered ${r.recoveryMs ?? 'never'} ms after SIGTERM (${r.sessions} sessions)`).join('; '));
    expect(report.problems).toEqual([]);
    expect(report.counts.published).toBeGreaterThan(0);
    for (const n of sc!.cluster.nodes) expect(byNode[n.id] ?? 0, `${n.id} committed nothing`).toBeGreaterThan(0);
  }, 180_000);
});
