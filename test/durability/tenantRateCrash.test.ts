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

interface Deferred { total: Record<string, number>; now: Record<string, number> }
const seenOf = async (c: ChildRuntime, id: string): Promise<number[]> => ((await c.ctl<{ userState: { seen: number[] } }>('getAgent', id)).userState).seen;
const applied = async (c: ChildRuntime, sessions: readonly string[]): Promise<number> => (await Promise.all(sessions.map((id) => seenOf(c, id)))).reduce((n, s) => n + s.length, 0);

/** Creates `sessions` for tenant K and publishes `n` messages round robin over them. */
async function flood(c: ChildRuntime, sessions: readonly string[], n: number): Promise<void> {
  for (const id of sessions) await c.ctl('createAgent', id, 'rec-queue', { seen: [] }, { tenant: 'K' });
  for (let i = 0; i < n; i++) await publish(t.nc, sessions[i % sessions.length]!, { i });
}

/** Every message in [0, n) applied exactly once, in publish order per session. */
async function expectAllOnceInOrder(c: ChildRuntime, sessions: readonly string[], n: number): Promise<void> {
  for (let k = 0; k < sessions.length; k++) {
    expect(await seenOf(c, sessions[k]!), sessions[k]).toEqual(Array.from({ length: n }, (_, i) => i).filter((i) => i % sessions.length === k));
  }
}

describe('deferred messages across faults', () => {
  it('a node SIGKILLed while it holds deferred messages loses none: they are applied once, in order, after a restart', async () => {
    const cfg = { ...t.cfg, extra: RATE };
    let child = t.child = await startChild(t.nc, cfg, t.log);
    const sessions = ['tk-0', 'tk-1', 'tk-2'];
    const N = 24;
    await flood(child, sessions, N);
    await waitFor(async () => (await applied(child, sessions)) >= 3, 'the first messages applied', 60_000, 50);
    const d = await child.ctl<Deferred>('tenantDeferred');
    const before = await applied(child, sessions);
    expect(d.now.K ?? 0, `deferred now (applied ${before} of ${N})`).toBeGreaterThan(0);
    expect(before).toBeLessThan(N);
    await child.kill();

    child = t.child = await startChild(t.nc, cfg, t.log);
    await waitFor(async () => (await applied(child, sessions)) >= N, 'the whole flood applied after the restart', 90_000, 100);
    await sleep(300); // anything applied twice would show up in `seen` by now
    await expectAllOnceInOrder(child, sessions, N);
    expect(await child.ctl<unknown[]>('listDeadLetters', {})).toEqual([]);
    expect(await child.stop()).toBe(0);
  });

  it('a node paused longer than ack_wait while it holds deferred messages applies each once, in order', async () => {
    const cfg = { ...t.cfg, extra: { ...RATE, leaseTtlMs: 30_000 } };
    const child = t.child = await startChild(t.nc, cfg, t.log);
    const sessions = ['tp-0', 'tp-1', 'tp-2'];
    const N = 15;
    await flood(child, sessions, N);
    await waitFor(async () => (await applied(child, sessions)) >= 2, 'the first messages applied', 60_000, 50);
    const d = await child.ctl<Deferred>('tenantDeferred');
    expect(d.now.K ?? 0, 'deferred now').toBeGreaterThan(0);
    // The fixture's ack_wait is 2 s: paused for 5 s, the server redelivers what the node held.
    const dupsBefore = (await child.ctl<{ stats: { duplicatesSkipped: number } }>('ping')).stats.duplicatesSkipped;
    process.kill(child.pid, 'SIGSTOP');
    try { await sleep(5_000); } finally { process.kill(child.pid, 'SIGCONT'); }
    await waitFor(async () => (await applied(child, sessions)) >= N, 'the flood applied after the pause', 90_000, 100);
    await sleep(300);
    await expectAllOnceInOrder(child, sessions, N);
    // The pause did make JetStream hand held messages out again (each only replaced its ack handle).
    expect((await child.ctl<{ stats: { duplicatesSkipped: number } }>('ping')).stats.duplicatesSkipped).toBeGreaterThan(dupsBefore);
    expect(await child.ctl<unknown[]>('listDeadLetters', {})).toEqual([]);
    expect(await child.stop()).toBe(0);
  });
});
