// A due wake's record waits for the run it starts (runtime/host/commitChain.ts WAKE_HOLD_MS): a
// wake whose handler ends within the hold commits once (one version step for the wake and its
// run), and its transitions are all stored. A handler that runs longer gets its `active` record
// (the wake carried over) committed when the hold ends, as before the hold; until then the stored
// row still holds the due wake, so a crash in between fires it again (as killWhileSleeping tests).
// A runtime stopped during the hold commits the held record, and the next runtime resumes the
// run. Real NATS and Postgres; the runtime's clock is a fake one, so the hold ends exactly when
// the test says, however loaded the machine is.
import { describe, expect, it } from 'vitest';
import { defineAgent } from '../../actors/index.js';
import { WAKE_HOLD_MS } from '../../runtime/host/commitChain.js';
import { FakeClock } from '../fakeClock.js';
import { pgSuite, startRuntime, waitFor } from '../helpers.js';

const clock = new FakeClock(Date.now());
/** Wake runs per session (handler starts). */
const wakeRuns = new Map<string, number>();
/** Releases the blocked wake handler of `slow-*` sessions. */
let release: () => void = () => undefined;
let gate = new Promise<void>((r) => { release = r; });

const agent = defineAgent({
  type: 'holder',
  onMessage: 'queue',
  async handle(batch, ctx) {
    if (batch[0]?.kind !== 'wake') return undefined;
    wakeRuns.set(ctx.sessionId, (wakeRuns.get(ctx.sessionId) ?? 0) + 1);
    if (ctx.sessionId.startsWith('slow')) await gate;
    return undefined;
  },
});

const t = pgSuite('wakehold');

describe('a wake commits with its run', () => {
  it('commits a quick wake and its run as one version; a long run commits `active` after the hold', async () => {
    t.rt = await startRuntime(t.nats.url, { agents: [agent], store: t.store, clock });
    const r = t.rt;
    const due = clock.now() + 10_000;
    for (const sid of ['quick', 'slow']) {
      await r.createAgent(sid, 'holder');
      await r.sleepAgent(sid, { until: due });
    }
    const asleep = (await t.store.loadSession('quick'))!;
    const slowAsleep = (await t.store.loadSession('slow'))!;
    expect(asleep.status).toBe('sleeping');

    await clock.advanceTo(due, 5);
    await waitFor(async () => (await t.store.loadSession('quick'))?.status === 'idle', 'the quick wake committed');
    const woke = (await t.store.loadSession('quick'))!;
    expect(wakeRuns.get('quick')).toBe(1);
    // One record for the wake (sleeping → active) and the run's end (active → idle).
    expect(woke.version).toBe(asleep.version + 1);
    const path = (await t.store.getTransitions('quick')).map((x) => `${x.from}>${x.to}`);
    expect(path.slice(-2)).toEqual(['sleeping>active.running', 'active.running>idle']);

    // The slow one runs and holds its record: the stored row still has the due wake.
    await waitFor(() => wakeRuns.get('slow') === 1, 'the slow wake started');
    const held = (await t.store.loadSession('slow'))!;
    expect(held.status).toBe('sleeping');
    expect(held.version).toBe(slowAsleep.version);
    expect(held.wakeAt).toBeLessThanOrEqual(clock.now());
    // The hold ends: the `active` record (the wake carried over, due) commits while the run goes on.
    await clock.advance(WAKE_HOLD_MS, 5);
    await waitFor(async () => (await t.store.loadSession('slow'))?.status === 'active', 'the active record committed after the hold');
    release();
    await waitFor(async () => (await t.store.loadSession('slow'))?.status === 'idle', 'the slow run committed');
    expect((await t.store.loadSession('slow'))!.version).toBe(slowAsleep.version + 2);
    expect(wakeRuns.get('slow')).toBe(1);
  }, 120_000);

  it('a stop during the hold leaves the wake due in the stored row; the next runtime resumes the run once more', async () => {
    gate = new Promise<void>((r) => { release = r; });
    const due = clock.now() + 10_000;
    const first = t.rt!;
    await first.createAgent('slow-stop', 'holder');
    await first.sleepAgent('slow-stop', { until: due });
    await clock.advanceTo(due, 5);
    await waitFor(() => wakeRuns.get('slow-stop') === 1, 'the wake started');
    expect((await t.store.loadSession('slow-stop'))!.status).toBe('sleeping');
    // No clock advance: the stop itself lets the held record go (the aborted run never ends).
    await first.stop();
    t.rt = undefined;
    const stored = (await t.store.loadSession('slow-stop'))!;
    // The held record (`active`, the wake carried over and due) when the stop let it go; or, when
    // the partition's release at the stop's deadline dropped the session first (a loaded machine:
    // both are 10 s deadlines), the row as it was (`sleeping`, the wake due). Either way the wake
    // is still due in the store, which is what the next runtime needs.
    expect(['active', 'sleeping']).toContain(stored.status);
    expect(stored.wakeAt).not.toBeNull();
    expect(stored.wakeAt!).toBeLessThanOrEqual(clock.now());

    release();
    t.rt = await startRuntime(t.nats.url, { agents: [agent], store: t.store, clock });
    await waitFor(async () => {
      await clock.advance(1, 1);
      return (await t.store.loadSession('slow-stop'))?.status === 'idle';
    }, 'the wake resumed and committed on the next runtime', 60_000, 50);
    expect(wakeRuns.get('slow-stop')).toBe(2);
  }, 120_000);
});
