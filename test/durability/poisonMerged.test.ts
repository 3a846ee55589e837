// A poison run inside a coalesced commit record (issue 12). While a session's commit is in flight,
// its next runs merge into one record; when Postgres refuses that record as data, which run is
// poison is unknown. The session is dropped, its messages come again, and it commits run by run
// until the poison run stands alone: that run alone becomes a dead letter (`unstorable`), the good
// run merged with it is applied once, and the session goes on from its last good snapshot.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineAgent } from '../../actors/index.js';
import type { Runtime } from '../../runtime/index.js';
import type { Store } from '../../persistence/types.js';
import { PG_URL, dropSchema, natsClient, publish, schemaName, startNats, startRuntime, waitFor } from '../helpers.js';

/** Resolved once the handler ran "three": the first commit is held until then, so the runs merge. */
let threeRan: () => void = () => undefined;
const threeSeen = new Promise<void>((r) => { threeRan = r; });

const writer = defineAgent<{ seen: string[] }>({
  type: 'writer',
  onMessage: 'queue',
  initialState: () => ({ seen: [] }),
  handle(batch, ctx) {
    for (const m of batch) {
      const text = (m.body as { text: string }).text;
      if (text === 'three') threeRan();
      ctx.state.seen.push(text === 'poison' ? 'bad\u0000state' : text); // jsonb refuses the NUL
    }
    return undefined;
  },
});

/**
 * The real store, its first commit held until "three" has run: "poison" and "three" finish while
 * that commit is in flight, so they merge into one record whatever the machine's load.
 */
function holdFirstCommit(store: Store): Store {
  let held = false;
  return new Proxy(store, {
    get(target, key, receiver) {
      if (key === 'commit') {
        return async (records: Parameters<Store['commit']>[0]) => {
          if (!held) { held = true; await threeSeen; }
          return target.commit(records);
        };
      }
      const v = Reflect.get(target, key, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

describe('a poison run merged with good ones', () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let schema: string;
  let store: Store;
  let rt: Runtime | undefined;

  beforeAll(async () => {
    nats = await startNats(8);
    schema = schemaName('poisonmerged');
    const { openStore } = await import('../../persistence/index.js');
    store = openStore({ databaseUrl: PG_URL, schema });
    rt = await startRuntime(nats.url, { agents: [writer], store: holdFirstCommit(store), config: { defaultAgentType: 'writer' } });
  });

  afterAll(async () => {
    await rt?.stop();
    await store?.close();
    await nats?.cleanup();
    if (schema) await dropSchema(schema);
  });

  it('dead-letters only the poison run; the good run merged with it is applied once', async () => {
    const nc = await natsClient(nats.url);
    const seen = async (): Promise<string[]> => {
      const rec = await store.loadSession('pm-1');
      return (rec?.snapshot as { context?: { userState?: { seen?: string[] } } } | undefined)?.context?.userState?.seen ?? [];
    };
    try {
      // "one" commits alone (held until "three" ran); "poison" and "three" run meanwhile and merge.
      for (const text of ['one', 'poison', 'three']) await publish(nc, 'pm-1', { text });
      await waitFor(async () => (await seen()).includes('three'), 'the session went on past the poison', 60_000, 100);
      expect(rt!.host.stats.coalesced).toBeGreaterThan(0); // the merged record did happen
      await publish(nc, 'pm-1', { text: 'four' });
      await waitFor(async () => (await seen()).includes('four'), 'a later message applied', 60_000, 100);
      expect(await seen()).toEqual(['one', 'three', 'four']);
      const dls = (await store.listDeadLetters()).filter((d) => d.sessionId === 'pm-1');
      expect(dls.map((d) => d.reason)).toEqual(['unstorable']);
      expect(JSON.stringify(dls[0]!.payload)).toContain('poison');
      expect(JSON.stringify(dls[0]!.payload)).not.toContain('three');
      const history = await store.getHistory('pm-1', { limit: 10 });
      expect(history.filter((h) => h.outcome === 'ok').map((h) => (h.body as { text: string }).text).sort()).toEqual(['four', 'one', 'three']);
    } finally {
      await nc.close();
    }
  }, 120_000);
});
