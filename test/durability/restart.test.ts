// Restart: 10,000 persisted sessions in mixed states (idle, idle with history, seeded user
// state, sleeping with and without deferred mail, stopped with and without history). What
// `getAgent` showed before `rt.stop()` is what a new runtime on a reopened store shows, the
// `sessions` and `history` tables are unchanged by the restart, and sessions hydrated
// afterwards carry on from exactly where they were. Postgres and PGlite.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isDeepStrictEqual } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { defineAgent } from '../../actors/index.js';
import type { Store } from '../../persistence/types.js';
import type { Runtime, SessionView } from '../../runtime/index.js';
import { startNats, startRuntime, waitFor } from '../helpers.js';
import { storeBackends, type StoreBackend, type TableDump } from './backends.js';

const SESSIONS = 10_000;
const CHUNK = 500;
const MAX_LIVE = 8000; // below the session count: at stop, some sessions are live and some passivated

const recorder = defineAgent<{ seen: unknown[] }>({
  type: 'recorder',
  onMessage: 'queue',
  initialState: () => ({ seen: [] }),
  handle(batch, ctx) {
    for (const m of batch) ctx.state.seen.push(m.kind === 'wake' ? `wake:${(m.body as { reason: string }).reason}` : m.body);
    return undefined;
  },
});

/** What each session is made into; by index, so every kind is spread over all partitions. */
type Kind = 'idle' | 'history' | 'seeded' | 'sleeping' | 'sleeping-deferred' | 'stopped' | 'stopped-history';
const KINDS: readonly Kind[] = ['idle', 'history', 'seeded', 'sleeping', 'sleeping-deferred', 'stopped', 'stopped-history'];
const kindOf = (n: number): Kind => KINDS[n % KINDS.length]!;
const sid = (n: number): string => `r-${n}`;
const stateOf = (k: Kind): string => (k.startsWith('sleeping') ? 'sleeping' : k.startsWith('stopped') ? 'stopped' : 'idle');
/** Messages handled before the session sleeps or stops: one, or two for every third. */
const messagesOf = (n: number): unknown[] => {
  const k = kindOf(n);
  const has = k === 'history' || k === 'stopped-history' || k === 'sleeping-deferred' || (k === 'sleeping' && n % 2 === 0);
  return has ? [{ n, k: 1 }, ...(n % 3 === 0 ? [{ n, k: 2 }] : [])] : [];
};

/** The fields of a view that are durable (not `live`, not `updatedAt`, which a live view lacks). */
function durable(v: SessionView): Partial<SessionView> {
  return Object.fromEntries(Object.entries(v).filter(([k]) => k !== 'live' && k !== 'updatedAt'));
}

async function chunked<T>(items: readonly T[], fn: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += CHUNK) await Promise.all(items.slice(i, i + CHUNK).map(fn));
}

async function views(rt: Runtime, ids: readonly string[]): Promise<Map<string, SessionView>> {
  const out = new Map<string, SessionView>();
  await chunked(ids, async (id) => { out.set(id, await rt.getAgent(id)); });
  return out;
}

