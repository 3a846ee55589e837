// Postgres restarted (or failed over) under every node at once: each node's Postgres proxy
// refuses every connection for 4 s — commits, timer reads, outbox sweeps and readiness all fail
// together — while sleepers' timers fall due. Two nodes, 40 sessions × 60 messages. Every
// message must be applied exactly once, in order, and every timer fire once, not early, once
// Postgres is back. (pg_ctlcluster restart is not an option: the Postgres is shared.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Scenario } from './scenario.js';

const OUTAGE_MS = 4000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('Postgres refused for every node under load', () => {
  let sc: Scenario | undefined;

  beforeAll(async () => { sc = await Scenario.start({ tag: 'pgrestart', nodes: 2 }); }, 120_000);
  afterAll(async () => { await sc?.destroy(); }, 60_000);

  it(`for ${OUTAGE_MS / 1000} s: every message applied once and in order, every timer fired once`, async () => {
    const s = sc!;
    await s.progress(0.25);
    s.timersAt(Date.now() + 1500, OUTAGE_MS - 1000); // set now, due while Postgres is away
    await sleep(1000);
    const f = s.fault('pg-restart', null);
    for (let i = 0; i < s.cluster.nodes.length; i++) s.cluster.pgMode(i, 'refuse');
    await sleep(OUTAGE_MS);
    for (let i = 0; i < s.cluster.nodes.length; i++) s.cluster.pgMode(i, 'pass');
    f.endNow();
    const report = await s.finish('pg-restart');
    expect(report.problems).toEqual([]);
  }, 240_000);
});
