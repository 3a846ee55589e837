// A session sleeps 5 s; its runtime process is SIGKILLed at once and restarted after the deadline
// passed: the restarted node fires the overdue wake at start-up. The restarted node re-reads its
// timers only every hour (a 2 h horizon), so a wake within the test's deadline can only come from
// the start-up read; the wake's time shows it was the new process that fired it, never early.
// A 30-day sleep (beyond setTimeout's 2^31-1 ms) is stored and does not fire.
import { describe, expect, it } from 'vitest';
import type { SessionRecord } from '../../persistence/types.js';
import { childSuite, startChild } from '../durability/childRuntime.js';
import { sleep, waitFor } from '../helpers.js';

const t = childSuite('wakekill');

const seenOf = (r: SessionRecord | null): unknown[] => (r?.snapshot as { context: { userState: { seen: unknown[] } } } | undefined)?.context.userState.seen ?? [];

describe('sleep across a crash', () => {
  it('wakes right after restart when the deadline passed while down; a 30-day sleep is stored and does not fire', async () => {
    let child = t.child = await startChild(t.nc, t.cfg, t.log);
    await child.ctl('createAgent', 'nap', 'rec-queue');
    await child.ctl('createAgent', 'hibernate', 'rec-queue');
    const t0 = Date.now();
    await child.ctl('sleepAgent', 'nap', { durationMs: 5000 });
    const thirtyDays = 30 * 24 * 3600 * 1000;
    await child.ctl('sleepAgent', 'hibernate', { durationMs: thirtyDays });
    const nap = await child.ctl<SessionRecord>('loadSession', 'nap');
    expect(nap.status).toBe('sleeping');
    const until = nap.wakeAt!;
    expect(until).toBeGreaterThanOrEqual(t0 + 5000);

    await child.kill();
    await sleep(Math.max(0, until + 500 - Date.now()));
    const restartedAt = Date.now();
    child = t.child = await startChild(t.nc, { ...t.cfg, extra: { timerHorizonMs: 2 * 3600_000 } }, t.log);
    await waitFor(async () => seenOf(await child.ctl<SessionRecord>('loadSession', 'nap')).includes('wake:time'), 'the overdue wake after restart', 60_000);
    const history = await child.ctl<{ kind: string; at: number }[]>('getHistory', 'nap', { limit: 10 });
    const wake = history.find((h) => h.kind === 'wake')!;
    expect(wake.at).toBeGreaterThanOrEqual(until); // never early
    expect(wake.at).toBeGreaterThanOrEqual(restartedAt); // fired by the restarted node, not before the kill

    const h = await child.ctl<SessionRecord>('loadSession', 'hibernate');
    expect(h.status).toBe('sleeping');
    expect(h.wakeAt! - t0).toBeGreaterThanOrEqual(thirtyDays);
    expect(seenOf(h)).toEqual([]);
    expect(await child.stop()).toBe(0);
  }, 180_000);
});
