// Bad data that reaches a live session's own dead-letter path must cost one dead letter and
// nothing else. Until 2026-11-28 that path (`deadLetterInSession`) stored the refusal's detail and
// payload as they came: a `tenant-mismatch` whose detail quotes an `Agentry-Tenant` header holding
// a NUL, or a `mailbox-full` message whose payload holds a NUL, made Postgres refuse the dead
// letter itself (22021 / 22P05). The refusal dropped the session and restarted its partition's
// consumer; the message came again, the dead letter was refused again — forever: the session's
// later messages were never processed and the partition restarted every few hundred ms.
// Real Postgres (the in-memory store takes a NUL).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineAgent } from '../../actors/index.js';
import type { Runtime } from '../../runtime/index.js';
import type { Store } from '../../persistence/types.js';
import { PG_URL, dropSchema, natsClient, publish, schemaName, startNats, startRuntime, waitFor } from '../helpers.js';

/** Released by the test: the `slow` agent's first run waits for it, so its mailbox fills. */
let release: () => void = () => undefined;
const released = new Promise<void>((r) => { release = r; });

const recorder = defineAgent<{ seen: unknown[] }>({
  type: 'rec',
  onMessage: 'queue',
  initialState: () => ({ seen: [] }),
  handle(batch, ctx) {
    for (const m of batch) ctx.state.seen.push((m.body as { i?: unknown }).i ?? null);
    return undefined;
  },
});

const slow = defineAgent<{ seen: unknown[] }>({
  type: 'slow',
  onMessage: 'queue',
  maxMailbox: 1,
  initialState: () => ({ seen: [] }),
  async handle(batch, ctx) {
    for (const m of batch) ctx.state.seen.push((m.body as { i?: unknown }).i ?? null);
    if (batch.some((m) => (m.body as { i?: unknown }).i === 1)) await released; // the mailbox stays full meanwhile
    return undefined;
  },
});

describe('bad data on a live session’s dead-letter path', () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let schema: string;
  let store: Store;
  let rt: Runtime | undefined;

  beforeAll(async () => {
    nats = await startNats(8);
    schema = schemaName('poisondl');
    const { openStore } = await import('../../persistence/index.js');
    store = openStore({ databaseUrl: PG_URL, schema });
    rt = await startRuntime(nats.url, { agents: [recorder, slow], store, config: { defaultAgentType: 'rec' } });
  }, 60_000);

  afterAll(async () => {
    release();
    await rt?.stop();
    await store?.close();
    await nats?.cleanup();
    if (schema) await dropSchema(schema);
  });

  const seenOf = async (sid: string): Promise<unknown[]> => {
    const rec = await store.loadSession(sid);
    return (rec?.snapshot as { context?: { userState?: { seen?: unknown[] } } } | undefined)?.context?.userState?.seen ?? [];
  };
  const deadLetters = async (sid: string): Promise<{ reason: string; error: string | null }[]> =>
    (await store.listDeadLetters()).filter((d) => d.sessionId === sid).map((d) => ({ reason: d.reason, error: d.error }));

  it('an Agentry-Tenant header with a NUL, for a live session: one dead letter, later messages applied', async () => {
    const nc = await natsClient(nats.url);
    try {
      await publish(nc, 'pdl-1', { i: 1 });
      await waitFor(async () => (await seenOf('pdl-1')).length === 1, 'the session exists and is live', 30_000, 50);
      await publish(nc, 'pdl-1', { i: 'tenant' }, { 'Agentry-Tenant': 'a\u0000b' });
      await publish(nc, 'pdl-1', { i: 2 });
      await waitFor(async () => (await seenOf('pdl-1')).length === 2, 'the message after the bad one applied', 30_000, 50);
      expect(await seenOf('pdl-1')).toEqual([1, 2]);
      const dls = await deadLetters('pdl-1');
      expect(dls.map((d) => d.reason)).toEqual(['tenant-mismatch']);
      expect(dls[0]!.error).not.toContain('\u0000');
    } finally {
      await nc.close();
    }
  }, 60_000);

  it('a payload with a NUL refused because the mailbox is full: one dead letter, later messages applied', async () => {
    await rt!.createAgent('pdl-2', 'slow');
    const nc = await natsClient(nats.url);
    try {
      await publish(nc, 'pdl-2', { i: 1 }); // runs until released
      await waitFor(() => rt!.host.activeCount() > 0, 'the first run started', 30_000, 20);
      const before = rt!.host.stats.deadLetters;
      await publish(nc, 'pdl-2', 'a\u0000b'); // refused (mailbox-full: the running message fills it); a raw NUL
      await waitFor(() => rt!.host.stats.deadLetters > before || null, 'the refused message reached the dead-letter path', 30_000, 20);
      release();
      await publish(nc, 'pdl-2', { i: 2 });
      await waitFor(async () => (await seenOf('pdl-2')).length === 2, 'the message after the refused one applied', 30_000, 50);
      expect(await seenOf('pdl-2')).toEqual([1, 2]);
      expect((await deadLetters('pdl-2')).map((d) => d.reason)).toEqual(['mailbox-full']);
      expect((await deadLetters('pdl-2')).map((d) => d.reason)).toEqual(['mailbox-full']);
    } finally {
      await nc.close();
    }
  }, 90_000);
});
