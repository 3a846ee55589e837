// An event's fan-out across kill -9, over real NATS + Postgres with the runtime in a child
// process (test/fixtures/crash-runtime.mjs, agent `rec-event`, subscribed to `fanout.>`).
//
// The node is SIGKILLed while it delivers one event to 2,500 subscribers: the moment the first
// recipient's copy reaches the inbox. Every subscriber must still get the event exactly once
// (it records each event it handles in its committed state). publishEvent used to route the
// event itself and mark it for the router to skip: the recipients not reached when the node
// died never got it. Now the event router routes every event and acks it only after the whole
// fan-out is stored; the restarted node routes it again and the inbox drops the copies already
// stored (their Nats-Msg-Id `evt:<event id>:<session>`).
//
// A retry of publishEvent with the same msgId is the same event: same seq, delivered once.
import { describe, expect, it } from 'vitest';
import { childSuite, recordedEvents, startChild, type ChildRuntime } from './childRuntime.js';
import { assertDistFresh } from '../builtFresh.js';
import { sleep } from '../helpers.js';

const SUBSCRIBERS = 2_500;

const t = childSuite('eventcrash', { fresh: () => { assertDistFresh('dist/runtime/wakeups.js', ['runtime/wakeups.ts', 'test/fixtures/crash-runtime.mjs']); } });

const ids = Array.from({ length: SUBSCRIBERS }, (_, i) => `ev-${i}`);

/** Each subscriber's recorded events (the `i` of each event it handled), from its committed row. */
const recorded = (c: ChildRuntime): Promise<Map<string, number[]>> => recordedEvents(c, ids);

/** Waits until every subscriber recorded exactly `expected`; fails listing the ones that did not. */
async function untilEveryRecorded(c: ChildRuntime, expected: number[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await recorded(c);
    const bad = ids.filter((id) => JSON.stringify(got.get(id)) !== JSON.stringify(expected));
    if (bad.length === 0) return;
    if (Date.now() > deadline) expect(`${bad.length} wrong, e.g. ${bad.slice(0, 5).map((id) => `${id}=${JSON.stringify(got.get(id))}`).join(' ')}`).toBe('none wrong');
    await sleep(500);
  }
}

describe('event fan-out across kill -9', () => {
  it('a node killed mid-fan-out: after a restart every subscriber has the event exactly once', async () => {
    const child = t.child = await startChild(t.nc, t.cfg, t.log);
    for (let i = 0; i < ids.length; i += 250) await Promise.all(ids.slice(i, i + 250).map((id) => child.ctl('createAgent', id, 'rec-event')));

    // The first copy of the event in any inbox: kill the node then, mid-fan-out.
    const copies = t.nc.subscribe('agentry.part.>');
    let seen = 0;
    const firstCopy = (async () => {
      for await (const m of copies) {
        if (m.headers?.get('Agentry-Event-Type') !== 'fanout.crash') continue;
        seen++;
        if (seen === 1) { await child.kill(); return; }
      }
    })();
    const published = child.ctl<{ seq: number; recipients: number }>('publishEvent', 'fanout.crash', { i: 1 }).catch(() => null);
    await firstCopy;
    copies.unsubscribe();
    const r = await published;
    expect(seen).toBe(1);
    // The call either answered before the kill (it had stored the event) or died with the node.
    if (r) expect(r.recipients).toBe(SUBSCRIBERS);

    t.child = await startChild(t.nc, t.cfg, t.log);
    await untilEveryRecorded(t.child, [1], 120_000);
  }, 300_000);

  it('a publishEvent retried with the same msgId is the same event: same seq, delivered once', async () => {
    const child = t.child!;
    const first = await child.ctl<{ seq: number; recipients: number; duplicate?: boolean }>('publishEvent', 'fanout.retry', { i: 2 }, { msgId: 'retry-1' });
    const again = await child.ctl<{ seq: number; recipients: number; duplicate?: boolean }>('publishEvent', 'fanout.retry', { i: 2 }, { msgId: 'retry-1' });
    expect(first.duplicate).toBeUndefined();
    expect(again).toMatchObject({ seq: first.seq, duplicate: true });
    await untilEveryRecorded(child, [1, 2], 120_000);
  }, 300_000);
});
