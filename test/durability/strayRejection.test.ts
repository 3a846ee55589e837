// A handler that starts a promise it never awaits, which then rejects: Node's default ends the
// process on an unhandled rejection, so one such message took its whole node down — every
// session on it — and, never acked, came back after the restart (and on the next owner after
// failover) to do it again. A node (here a process of its own) now logs it and runs on:
// every message applied once, in order, the node never exits; with
// AGENTRY_UNHANDLED_REJECTIONS=crash it keeps Node's behaviour (the process ends, as on the old
// code).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import type { SessionRecord } from '../../persistence/types.js';
import { childSuite, startChild } from './childRuntime.js';
import { sleep, waitFor } from '../helpers.js';

const t = childSuite('stray');
const seenOf = (r: SessionRecord | null): unknown[] => (r?.snapshot as { context: { userState: { seen: unknown[] } } } | undefined)?.context.userState.seen ?? [];

async function send(sid: string, body: unknown, id: string): Promise<void> {
  const h = natsHeaders();
  h.set('Nats-Msg-Id', id);
  await jetstream(t.nc).publish(`agentry.in.${sid}`, JSON.stringify(body), { headers: h });
}

describe('an unhandled rejection in a handler', () => {
  it('is logged; the node runs on and every message is applied once, in order', async () => {
    const child = t.child = await startChild(t.nc, t.cfg, t.log);
    await child.ctl('createAgent', 'stray-1', 'rec-stray');
    await child.ctl('createAgent', 'calm-1', 'rec-queue');
    for (let i = 0; i < 6; i++) {
      await send('stray-1', { i, stray: i % 2 === 1 }, `s-${i}`);
      await send('calm-1', { i }, `c-${i}`);
    }
    await waitFor(async () => seenOf(await child.ctl<SessionRecord>('loadSession', 'stray-1')).length === 6 && seenOf(await child.ctl<SessionRecord>('loadSession', 'calm-1')).length === 6, 'every message applied', 30_000, 100);
    await sleep(500); // a late crash would show now
    expect(child.exited()).toBe(false);
    expect(seenOf(await child.ctl<SessionRecord>('loadSession', 'stray-1'))).toEqual([0, 1, 2, 3, 4, 5]);
    expect(seenOf(await child.ctl<SessionRecord>('loadSession', 'calm-1'))).toEqual([0, 1, 2, 3, 4, 5]);
    expect(await child.ctl('unhandledRejections')).toBe(3);
    expect(readFileSync(t.log, 'utf8')).toMatch(/a promise rejected and nothing handled it.*a promise nobody awaited \(message 1\)|a promise nobody awaited \(message 1\)[\s\S]*a promise rejected and nothing handled it/);
    expect(await child.stop()).toBe(0);
  }, 120_000);

  it('with AGENTRY_UNHANDLED_REJECTIONS=crash ends the process, as Node does', async () => {
    const child = t.child = await startChild(t.nc, { ...t.cfg, extra: { unhandledRejections: 'crash' } }, t.log);
    await child.ctl('createAgent', 'stray-2', 'rec-stray');
    await send('stray-2', { i: 0, stray: true }, 's2-0');
    await waitFor(() => child.exited(), 'the process to end', 30_000, 50);
  }, 120_000);
});