describe.each(storeBackends('restart'))('restart with 10,000 persisted sessions on %s', (name, makeBackend) => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let backend: StoreBackend;
  let store: Store | undefined;
  let rt: Runtime | undefined;

  const boot = async (): Promise<Runtime> => {
    store = backend.open();
    rt = await startRuntime(nats.url, { agents: [recorder], store, config: { maxLiveSessions: MAX_LIVE } });
    return rt;
  };
  const shutdown = async (): Promise<void> => {
    await rt?.stop();
    rt = undefined;
    await store?.close();
    store = undefined;
  };
  const inboxDrained = async (r: Runtime): Promise<boolean> => (await (await jetstreamManager(r.transport.nc)).streams.info(r.transport.inboxStream)).state.messages === 0;

  beforeAll(async () => {
    nats = await startNats(8);
    backend = makeBackend();
  });

  afterAll(async () => {
    await shutdown();
    await nats?.cleanup();
    await backend?.cleanup();
  });

  it('status, user state, wake conditions, deferred mail and history are identical after a restart', async () => {
    const t = [Date.now()];
    let r = await boot();
    const all = Array.from({ length: SESSIONS }, (_, n) => n);
    const ids = all.map(sid);
    const until = Date.now() + 7 * 24 * 3600_000;

    await chunked(all, (n) => r.createAgent(sid(n), 'recorder', kindOf(n) === 'seeded' ? { seen: [`seed-${n}`] } : undefined));
    t.push(Date.now());
    await chunked(all.filter((n) => messagesOf(n).length > 0), async (n) => { for (const m of messagesOf(n)) await r.sendMessage(sid(n), m); });
    await waitFor(() => inboxDrained(r), 'the history messages to be committed', 120_000, 100);
    await chunked(all.filter((n) => kindOf(n).startsWith('sleeping')), (n) => r.sleepAgent(sid(n), {
      untilTime: until + n, ...(n % 2 ? { wakeOnMailPriority: 'high' } : { wakeEvents: ['invoice.paid', `e-${n}`] }),
    }));
    // Deferred mail: received while asleep, below the threshold; committed (and acked) with the session.
    await chunked(all.filter((n) => kindOf(n) === 'sleeping-deferred'), (n) => r.sendMail(sid(n), { n, deferred: true }, { priority: 'low', from: 'tester' }));
    await waitFor(() => inboxDrained(r), 'the deferred mail to be committed', 120_000, 100);
    await chunked(all.filter((n) => kindOf(n).startsWith('stopped')), (n) => r.stopAgent(sid(n), 'test'));
    t.push(Date.now());

    const before = await views(r, ids);
    const liveAtStop = [...before.values()].filter((v) => v.live).length;
    await shutdown();
    const dumpBefore = await backend.dumpTables();
    t.push(Date.now());

    r = await boot();
    const after = await views(r, ids);
    t.push(Date.now());
    await shutdown();
    const dumpAfter = await backend.dumpTables();
    console.log(`[restart ${name}] create ${t[1]! - t[0]!} ms, mixed states ${t[2]! - t[1]!} ms, views+stop+dump ${t[3]! - t[2]!} ms, start+views ${t[4]! - t[3]!} ms; ${liveAtStop} live at stop`);

    // Both sides of the comparison are what was meant to be there.
    expect(liveAtStop).toBeGreaterThan(0);
    expect(liveAtStop).toBeLessThan(SESSIONS);
    expect(dumpBefore.sessions).toHaveLength(SESSIONS);
    expect(dumpBefore.history).toHaveLength(all.reduce((a, n) => a + messagesOf(n).length, 0));
    // The restart itself writes nothing to sessions or history.
    expect(isDeepStrictEqual(dumpAfter, dumpBefore), 'sessions/history tables changed across the restart').toBe(true);

    const stored = new Map(dumpBefore.sessions.map((row) => [row.id as string, row]));
    const history = new Map<string, TableDump['history'][number][]>();
    for (const h of dumpBefore.history) history.set(h.session_id as string, [...(history.get(h.session_id as string) ?? []), h]);
    const diffs: string[] = [];
    for (const n of all) {
      const id = sid(n);
      const k = kindOf(n);
      const b = before.get(id)!;
      const a = after.get(id)!;
      const row = stored.get(id)!;
      const hist = history.get(id) ?? [];
      const expectSeen = [...(k === 'seeded' ? [`seed-${n}`] : []), ...messagesOf(n)];
      const problems: (string | false)[] = [
        // Deep equality, not JSON text: jsonb keeps object keys in an order of its own.
        !isDeepStrictEqual(durable(a), durable(b)) && `view ${JSON.stringify(durable(b))} → ${JSON.stringify(durable(a))}`,
        a.live && 'live right after the restart (hydration should be lazy)',
        b.state !== stateOf(k) && `state ${b.state}`,
        row.status !== b.state && `stored status ${row.status as string}`,
        !isDeepStrictEqual((b.userState as { seen: unknown[] }).seen, expectSeen) && `user state ${JSON.stringify(b.userState)}`,
        !isDeepStrictEqual(hist.map((h) => JSON.parse(h.body as string) as unknown), messagesOf(n)) && `history ${JSON.stringify(hist)}`,
        hist.some((h) => h.outcome !== 'ok') && 'history outcome',
      ];
      if (k.startsWith('sleeping')) {
        const w = b.wake;
        const wakeOk = w?.until === until + n && (n % 2 ? w.mailPriority === 'high' && w.events.length === 0 : w.mailPriority === null && isDeepStrictEqual(w.events, ['invoice.paid', `e-${n}`]));
        problems.push(!wakeOk && `wake ${JSON.stringify(w)}`, row.wake_at !== String(until + n) && `stored wake_at ${row.wake_at as string}`);
        problems.push(b.mailbox.deferred.length !== (k === 'sleeping-deferred' ? 1 : 0) && `deferred ${JSON.stringify(b.mailbox.deferred)}`);
      }
      const bad = problems.filter(Boolean);
      if (bad.length) diffs.push(`${id} (${k}): ${bad.join('; ')}`);
    }
    expect(diffs.slice(0, 5), `${diffs.length} sessions differ`).toEqual([]);

    // Hydrated from the restored snapshots, sessions carry on where they were.
    r = await boot();
    const sample = (k: Kind) => all.filter((n) => kindOf(n) === k).slice(0, 40);
    await chunked([...sample('history'), ...sample('seeded')], (n) => r.sendMessage(sid(n), { n, k: 'after' }));
    await chunked(sample('sleeping-deferred'), (n) => r.wakeAgent(sid(n)));
    await chunked(sample('stopped-history'), (n) => r.sendMessage(sid(n), 'still there?'));
    for (const n of [...sample('history'), ...sample('seeded')]) {
      const v = await waitFor(async () => { const x = await r.getAgent(sid(n)); return x.state === 'idle' && x.lastSeq > before.get(sid(n))!.lastSeq ? x : null; }, `${sid(n)} to handle its message`);
      expect((v.userState as { seen: unknown[] }).seen).toEqual([...(before.get(sid(n))!.userState as { seen: unknown[] }).seen, { n, k: 'after' }]);
    }
    for (const n of sample('sleeping-deferred')) {
      const v = await waitFor(async () => { const x = await r.getAgent(sid(n)); return x.state === 'idle' && x.mailbox.pending === 0 && x.mailbox.running === 0 && x.mailbox.deferred.length === 0 ? x : null; }, `${sid(n)} to wake and run`);
      expect((v.userState as { seen: unknown[] }).seen).toEqual([...(before.get(sid(n))!.userState as { seen: unknown[] }).seen, 'wake:manual', { n, deferred: true }]);
    }
    await waitFor(async () => (await r.listDeadLetters({ limit: 1000 })).filter((d) => d.reason === 'stopped').length >= 40, 'messages to stopped sessions to be dead-lettered');
    for (const n of sample('stopped-history')) expect((await r.getAgent(sid(n))).state).toBe('stopped');
  }, 180_000);
});
