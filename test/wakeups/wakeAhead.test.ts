// Loading a session ahead of its wake (runtime/wakeups.ts WAKE_LEAD_MS, SessionHost.prefetchWake):
// sessions sleeping in the store (not live on the node) are loaded within the look-ahead before
// their wake is due, and their handlers still start only at their due time — never early — and
// once each, on the copy loaded ahead (no second hydration). A session woken by other means
// after it was loaded ahead, and one whose row changed under the copy loaded ahead, come to no
// harm. Real NATS and Postgres; the runtime's clock is a fake one, so "before the due time" is
// exact however loaded the machine is.
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { defineAgent } from '../../actors/index.js';
import { FakeClock } from '../fakeClock.js';
import { PG_URL, pgSuite, startRuntime, waitFor } from '../helpers.js';

const clock = new FakeClock(Date.now());
/** What each session's wake runs saw: the clock when the handler started. */
const wakeRuns = new Map<string, number[]>();

const napper = defineAgent({
  type: 'napper',
  onMessage: 'queue',
  handle(batch, ctx) {
    if (batch[0]?.kind === 'wake') wakeRuns.set(ctx.sessionId, [...(wakeRuns.get(ctx.sessionId) ?? []), ctx.now()]);
    const until = (batch[0]?.body as { until?: number } | null)?.until;
    return batch[0]?.kind === 'message' && until !== undefined ? ctx.sleep({ until }) : undefined;
  },
});

const t = pgSuite('wakeahead');

describe('loading ahead of a wake', () => {
  it('loads sleepers within the look-ahead, starts each handler at its due time, never early, once', async () => {
    const N = 20;
    const due = clock.now() + 30_000;
    const planned = new Map<string, number>();
    // Put them to sleep with one runtime, then start another on the same store: none is live there.
    const first = await startRuntime(t.nats.url, { agents: [napper], store: t.store, clock });
    try {
      for (let i = 0; i < N; i++) {
        const sid = `nap-${i}`;
        planned.set(sid, due + i * 5);
        await first.createAgent(sid, 'napper');
        await first.sleepAgent(sid, { until: due + i * 5 });
      }
      for (const sid of ['woken', 'changed']) {
        planned.set(sid, due);
        await first.createAgent(sid, 'napper');
        await first.sleepAgent(sid, { until: due });
      }
      await waitFor(async () => {
        for (const sid of planned.keys()) if ((await t.store.loadSession(sid))?.status !== 'sleeping') return false;
        return true;
      }, 'every sleeper stored asleep', 60_000, 50);
    } finally {
      await first.stop();
    }
    t.rt = await startRuntime(t.nats.url, { agents: [napper], store: t.store, clock });
    const r = t.rt;
    expect(r.host.liveCount()).toBe(0);

    // Within the look-ahead (200 ms) of every one, before the first is due: they load, nothing runs.
    await clock.advanceTo(due - 1, 5);
    await waitFor(() => r.host.stats.wakesLoadedAhead === N + 2 && r.host.liveCount() === N + 2, 'the sleepers loaded ahead', 60_000);
    expect(r.host.stats.hydrations).toBe(N + 2);
    expect(wakeRuns.size).toBe(0);
    expect((await r.getAgent('nap-0')).state).toBe('sleeping');

    // Loaded ahead, then woken by hand before its time: its wake at the due time does nothing more.
    await r.wakeAgent('woken');
    await waitFor(() => (wakeRuns.get('woken')?.length ?? 0) === 1, 'the manual wake ran');
    // Loaded ahead, then its row changes under the live copy (an eager migration bumps the
    // version): the wake's commit is refused, the copy dropped, and the wake runs again from the row.
    const c = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${t.schema}` });
    await c.connect();
    try { await c.query("UPDATE sessions SET version = version + 1 WHERE id = 'changed'"); } finally { await c.end(); }

    await clock.advanceTo(due + N * 5, 5);
    // The fake clock moves on while waiting: the refused wake is armed again for "now", on it.
    await waitFor(async () => {
      await clock.advance(1, 1);
      for (const sid of planned.keys()) if ((await t.store.loadSession(sid))?.status !== 'idle') return false;
      return true;
    }, 'every wake committed', 60_000, 50);
    for (const [sid, at] of planned) {
      const runs = wakeRuns.get(sid)!;
      if (sid === 'woken') { expect(runs).toHaveLength(1); continue; } // the manual wake, before its time by design
      expect(runs.length, sid).toBeGreaterThanOrEqual(1);
      expect(runs.every((t) => t >= at), `${sid} woke early: ${runs.join(',')} < ${at}`).toBe(true);
      if (sid !== 'changed') expect(runs, sid).toHaveLength(1);
    }
    // Each of the N woke on the copy loaded ahead: no second hydration (only 'changed' re-loads, after its drop).
    expect(r.host.stats.hydrations).toBeLessThanOrEqual(N + 3);
    expect(r.wakeups.scheduler.lateness.filter((x) => x < 0)).toEqual([]);
  }, 240_000);
});
