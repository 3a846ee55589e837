// Waitpoints survive restarts and kill -9 (issue 15 §3), over real NATS + Postgres with the
// runtime in a child process (test/fixtures/crash-runtime.mjs, agent `rec-approve`):
// - restart while waiting: sessions wait on waitpoints, the node stops (SIGTERM) and another node
//   (another node id) starts on the same store and NATS; a completion through it reaches the session;
// - kill -9 while waiting: the node is SIGKILLed; while no node runs, a waitpoint is completed by
//   a completer that "crashes" between its compare-and-set and its publish (the settlement and the
//   outbox row are stored, nothing is published); the restarted node delivers it from the outbox;
//   another waitpoint times out while the node is down and settles with its default after restart;
// - failover: two nodes split the partitions; the one owning the waiting sessions is SIGKILLed,
//   the other takes its partitions when the leases expire, and both a completion and a timeout
//   reach the sessions there.
// Every session must end with exactly one settlement, the right one, in its committed state.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { openStore } from '../../persistence/index.js';
import type { SessionRecord, Store } from '../../persistence/types.js';
import { createWaitpoints } from '../../runtime/waitpoints.js';
import { partitionOf } from '../../runtime/index.js';
import { assertBuildIsFresh, startChild, type ChildRuntime } from './childRuntime.js';
import { assertDistFresh } from '../builtFresh.js';
import { PG_URL, dropSchema, natsClient, schemaName, startNats, tempDir, waitFor } from '../helpers.js';

type Nats = Awaited<ReturnType<typeof startNats>>;
let nats: Nats;
let nc: NatsConnection;
let schema: string;
let store: Store;
let child: ChildRuntime | undefined;
const logs = tempDir('agentry-wp-crash-');

beforeAll(async () => {
  assertBuildIsFresh();
  assertDistFresh('dist/runtime/waitpoints.js', ['runtime/waitpoints.ts', 'runtime/host/sessionHost.ts', 'persistence/migrations']);
  nats = await startNats(8);
  nc = await natsClient(nats.url);
  schema = schemaName('wpcrash');
});

afterAll(async () => {
  if (child && !child.exited()) await child.kill();
  await store?.close();
  await nc?.close();
  await nats?.cleanup();
  await dropSchema(schema);
  logs.cleanup();
});

interface Got { id: string; status: string; value: unknown }
const gotOf = (r: SessionRecord | null): Got[] => (r?.snapshot as { context: { userState: { got: Got[] } } } | undefined)?.context.userState.got ?? [];
const waitpointOf = (r: SessionRecord | null): string | undefined => (r?.snapshot as { context: { wait: { waitpoint?: { id: string } } | null } } | undefined)?.context.wait?.waitpoint?.id;

/** Asks `sid` to wait on a waitpoint; resolves with its id once the wait is committed. */
async function ask(c: ChildRuntime, sid: string, a: Record<string, unknown> = {}): Promise<string> {
  await c.ctl('createAgent', sid, 'rec-approve');
  await c.ctl('sendMessage', sid, { ask: a });
  const rec = await waitFor(async () => {
    const r = await c.ctl<SessionRecord>('loadSession', sid);
    return r.status === 'waiting' && waitpointOf(r) ? r : null;
  }, `${sid} waiting (committed)`, 60_000);
  return waitpointOf(rec)!;
}

/** Waits until the session's committed state holds a settlement, then checks it holds exactly `expected`. */
async function settled(c: ChildRuntime, sid: string, expected: Got): Promise<void> {
  const r = await waitFor(async () => {
    const rec = await c.ctl<SessionRecord>('loadSession', sid);
    return rec.status === 'idle' && gotOf(rec).length > 0 ? rec : null;
  }, `${sid} resumed`, 90_000);
  expect(gotOf(r)).toEqual([expected]);
}

