// Passivation: with maxLiveSessions = 100, 2,000 sessions receive 5 messages each, spread so
// that every session is evicted and hydrated again between its messages. Live actors never
// exceed the bound (sampled every millisecond and inside every handler run), nothing is lost
// or reordered, and idle sessions are passivated after idleTimeoutMs and come back intact.
// Postgres and PGlite.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { defineAgent } from '../../actors/index.js';
import type { Store } from '../../persistence/types.js';
import type { Runtime } from '../../runtime/index.js';
import { natsClient, publish, startNats, startRuntime, waitFor } from '../helpers.js';
import { storeBackends, type StoreBackend } from './backends.js';

const SESSIONS = 2000;
const MESSAGES = 5;
const MAX_LIVE = 100;

describe.each(storeBackends('passivation'))('passivation on %s', (name, makeBackend) => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let backend: StoreBackend;
  let store: Store;
  let rt: Runtime;
  // What handler runs saw, in the test process (runs may repeat; the committed state may not).
  let maxLiveInHandler = 0;
  const runsBySession = new Map<string, number[]>();

  const agent = defineAgent<{ seen: number[] }>({
    type: 'counter',
    onMessage: 'queue',
    initialState: () => ({ seen: [] }),
    async handle(batch, ctx) {
      maxLiveInHandler = Math.max(maxLiveInHandler, rt.host.liveCount());
      await new Promise((r) => setTimeout(r, 1));
      for (const m of batch) {
        const i = (m.body as { i: number }).i;
        ctx.state.seen.push(i);
        runsBySession.set(ctx.sessionId, [...(runsBySession.get(ctx.sessionId) ?? []), i]);
      }
      return undefined;
    },
  });

  beforeAll(async () => {
    nats = await startNats(8);
    backend = makeBackend();
    store = backend.open();
    rt = await startRuntime(nats.url, {
      agents: [agent], store,
      config: { maxLiveSessions: MAX_LIVE, idleTimeoutMs: 1000, defaultAgentType: 'counter', ackWaitMs: 5000 },
    });
  });

  afterAll(async () => {
    await rt?.stop();
    await store?.close();
    await nats?.cleanup();
    await backend?.cleanup();
  });

  it(`never holds more than ${MAX_LIVE} live actors for ${SESSIONS} sessions × ${MESSAGES} messages, losing and reordering nothing`, async () => {
    let maxSampled = 0;
    const sampler = setInterval(() => { maxSampled = Math.max(maxSampled, rt.host.liveCount()); }, 1);
    const t0 = Date.now();
    const ids = Array.from({ length: SESSIONS }, (_, n) => `p-${n}`);
    const seqs = new Map<string, number[]>(ids.map((id) => [id, []]));
    const jsm = await jetstreamManager(rt.transport.nc);
    const drained = async (): Promise<boolean> => (await jsm.streams.info(rt.transport.inboxStream)).state.messages === 0;
    const nc = await natsClient(nats.url);
    try {
      // Round-robin: message i reaches every session before message i+1 reaches any. Rounds 0
      // and 1 go out as one burst; rounds 2–4 each wait until the previous one is committed, so
      // 1,900 other sessions pass through the 100 slots between two messages of one session and
      // each of those messages meets a session hydrated from its passivated snapshot.
      for (let i = 0; i < MESSAGES; i++) {
        if (i >= 2) await waitFor(drained, `round ${i - 1} to be committed`, 60_000, 50);
        for (let k = 0; k < ids.length; k += 500) {
          const acks = await Promise.all(ids.slice(k, k + 500).map(async (id) => [id, await publish(nc, id, { i })] as const));
          for (const [id, seq] of acks) seqs.get(id)!.push(seq);
        }
      }
    } finally {
      await nc.close();
    }
    await waitFor(drained, 'every message to be committed and acked', 60_000, 50);
    clearInterval(sampler);
    const stats = { ...rt.host.stats };
    console.log(`[passivation ${name}] ${Date.now() - t0} ms; max live sampled ${maxSampled}, in handler ${maxLiveInHandler}; ${JSON.stringify(stats)}`);

    expect(maxSampled).toBeLessThanOrEqual(MAX_LIVE);
    expect(maxLiveInHandler).toBeLessThanOrEqual(MAX_LIVE);
    expect(maxSampled).toBeGreaterThan(0); // the sampler did see the host working
    expect(stats.passivations).toBeGreaterThan(0);
    // Once for the burst, then again for each paced round for all but the (at most) 100 still live.
    expect(stats.hydrations).toBeGreaterThanOrEqual(SESSIONS + (MESSAGES - 2) * (SESSIONS - MAX_LIVE));

    const expected = Array.from({ length: MESSAGES }, (_, i) => i);
    const wrong: string[] = [];
    for (const id of ids) {
      const rec = await store.loadSession(id);
      const seen = (rec?.snapshot as { context?: { userState?: { seen?: number[] } } } | undefined)?.context?.userState?.seen;
      const hist = (await store.getHistory(id, { limit: 100 })).reverse();
      const ok = JSON.stringify(seen) === JSON.stringify(expected) && rec?.lastSeq === seqs.get(id)!.at(-1) &&
        JSON.stringify(hist.map((h) => h.seq)) === JSON.stringify(seqs.get(id));
      if (!ok) wrong.push(`${id}: seen=${JSON.stringify(seen)} lastSeq=${rec?.lastSeq} history=${JSON.stringify(hist.map((h) => h.seq))} published=${JSON.stringify(seqs.get(id))} runs=${JSON.stringify(runsBySession.get(id))}`);
    }
    expect(wrong.slice(0, 5), `${wrong.length} sessions differ`).toEqual([]);
  }, 180_000);

  it('passivates idle sessions after idleTimeoutMs; they come back with their state', async () => {
    // Nothing else is hydrating now, so only the idle timeout can take these three out.
    const few = ['p-7', 'p-8', 'p-9'];
    for (const id of few) await rt.sendMessage(id, { i: 5 });
    await waitFor(async () => {
      for (const id of few) { const v = await rt.getAgent(id); if (!(v.live && v.state === 'idle' && v.lastSeq > 0 && (v.userState as { seen: number[] }).seen.length === 6)) return false; }
      return true;
    }, 'the three sessions to handle their sixth message');
    const passivated = rt.host.stats.passivations;
    const live = rt.host.liveCount();
    expect(live).toBeGreaterThanOrEqual(few.length);
    await waitFor(() => rt.host.liveCount() === 0, 'every idle session to be passivated', 60_000, 50);
    expect(rt.host.stats.passivations).toBe(passivated + live);
    // Invisible to users: getAgent reads the stored session, and the next message hydrates it.
    const v = await rt.getAgent('p-7');
    expect(v).toMatchObject({ live: false, state: 'idle', userState: { seen: [0, 1, 2, 3, 4, 5] } });
    await rt.sendMessage('p-7', { i: 6 });
    await waitFor(async () => { const x = await rt.getAgent('p-7'); return x.lastSeq > v.lastSeq && x.state === 'idle'; }, 'p-7 to handle its seventh message');
    expect((await rt.getAgent('p-7')).userState).toEqual({ seen: [0, 1, 2, 3, 4, 5, 6] });
  });
});
