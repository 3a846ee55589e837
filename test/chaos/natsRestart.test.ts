// Scenario (e): nats-server is restarted under load (SIGTERM, 3 s with no server, then started
// again on the same port and store). Two nodes and the producer reconnect; every message must
// be applied once, in order, and every timer due meanwhile fire once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Scenario } from './scenario.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const DOWN_MS = 3000;

describe('nats-server restart under load', () => {
  let sc: Scenario | undefined;

  beforeAll(async () => { sc = await Scenario.start({ tag: 'natsrestart', nodes: 2 }); }, 120_000);
  afterAll(async () => { await sc?.destroy(); }, 60_000);

  it(`down ${DOWN_MS / 1000} s: every message applied once and in order, every timer fired once`, async () => {
    const s = sc!;
    await s.progress(0.3);
    s.timersAt(Date.now() + 1500, DOWN_MS);
    await sleep(1000);
    const f = s.fault('nats-restart', null);
    await s.cluster.restartNats(DOWN_MS);
    f.endNow();
    const report = await s.finish('nats-restart');
    expect(report.problems).toEqual([]);
  }, 240_000);
});