describe('waitpoints across restarts', () => {
  it('restart while waiting: a new node on the same store takes the completion to the session', async () => {
    const cfg = { natsUrl: nats.url, partitions: 8, ctlSubject: `test.ctl.${schema}.a`, databaseUrl: PG_URL, schema };
    const log = join(logs.dir, 'restart.log');
    child = await startChild(nc, cfg, log);
    const id = await ask(child, 'wp-restart');
    expect(await child.stop()).toBe(0);
    child = await startChild(nc, { ...cfg, extra: { nodeId: 'crash-child-b' } }, log);
    await expect(child.ctl('completeWaitpoint', id, { approve: true })).resolves.toMatchObject({ status: 'completed', duplicate: false });
    await settled(child, 'wp-restart', { id, status: 'completed', value: { approve: true } });
    await expect(child.ctl('completeWaitpoint', id, { approve: true })).resolves.toMatchObject({ duplicate: true });
    expect(await child.stop()).toBe(0);
    child = undefined;
  }, 180_000);

  it('kill -9 while waiting: completed after restart, completed while down by a completer that died before publishing, timed out while down', async () => {
    const cfg = { natsUrl: nats.url, partitions: 8, ctlSubject: `test.ctl.${schema}.b`, databaseUrl: PG_URL, schema };
    const log = join(logs.dir, 'kill.log');
    child = await startChild(nc, cfg, log);
    const after = await ask(child, 'wp-kill-after');
    const down = await ask(child, 'wp-kill-down');
    const timeout = await ask(child, 'wp-kill-timeout', { timeoutMs: 3000, default: { approve: false } });
    await child.kill();

    // While no node runs: a completion whose process dies right after its commit (nothing published).
    store = openStore({ databaseUrl: PG_URL, schema });
    const dying = createWaitpoints({ store, publish: () => Promise.reject(new Error('killed before the publish')), now: Date.now });
    await expect(dying.complete(down, { approve: true })).resolves.toMatchObject({ duplicate: false });
    // Let the timeout fall due while the node is down.
    const expiresAt = (await store.getWaitpoint(timeout))!.expiresAt!;
    await waitFor(() => Date.now() > expiresAt + 200, 'the timeout to pass while down', 30_000);

    child = await startChild(nc, cfg, log);
    await expect(child.ctl('completeWaitpoint', after, { approve: false })).resolves.toMatchObject({ status: 'completed' });
    await settled(child, 'wp-kill-after', { id: after, status: 'completed', value: { approve: false } });
    await settled(child, 'wp-kill-down', { id: down, status: 'completed', value: { approve: true } });
    await settled(child, 'wp-kill-timeout', { id: timeout, status: 'timed-out', value: { approve: false } });
    expect((await store.getWaitpoint(timeout))!.status).toBe('timed-out');
    // Nothing more arrives: each session holds its one settlement in history, once.
    for (const sid of ['wp-kill-after', 'wp-kill-down', 'wp-kill-timeout']) {
      const h = await child.ctl<{ kind: string }[]>('getHistory', sid, { limit: 50 });
      expect(h.filter((m) => m.kind === 'waitpoint')).toHaveLength(1);
    }
    expect(await child.stop()).toBe(0);
    child = undefined;
  }, 240_000);

  it('failover: the node holding the waits is SIGKILLed; the other takes over, and a completion and a timeout reach the sessions', async () => {
    const base = { natsUrl: nats.url, partitions: 8, databaseUrl: PG_URL, schema };
    const a = await startChild(nc, { ...base, ctlSubject: `test.ctl.${schema}.fa`, extra: { nodeId: 'fo-a', leaseTtlMs: 2000 } }, join(logs.dir, 'fo-a.log'));
    child = a;
    const b = await startChild(nc, { ...base, ctlSubject: `test.ctl.${schema}.fb`, extra: { nodeId: 'fo-b', leaseTtlMs: 2000 } }, join(logs.dir, 'fo-b.log'));
    try {
      const ownedBy = async (c: ChildRuntime): Promise<number[]> => (await c.ctl<{ owned: number[] }>('ping')).owned;
      const aOwns = await waitFor(async () => {
        const [x, y] = [await ownedBy(a), await ownedBy(b)];
        return x.length === 4 && y.length === 4 ? x : null;
      }, 'a 4/4 split', 60_000, 100);
      const onA = Array.from({ length: 400 }, (_, k) => `wp-fo-${k}`).filter((s) => aOwns.includes(partitionOf(s, 8)));
      const completed = await ask(a, onA[0]!);
      const timedOut = await ask(a, onA[1]!, { timeoutMs: 6000, default: { approve: false } });
      await a.kill();
      await waitFor(async () => (await ownedBy(b)).length === 8, 'b holding every partition', 60_000, 100);
      await expect(b.ctl('completeWaitpoint', completed, { approve: true })).resolves.toMatchObject({ status: 'completed', duplicate: false });
      await settled(b, onA[0]!, { id: completed, status: 'completed', value: { approve: true } });
      await settled(b, onA[1]!, { id: timedOut, status: 'timed-out', value: { approve: false } });
      for (const sid of [onA[0]!, onA[1]!]) {
        const h = await b.ctl<{ kind: string }[]>('getHistory', sid, { limit: 50 });
        expect(h.filter((m) => m.kind === 'waitpoint')).toHaveLength(1);
      }
    } finally {
      if (!a.exited()) await a.kill();
      expect(await b.stop()).toBe(0);
      child = undefined;
    }
  }, 240_000);
});
