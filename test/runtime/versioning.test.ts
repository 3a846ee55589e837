// Versioned agents (issue 16 §1), against a real nats-server and Postgres: a deploy of a new agent
// version (the runtime restarted with it) while sessions are idle, sleeping (with a deferred
// message), waiting, and active (a turn under way at the restart); each is migrated lazily when it
// next hydrates and runs on the new code. A failing migration keeps the stored snapshot and every
// message (held unacked in the inbox: no dead letter, nothing applied), shows MIGRATION_FAILED in
// getAgent and on commands, and a deploy with a corrected migrate then applies them all, in order.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { defineAgent, MACHINE_HASH, type AnyAgent } from '../../actors/index.js';
import { openStore } from '../../persistence/index.js';
import { migrateStoredSnapshots } from '../../runtime/snapshotMigrator.js';
import type { Store } from '../../persistence/types.js';
import type { Runtime } from '../../runtime/index.js';
import { dropSchema, natsClient, PG_URL, publish, schemaName, startNats, startRuntime, waitFor } from '../helpers.js';

interface V1 { count: number; seen: string[] }
interface V2 { total: number; seen: string[]; v: 2 }

let gate: (() => void) | null = null;
const started: string[] = [];

/** Version 1: counts messages; `sleep`/`wait`/`block` bodies put it to sleep, waiting, or hold the turn. */
const acctV1 = defineAgent<V1>({
  type: 'acct',
  onMessage: 'queue',
  initialState: () => ({ count: 0, seen: [] }),
  async handle(batch, ctx) {
    for (const m of batch) {
      const b = m.body as { t?: string; op?: string } | null;
      if (m.kind === 'wake') continue;
      ctx.state.count++;
      ctx.state.seen.push(`v1:${b?.t ?? '?'}`);
      if (b?.op === 'block') { started.push(ctx.sessionId); await new Promise<void>((r) => { gate = r; }); }
      if (b?.op === 'sleep') return ctx.sleep({ durationMs: 3_600_000 });
      if (b?.op === 'wait') return ctx.waitFor({ replyFrom: 'boss', timeoutMs: 3_600_000 });
    }
    return undefined;
  },
});

const acctV2 = defineAgent<V2>({
  type: 'acct',
  version: 2,
  migrate: { 1: (s: V1): V2 => ({ total: s.count, seen: [...s.seen, 'migrated'], v: 2 }) },
  onMessage: 'queue',
  initialState: () => ({ total: 0, seen: [], v: 2 }),
  handle(batch, ctx) {
    for (const m of batch) {
      if (m.kind === 'wake') continue;
      ctx.state.total++;
      ctx.state.seen.push(`v2:${(m.body as { t?: string } | null)?.t ?? '?'}`);
    }
    return undefined;
  },
});

/** `fragile` version 2 whose migrate throws (a bug), and the fixed one. */
const fragileV1 = defineAgent<{ items: string[] }>({
  type: 'fragile', onMessage: 'queue', initialState: () => ({ items: [] }),
  handle(batch, ctx) { for (const m of batch) ctx.state.items.push((m.body as { t: string }).t); return undefined; },
});
const fragileHandle = (batch: readonly { body: unknown }[], ctx: { state: { list: string[] } }) => { for (const m of batch) ctx.state.list.push((m.body as { t: string }).t); return undefined; };
const fragileBroken = defineAgent<{ list: string[] }>({
  type: 'fragile', version: 2, onMessage: 'queue', initialState: () => ({ list: [] }),
  migrate: { 1: (s: { items: string[] }) => { if (s.items.length > 0) throw new Error('items is not iterable as expected'); return { list: [] }; } },
  handle: fragileHandle,
});
const fragileFixed = defineAgent<{ list: string[] }>({
  type: 'fragile', version: 2, onMessage: 'queue', initialState: () => ({ list: [] }),
  migrate: { 1: (s: { items: string[] }) => ({ list: [...s.items] }) },
  handle: fragileHandle,
});

let nats: Awaited<ReturnType<typeof startNats>>;
let schema: string;
let store: Store;
let rt: Runtime | null = null;

const start = async (agents: AnyAgent[]): Promise<Runtime> => {
  rt = await startRuntime(nats.url, { agents, store, config: { shutdownGraceMs: 3_000 } });
  return rt;
};
const stopRt = async (): Promise<void> => { await rt?.stop(); rt = null; };
const stored = async (sid: string) => {
  const rec = await store.loadSession(sid);
  return rec as (typeof rec & { snapshot: { value: unknown; agentry?: { version: number; machine: string; type: string }; context: { userState: unknown } } }) | null;
};
/** Messages of a session still in the inbox stream (work queue: unacked ones). */
const inStream = async (sid: string): Promise<number> => {
  const nc = await natsClient(nats.url);
  try {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info('AGENTRY_INBOX', { subjects_filter: `agentry.part.*.${sid}` });
    return Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
  } finally { await nc.close(); }
};

