// A wake's run across kill -9, over real NATS + Postgres with the runtime in a child process
// (test/fixtures/crash-runtime.mjs, agent `rec-sleep`, which stalls in a timer's wake run when
// `stallOnWake` is set). The wake's start commits on its own (the session leaves `sleeping`),
// before its run does. The node is SIGKILLed in between. A wake is not an inbox message and the
// mail that waited for it was acked when it was deferred: no redelivery brings either back. The
// restarted node must find the interrupted run among the due wakes and run it: one wake record,
// every deferred message once, in order.
//
// On the code before this test, the durable form of a session mid-run dropped its whole mailbox
// (`pending`) and stored it with no wake time: the wake and the two deferred messages were lost
// for good, and the session sat `active` in Postgres (found by chaos/natsCut: a node that lost
// NATS, and with it its partitions, right after a timer fired).
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { childSuite, startChild } from './childRuntime.js';
import { PG_URL, waitFor } from '../helpers.js';

const t = childSuite('wakecrash');

async function sql<T>(text: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${t.schema}` });
  await c.connect();
  try { return (await c.query(text, params)).rows as T[]; } finally { await c.end(); }
}

interface Row { status: string; wake_at: string | null; pending: { kind: string; seq: number }[] | null }
const row = async (id: string): Promise<Row | undefined> => (await sql<Row>(
  "SELECT status, wake_at::text, snapshot #> '{context,pending}' AS pending FROM sessions WHERE id = $1", [id],
))[0];

interface SleeperState { seen: number[]; wakes: { reason: string | null; i: number | null }[] }

describe('a wake run across kill -9', () => {
  it('the interrupted run of a timer\'s wake runs again after a restart, with the mail deferred to it, once each', async () => {
    let child = t.child = await startChild(t.nc, { ...t.cfg, stallOnWake: true }, t.log);
    await child.ctl('createAgent', 'zc-1', 'rec-sleep');
    const until = Date.now() + 1500;
    await child.ctl('sendMessage', 'zc-1', { i: 1, sleepUntil: until });
    await waitFor(async () => (await row('zc-1'))?.status === 'sleeping', 'asleep', 30_000, 20);
    // Mail while it sleeps is deferred to the wake: committed and acked now.
    await child.ctl('sendMessage', 'zc-1', { i: 2 });
    await child.ctl('sendMessage', 'zc-1', { i: 3 });
    await waitFor(async () => ((await row('zc-1'))?.pending ?? []).length === 0 && (await child.ctl<{ userState: unknown; lastSeq: number }>('getAgent', 'zc-1')).lastSeq >= 3, 'both deferred', 30_000, 20);
    // The timer fires; the wake's start commits (status active) and its run stalls.
    await waitFor(async () => (await row('zc-1'))?.status === 'active', 'the wake\'s start committed', 30_000, 20);
    await child.kill();

    // What the store holds for the next owner: the wake and the deferred mail, and a due time.
    const stored = (await row('zc-1'))!;
    expect(stored.pending?.map((m) => m.kind)).toEqual(['wake', 'message', 'message']);
    expect(stored.wake_at).not.toBeNull();

    child = t.child = await startChild(t.nc, t.cfg, t.log);
    const st = async (): Promise<SleeperState> => (await child.ctl<{ userState: SleeperState }>('getAgent', 'zc-1')).userState;
    await waitFor(async () => (await st()).seen.length === 3, 'the wake run and the deferred mail after the restart', 60_000, 50);
    const s = await st();
    expect(s.wakes.map((w) => [w.reason, w.i])).toEqual([['time', 1]]);
    expect(s.seen).toEqual([1, 2, 3]);
    await waitFor(async () => (await row('zc-1'))?.status === 'idle', 'idle again', 30_000, 20);
    expect((await row('zc-1'))!.wake_at).toBeNull();
    expect(await child.stop()).toBe(0);
  });
});
