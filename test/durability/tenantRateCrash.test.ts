// Messages a tenant's rate deferred survive the node (issue 17 §3), over real NATS + Postgres
// with the runtime in a child process (test/fixtures/crash-runtime.mjs, agent `rec-queue`, which
// records every message it applies in its committed state). A tenant's NATS flood is deferred by
// a slow rate; the node is SIGKILLed while it holds deferred messages (checked: some deferred now,
// not all applied), or SIGSTOPped for longer than ack_wait (JetStream hands the held messages out
// again meanwhile). Nothing was acked for them, so they come back and every message is applied
// once, in publish order per session. On the code before deferral nothing is ever deferred (the
// flood is applied at once), so the checks that the node held deferred messages fail there.
import { describe, expect, it } from 'vitest';
import { childSuite, startChild, type ChildRuntime } from './childRuntime.js';
import { publish, sleep, waitFor } from '../helpers.js';

const t = childSuite('tratecrash');

const RATE = { tenantRatePerSec: 4, tenantBurst: 2 };
const SESSIONS = ['tk-0', 'tk-1', 'tk-2'];

interface Deferred { total: Record<string, number>; now: Record<string, number> }
const seenOf = async (c: ChildRuntime, id: string): Promise<number[]> => ((await c.ctl<{ userState: { seen: number[] } }>('getAgent', id)).userState).seen;
const applied = async (c: ChildRuntime): Promise<number> => (await Promise.all(SESSIONS.map((id) => seenOf(c, id)))).reduce((n, s) => n + s.length, 0);

/** Publishes `n` messages round robin over the sessions, numbered from `from`. */
async function flood(from: number, n: number): Promise<void> {
  for (let i = from; i < from + n; i++) await publish(t.nc, SESSIONS[i % SESSIONS.length]!, { i });
}

/** Every message in [0, n) applied exactly once, in publish order per session. */
async function expectAllOnceInOrder(c: ChildRuntime, n: number): Promise<void> {
  for (let k = 0; k < SESSIONS.length; k++) {
    expect(await seenOf(c, SESSIONS[k]!), SESSIONS[k]).toEqual(Array.from({ length: n }, (_, i) => i).filter((i) => i % SESSIONS.length === k));
  }
}

describe('deferred messages across faults', () => {
  it('a node SIGKILLed while it holds deferred messages loses none: they are applied once, in order, after a restart', async () => {
    const cfg = { ...t.cfg, extra: RATE };
    let child = t.child = await startChild(t.nc, cfg, t.log);
    for (const id of SESSIONS) await child.ctl('createAgent', id, 'rec-queue', { seen: [] }, { tenant: 'K' });
    const N = 24;
    await flood(0, N);
    await waitFor(async () => (await applied(child)) >= 3, 'the first messages applied', 60_000, 50);
    const d = await child.ctl<Deferred>('tenantDeferred');
    const before = await applied(child);
    expect(d.now.K ?? 0, `deferred now (applied ${before} of ${N})`).toBeGreaterThan(0);
    expect(before).toBeLessThan(N);
    await child.kill();

    child = t.child = await startChild(t.nc, cfg, t.log);
    await waitFor(async () => (await applied(child)) >= N, 'the whole flood applied after the restart', 90_000, 100);
    await sleep(300); // anything applied twice would show up in `seen` by now
    await expectAllOnceInOrder(child, N);
    expect(await child.ctl<unknown[]>('listDeadLetters', {})).toEqual([]);
    expect(await child.stop()).toBe(0);
  });

  it('a node paused longer than ack_wait while it holds deferred messages applies each once, in order', async () => {
    const cfg = { ...t.cfg, extra: { ...RATE, leaseTtlMs: 30_000 } };
    const child = t.child = await startChild(t.nc, cfg, t.log);
    // The sessions go on from the first test's state: messages N.. of this test follow.
    const base = 24;
    const N = 15;
    for (let i = base; i < base + N; i++) await publish(t.nc, SESSIONS[i % SESSIONS.length]!, { i });
    await waitFor(async () => (await applied(child)) >= base + 2, 'the first messages applied', 60_000, 50);
    const d = await child.ctl<Deferred>('tenantDeferred');
    expect(d.now.K ?? 0, 'deferred now').toBeGreaterThan(0);
    // The fixture's ack_wait is 2 s: paused for 5 s, the server redelivers what the node held.
    const dupsBefore = (await child.ctl<{ stats: { duplicatesSkipped: number } }>('ping')).stats.duplicatesSkipped;
    process.kill(child.pid, 'SIGSTOP');
    try { await sleep(5_000); } finally { process.kill(child.pid, 'SIGCONT'); }
    await waitFor(async () => (await applied(child)) >= base + N, 'the flood applied after the pause', 90_000, 100);
    await sleep(300);
    await expectAllOnceInOrder(child, base + N);
    // The pause did make JetStream hand held messages out again (each only replaced its ack handle).
    expect((await child.ctl<{ stats: { duplicatesSkipped: number } }>('ping')).stats.duplicatesSkipped).toBeGreaterThan(dupsBefore);
    expect(await child.ctl<unknown[]>('listDeadLetters', {})).toEqual([]);
    expect(await child.stop()).toBe(0);
  });
});