beforeAll(async () => {
  nats = await startNats(8);
  schema = schemaName('versioning');
  store = openStore({ databaseUrl: PG_URL, schema });
});
afterAll(async () => {
  await stopRt();
  await store?.close();
  await nats?.cleanup();
  if (schema) await dropSchema(schema);
});

describe('versioned agents', () => {
  it('a deploy with a migrating version while sessions are idle, sleeping, waiting and active', async () => {
    const r1 = await start([acctV1, fragileV1]);
    for (const id of ['v-idle', 'v-sleep', 'v-wait', 'v-active']) await r1.createAgent(id, 'acct');
    const nc = await natsClient(nats.url);
    try {
      await publish(nc, 'v-idle', { t: 'a' });
      await publish(nc, 'v-sleep', { t: 'a', op: 'sleep' });
      await publish(nc, 'v-wait', { t: 'a', op: 'wait' });
      await waitFor(async () => (await r1.getAgent('v-sleep')).state === 'sleeping', 'v-sleep asleep');
      await waitFor(async () => (await r1.getAgent('v-wait')).state === 'waiting', 'v-wait waiting');
      await publish(nc, 'v-sleep', { t: 'deferred' }); // deferred while asleep: in its v1 snapshot
      await waitFor(async () => (await r1.getAgent('v-sleep')).mailbox.deferred.length === 1, 'a deferred message');
      await waitFor(async () => (await stored('v-idle'))?.snapshot.context.userState && ((await stored('v-idle'))!.snapshot.context.userState as V1).count === 1, 'v-idle committed');
      await publish(nc, 'v-active', { t: 'running', op: 'block' });
      await waitFor(() => started.includes('v-active'), 'v-active running its turn');
    } finally { await nc.close(); }
    // Every committed snapshot carries type, version and the statechart's hash.
    const s1 = await stored('v-idle');
    expect(s1!.snapshot.agentry).toEqual({ type: 'acct', version: 1, machine: MACHINE_HASH });
    // Deploy: the node stops with v-active's turn under way (aborted at the grace; its message stays unacked).
    const stopping = stopRt();
    await stopping;
    gate?.();
    expect((await stored('v-active'))!.snapshot.value).toBe('idle');

    const r2 = await start([acctV2, fragileV1]);
    // Active at the deploy: its message comes again and runs on v2, after the migration.
    await waitFor(async () => ((await r2.getAgent('v-active')).userState as V2).seen?.includes('v2:running'), 'v-active re-run on v2', 60_000);
    expect((await r2.getAgent('v-active')).userState).toEqual({ total: 1, seen: ['migrated', 'v2:running'], v: 2 });
    // Idle: migrated when it next hydrates.
    await r2.sendMessage('v-idle', { t: 'b' });
    await waitFor(async () => ((await r2.getAgent('v-idle')).userState as V2).total === 2, 'v-idle on v2');
    expect((await r2.getAgent('v-idle')).userState).toEqual({ total: 2, seen: ['v1:a', 'migrated', 'v2:b'], v: 2 });
    // Sleeping with a deferred v1-era message: woken, it runs on v2 with the migrated state.
    await r2.wakeAgent('v-sleep');
    await waitFor(async () => ((await r2.getAgent('v-sleep')).userState as V2).total === 2, 'v-sleep woken on v2');
    expect((await r2.getAgent('v-sleep')).userState).toEqual({ total: 2, seen: ['v1:a', 'migrated', 'v2:deferred'], v: 2 });
    // Waiting: the awaited reply resumes it on v2.
    await r2.sendMessage('v-wait', { t: 'reply' }, { from: 'boss' });
    await waitFor(async () => ((await r2.getAgent('v-wait')).userState as V2).total === 2, 'v-wait resumed on v2');
    expect(((await r2.getAgent('v-wait')).userState as V2).seen).toEqual(['v1:a', 'migrated', 'v2:reply']);
    for (const id of ['v-idle', 'v-sleep', 'v-wait', 'v-active']) {
      await waitFor(async () => (await stored(id))!.snapshot.agentry?.version === 2, `${id} stored at version 2`);
      expect((await r2.getAgent(id)).agentVersion).toBe(2);
    }
    expect(r2.host.blocked.migrated).toBeGreaterThanOrEqual(4);
    await stopRt();
  }, 180_000);

  it('a failing migration loses nothing, shows MIGRATION_FAILED, and a corrected deploy applies every held message in order', async () => {
    const r1 = await start([acctV2, fragileV1]);
    await r1.createAgent('f-1', 'fragile');
    await r1.sendMessage('f-1', { t: 'one' });
    await waitFor(async () => ((await stored('f-1'))?.snapshot.context.userState as { items: string[] } | undefined)?.items.length === 1, 'f-1 committed on v1');
    await stopRt();
    const before = await stored('f-1');

    const r2 = await start([acctV2, fragileBroken]);
    const nc = await natsClient(nats.url);
    try { for (const t of ['two', 'three', 'four']) await publish(nc, 'f-1', { t }); } finally { await nc.close(); }
    await waitFor(() => r2.host.blocked.errorOf('f-1'), 'f-1 blocked by its migration');
    await waitFor(() => r2.host.blocked.heldCount('f-1') === 3, 'its three messages held');
    const view = await r2.getAgent('f-1');
    expect(view.migrationError).toMatchObject({ code: 'MIGRATION_FAILED', reason: 'migrate-threw', fromVersion: 1, toVersion: 2 });
    expect(view.migrationError!.message).toMatch(/items is not iterable as expected/);
    await expect(r2.sleepAgent('f-1', { durationMs: 1000 })).rejects.toMatchObject({ code: 'MIGRATION_FAILED' });
    // Nothing written, nothing dead-lettered, the three messages are still in the inbox (unacked).
    expect(await stored('f-1')).toEqual(before);
    expect(await store.listDeadLetters({ sessionId: 'f-1' })).toEqual([]);
    expect(await inStream('f-1')).toBe(3);
    await stopRt();
    expect(await inStream('f-1')).toBe(3);

    const r3 = await start([acctV2, fragileFixed]);
    await waitFor(async () => ((await stored('f-1'))?.snapshot.context.userState as { list?: string[] } | undefined)?.list?.length === 4, 'the held messages applied by the fixed deploy', 60_000);
    expect((await stored('f-1'))!.snapshot.context.userState).toEqual({ list: ['one', 'two', 'three', 'four'] });
    expect((await stored('f-1'))!.snapshot.agentry?.version).toBe(2);
    expect(r3.host.blocked.size).toBe(0);
    await waitFor(async () => (await inStream('f-1')) === 0, 'the inbox drained');
    expect(await store.listDeadLetters({ sessionId: 'f-1' })).toEqual([]);
    await stopRt();
  }, 180_000);

  it('agentry dev: a reload with corrected code (replaceAgents) retries a blocked session and applies its held messages', async () => {
    const r1 = await start([acctV2, fragileV1]);
    await r1.createAgent('f-dev', 'fragile');
    await r1.sendMessage('f-dev', { t: 'one' });
    await waitFor(async () => ((await stored('f-dev'))?.snapshot.context.userState as { items: string[] } | undefined)?.items.length === 1, 'f-dev committed on v1');
    r1.replaceAgents([acctV2, fragileBroken]);
    await r1.sendMessage('f-dev', { t: 'two' });
    await waitFor(() => r1.host.blocked.heldCount('f-dev') === 1, 'f-dev blocked, its message held');
    r1.replaceAgents([acctV2, fragileFixed]);
    await waitFor(async () => ((await stored('f-dev'))?.snapshot.context.userState as { list?: string[] } | undefined)?.list?.length === 2, 'applied after the reload', 60_000);
    expect((await stored('f-dev'))!.snapshot.context.userState).toEqual({ list: ['one', 'two'] });
    expect(r1.host.blocked.size).toBe(0);
    await stopRt();
  }, 120_000);

  it('agentry migrate with corrected code while the broken code runs: the node finds the rewritten row and applies the held messages', async () => {
    const r1 = await start([acctV2, fragileV1]);
    await r1.createAgent('f-eager', 'fragile');
    await r1.sendMessage('f-eager', { t: 'one' });
    await waitFor(async () => ((await stored('f-eager'))?.snapshot.context.userState as { items: string[] } | undefined)?.items.length === 1, 'f-eager committed on v1');
    await stopRt();
    const r2 = await start([acctV2, fragileBroken]);
    await r2.sendMessage('f-eager', { t: 'two' });
    await waitFor(() => r2.host.blocked.heldCount('f-eager') === 1, 'f-eager blocked, its message held');
    const report = await migrateStoredSnapshots({ store, agents: [acctV2, fragileFixed], apply: true, type: 'fragile' });
    expect(report.types.find((t) => t.type === 'fragile')?.failed).toBe(0);
    await waitFor(async () => ((await stored('f-eager'))?.snapshot.context.userState as { list?: string[] } | undefined)?.list?.length === 2, 'applied by the running node', 60_000);
    expect((await stored('f-eager'))!.snapshot.context.userState).toEqual({ list: ['one', 'two'] });
    expect(r2.host.blocked.errorOf('f-eager')).toBeUndefined();
    await stopRt();
  }, 120_000);

  it('old code refuses a snapshot of a newer version (a rolled-back deploy) without touching it', async () => {
    const r1 = await start([acctV1, fragileFixed]);
    await expect(r1.sendMessage('v-idle', { t: 'x' })).resolves.toBeTruthy();
    await waitFor(() => r1.host.blocked.errorOf('v-idle')?.reason === 'newer-version', 'v-idle refused by version 1 code');
    expect((await r1.getAgent('v-idle')).migrationError?.reason).toBe('newer-version');
    expect((await stored('v-idle'))!.snapshot.agentry?.version).toBe(2);
    await stopRt();
    // Version 2 again takes it, with the message sent meanwhile.
    const r2 = await start([acctV2, fragileFixed]);
    await waitFor(async () => ((await r2.getAgent('v-idle')).userState as V2).seen?.includes('v2:x'), 'the held message applied by version 2', 60_000);
    await stopRt();
  }, 180_000);
});
