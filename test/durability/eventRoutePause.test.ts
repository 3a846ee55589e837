// An event's fan-out by a node paused past the router's ack wait, over real NATS + Postgres with
// two runtime nodes in child processes (test/fixtures/crash-runtime.mjs, agent `rec-event`,
// subscribed to `fanout.>`).
//
// Node A starts routing one event to 2,500 subscribers (three chunks of inbox publishes) and is
// SIGSTOPped the moment the first copy reaches the inbox. Node B starts, gets the event again
// after the router's ack wait and routes all of it; the copies A had published are dropped by
// the inbox's duplicate window. Then the test waits until that window has passed and resumes
// A. A still holds the route it was paused in, the copies it had handed to its NATS client, and
// (often) a redelivery of the event that waited in its socket: on the code before 2026-11-28 it
// sent those copies, went on with its route and routed the event again, and since the window had
// passed the inbox stored every copy again: all 2,500 subscribers handled the event twice. Now A
// abandons the route it held too long for its ack wait and the stale redelivery (RouteHold), and each
// session skips a copy of an event it already has (its remembered event ids): every subscriber
// has the event exactly once. (Under heavy load B's route may itself end after the window: the
// sessions' memory makes that change nothing either.)
import { afterAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { childSuite, recordedEvents, startChild, type ChildConfig, type ChildRuntime } from './childRuntime.js';
import { assertDistFresh } from '../builtFresh.js';
import { sleep } from '../helpers.js';

const SUBSCRIBERS = 2_500;
const ACK_WAIT_MS = 4_000;
const DUPLICATE_WINDOW_MS = 20_000;

const t = childSuite('evpause', { fresh: () => { assertDistFresh('dist/runtime/wakeups.js', ['runtime/wakeups.ts', 'runtime/transport.ts', 'runtime/config.ts', 'test/fixtures/crash-runtime.mjs']); } });
const ids = Array.from({ length: SUBSCRIBERS }, (_, i) => `evp-${i}`);
let nodeB: ChildRuntime | undefined;

/** One node's configuration: its own control subject and node id, a short ack wait and duplicate window. */
function nodeCfg(name: string): ChildConfig {
  return {
    ...t.cfg, ctlSubject: `${t.cfg.ctlSubject}.${name}`,
    extra: { nodeId: `node-${name}`, ackWaitMs: ACK_WAIT_MS, duplicateWindowMs: DUPLICATE_WINDOW_MS, leaseTtlMs: 3_000 },
  };
}

/** Each subscriber's recorded events (the `i` of each event it handled), from its committed row. */
const recorded = (c: ChildRuntime): Promise<Map<string, number[]>> => recordedEvents(c, ids);

describe('event fan-out by a node paused past the ack wait', () => {
  it('the paused node\'s stale route and late copies change nothing: every subscriber has the event exactly once', async () => {
    const a = t.child = await startChild(t.nc, nodeCfg('a'), t.log);
    for (let i = 0; i < ids.length; i += 250) await Promise.all(ids.slice(i, i + 250).map((id) => a.ctl('createAgent', id, 'rec-event')));

    // Every copy published to an inbox (the core subscription sees the publishes the stream
    // drops as duplicates too): who was reached, how often, and when.
    const copies = new Map<string, number>();
    let allReachedAt = 0;
    let paused: (() => void) | undefined;
    const pausedP = new Promise<void>((r) => { paused = r; });
    const sub = t.nc.subscribe('agentry.part.>', {
      callback: (_err, m) => {
        if (m.headers?.get('Agentry-Event-Type') !== 'fanout.pause') return;
        const sid = m.subject.split('.').pop()!;
        if (copies.size === 0) { process.kill(a.pid, 'SIGSTOP'); paused?.(); }
        copies.set(sid, (copies.get(sid) ?? 0) + 1);
        if (allReachedAt === 0 && copies.size === SUBSCRIBERS) allReachedAt = Date.now();
      },
    });
    try {
      const published = a.ctl('publishEvent', 'fanout.pause', { i: 1 }).catch(() => null);
      await pausedP;
      const reachedByA = copies.size;
      expect(reachedByA).toBeLessThan(SUBSCRIBERS); // A was stopped mid-route

      // B takes the event after A's ack wait and routes all of it.
      nodeB = await startChild(t.nc, nodeCfg('b'), t.log);
      const deadline = Date.now() + 60_000;
      while (allReachedAt === 0) {
        if (Date.now() > deadline) expect(`${copies.size} of ${SUBSCRIBERS} reached`).toBe('all reached by node B');
        await sleep(100);
      }
      await expect.poll(async () => [...(await recorded(nodeB!)).values()].filter((g) => g.length > 0).length, { timeout: 60_000, interval: 500 }).toBe(SUBSCRIBERS);

      // Resume A once the copies B published have left the duplicate window.
      await sleep(Math.max(0, allReachedAt + DUPLICATE_WINDOW_MS + 2_000 - Date.now()));
      process.kill(a.pid, 'SIGCONT');
      await published;
      // Give A time to publish what it still would (on the old code: its next chunks at once),
      // and B to handle any copy that was stored.
      await sleep(8_000);
      const got = await recorded(nodeB);
      const twice = ids.filter((id) => (got.get(id) ?? []).length > 1);
      const never = ids.filter((id) => (got.get(id) ?? []).length === 0);
      if (twice.length + never.length > 0) {
        const routing = readFileSync(t.log, 'utf8').split('\n').filter((l) => /rout|event/i.test(l)).slice(-30).join('\n');
        const hist = new Map<number, number>();
        for (const n of copies.values()) hist.set(n, (hist.get(n) ?? 0) + 1);
        const h0 = twice[0] === undefined ? null : await nodeB.ctl('getHistory', twice[0], { limit: 5 });
        expect(`copies published per subscriber (count: subscribers) ${JSON.stringify([...hist])}; history of ${twice[0]}: ${JSON.stringify(h0)}; ${twice.length} twice (e.g. ${twice.slice(0, 3).join(', ')}), ${never.length} never; reached by A before its pause: ${reachedByA}; the nodes' routing log:\n${routing}`).toBe('every subscriber once');
      }
    } finally {
      sub.unsubscribe();
      try { process.kill(a.pid, 'SIGCONT'); } catch { /* gone */ }
    }
  }, 300_000);
});

afterAll(async () => { if (nodeB && !nodeB.exited()) await nodeB.kill(); });
