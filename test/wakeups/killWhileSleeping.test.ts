// A session sleeps 3 s; its runtime process is SIGKILLed at 1 s and restarted at 5 s: it wakes
// right after the start. A 30-day sleep (beyond setTimeout's 2^31-1 ms) is stored and does not fire.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import type { SessionRecord } from '../../persistence/types.js';
import { assertBuildIsFresh, startChild, type ChildRuntime } from '../durability/childRuntime.js';
import { PG_URL, dropSchema, natsClient, schemaName, sleep, startNats, tempDir, waitFor } from '../helpers.js';

type Nats = Awaited<ReturnType<typeof startNats>>;
let nats: Nats;
let nc: NatsConnection;
let schema: string;
let child: ChildRuntime | undefined;
const logs = tempDir('agentry-wake-kill-');

beforeAll(async () => {
  assertBuildIsFresh();
  nats = await startNats(8);
  nc = await natsClient(nats.url);
  schema = schemaName('wakekill');
});

afterAll(async () => {
  if (child && !child.exited()) await child.kill();
  await nc?.close();
  await nats?.cleanup();
  await dropSchema(schema);
  logs.cleanup();
});

const seenOf = (r: SessionRecord | null): unknown[] => (r?.snapshot as { context: { userState: { seen: unknown[] } } } | undefined)?.context.userState.seen ?? [];

describe('sleep across a crash', () => {
  it('wakes right after restart when the deadline passed while down; a 30-day sleep is stored and does not fire', async () => {
    const cfg = { natsUrl: nats.url, partitions: 8, ctlSubject: `test.ctl.${schema}`, databaseUrl: PG_URL, schema };
    const log = join(logs.dir, 'child.log');
    child = await startChild(nc, cfg, log);
    await child.ctl('createAgent', 'nap', 'rec-queue');
    await child.ctl('createAgent', 'hibernate', 'rec-queue');
    const t0 = Date.now();
    await child.ctl('sleepAgent', 'nap', { durationMs: 3000 });
    const thirtyDays = 30 * 24 * 3600 * 1000;
    await child.ctl('sleepAgent', 'hibernate', { durationMs: thirtyDays });
    const nap = await child.ctl<SessionRecord>('loadSession', 'nap');
    expect(nap.status).toBe('sleeping');
    const until = nap.wakeAt!;
    expect(until).toBeGreaterThanOrEqual(t0 + 3000);

    await sleep(Math.max(0, t0 + 1000 - Date.now()));
    await child.kill();
    await sleep(Math.max(0, t0 + 5000 - Date.now()));
    const restartedAt = Date.now();
    child = await startChild(nc, cfg, log);
    const woke = await waitFor(async () => {
      const r = await child!.ctl<SessionRecord>('loadSession', 'nap');
      return seenOf(r).includes('wake:time') ? Date.now() : null;
    }, 'the overdue wake after restart', 10_000);
    expect(woke - restartedAt).toBeLessThan(3000); // right after start (the child needs ~1 s to come up)
    const history = await child.ctl<{ kind: string; at: number }[]>('getHistory', 'nap', { limit: 10 });
    const wake = history.find((h) => h.kind === 'wake')!;
    expect(wake.at).toBeGreaterThanOrEqual(until); // never early

    const h = await child.ctl<SessionRecord>('loadSession', 'hibernate');
    expect(h.status).toBe('sleeping');
    expect(h.wakeAt! - t0).toBeGreaterThanOrEqual(thirtyDays);
    expect(seenOf(h)).toEqual([]);
    expect(await child.stop()).toBe(0);
  }, 60_000);
});
