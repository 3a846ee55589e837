// A session remembers its recent events (the ids on their copies, `Agentry-Event-Id`), so a copy
// of an event it already has is skipped however late it comes. Copies of one event share their
// `Nats-Msg-Id` (`evt:<event id>:<session>`) and the inbox stream drops repeats, but only inside its
// duplicate window (2 minutes): a route broken off by a crash or a pause and done again later
// publishes copies the stream stores a second time. Here such late copies are published straight
// to the inbox with a msgId the stream has never seen, against real NATS and Postgres.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineAgent } from '../../actors/index.js';
import type { Runtime } from '../../runtime/index.js';
import type { NatsConnection } from '@nats-io/transport-node';
import { natsClient, publish, sleep, startRuntime, startStack, type Stack, waitFor } from '../helpers.js';

let stack: Stack;
let rt: Runtime;
let nc: NatsConnection;

/** Records every event it handles in its state; `{ sleep: true }` puts it to sleep for an hour, waking on no event. */
const rec = defineAgent<{ got: string[] }>({
  type: 'ev-rec',
  onMessage: 'queue',
  initialState: () => ({ got: [] }),
  handle(batch, ctx) {
    for (const m of batch) if (m.kind === 'event') ctx.state.got.push(`${m.eventType}:${JSON.stringify(m.body)}`);
    if (batch.some((m) => m.kind === 'message' && (m.body as { sleep?: boolean } | null)?.sleep === true)) return ctx.sleep({ durationMs: 3_600_000 });
    return undefined;
  },
});

let n = 0;
/** Publishes one copy of event `eventId` to `sid`'s inbox, as the router does, with a msgId never used before. */
async function copy(sid: string, eventId: string, i: number): Promise<void> {
  await publish(nc, sid, { i }, {
    'Agentry-Kind': 'event', 'Agentry-Event-Type': 'mem.test', 'Agentry-Event-Id': eventId, 'Nats-Msg-Id': `late-${Date.now()}-${n++}`,
  });
}

async function got(sid: string): Promise<string[]> {
  const view = await rt.getAgent(sid);
  return (view.userState as { got: string[] }).got;
}

/** Sends a plain message and waits for it to be handled: everything published before it was handled or skipped. */
async function settle(sid: string): Promise<void> {
  const seq = await publish(nc, sid, { ping: true });
  await waitFor(async () => ((await rt.getHistory(sid, { limit: 1 }))[0]?.seq ?? -1) >= seq, `ping ${seq} handled`, 30_000);
}

/** A new runtime over the same store and NATS (sessions are loaded from their stored rows). */
async function restart(): Promise<void> {
  await rt.stop();
  rt = await startRuntime(stack.nats.url, { agents: [rec], store: stack.store, config: { defaultAgentType: 'ev-rec' } });
  Object.assign(stack, { rt });
}

beforeAll(async () => {
  stack = await startStack('evmemory', { agents: [rec], config: { defaultAgentType: 'ev-rec' } });
  rt = stack.rt;
  nc = await natsClient(stack.nats.url);
});
afterAll(async () => { await nc?.close(); await stack?.stop(); });

describe('a session remembers its events', () => {
  it('skips a late copy of an event it handled, also after a restart; a re-created stream\'s reused sequence is a new event', async () => {
    const sid = 'mem-live';
    await rt.createAgent(sid, 'ev-rec');
    await copy(sid, '7.mi3k2x1a', 1);
    await copy(sid, '7.mi3k2x1a', 1); // the same event again, as a re-route after the window would publish it
    await settle(sid);
    expect(await got(sid)).toEqual(['mem.test:{"i":1}']);

    // A new runtime over the same store and NATS: the memory comes from the stored snapshot.
    await restart();
    await copy(sid, '7.mi3k2x1a', 1);
    await copy(sid, '7.mi3k2x1b', 2); // same sequence, another stream time: the stream was re-created
    await settle(sid);
    expect(await got(sid)).toEqual(['mem.test:{"i":1}', 'mem.test:{"i":2}']);
  }, 120_000);

  it('skips a copy of an event deferred while the session sleeps, also after a restart, and handles the event once when it wakes', async () => {
    const sid = 'mem-sleep';
    await rt.createAgent(sid, 'ev-rec');
    await publish(nc, sid, { sleep: true });
    await waitFor(async () => (await rt.getAgent(sid)).state === 'sleeping', 'asleep', 30_000);
    await copy(sid, '9.mi3k2x1a', 3);
    await copy(sid, '9.mi3k2x1a', 3);
    await sleep(500); // both reached the session (deferred or skipped)
    // Restarted, the session is loaded from its stored row: the deferred copy is in its stored
    // mailbox, and a further copy must still be recognised.
    await restart();
    await copy(sid, '9.mi3k2x1a', 3);
    await sleep(500);
    await rt.wakeAgent(sid);
    await settle(sid);
    expect(await got(sid)).toEqual(['mem.test:{"i":3}']);
  }, 120_000);

  it('remembers the events of the last minutes (at least the last 32, at most 512), each once', async () => {
    const { rememberEvents, REMEMBERED_EVENTS, REMEMBER_EVENTS_MS, MAX_REMEMBERED_EVENTS, seenEventsOf } = await import('../../runtime/host/liveSession.js');
    const idAt = (seq: number, ms: number): string => `${seq}.${ms.toString(36)}`;
    const t0 = 1_795_000_000_000;
    // 100 events one second apart: all inside the time horizon, all remembered.
    let seen: readonly string[] = [];
    for (let i = 0; i < 100; i++) seen = rememberEvents(seen, [idAt(i, t0 + i * 1000)]);
    expect(seen.length).toBe(100);
    // One far newer event: those older than the horizon go, but the last 32 stay.
    seen = rememberEvents(seen, [idAt(100, t0 + 99_000 + REMEMBER_EVENTS_MS + 1)]);
    expect(seen.length).toBe(REMEMBERED_EVENTS);
    expect(seen.at(-1)).toBe(idAt(100, t0 + 99_000 + REMEMBER_EVENTS_MS + 1));
    // A flood inside the horizon is capped.
    let flood: readonly string[] = [];
    for (let i = 0; i < MAX_REMEMBERED_EVENTS + 40; i++) flood = rememberEvents(flood, [idAt(i, t0 + i)]);
    expect(flood.length).toBe(MAX_REMEMBERED_EVENTS);
    expect(flood[0]).toBe(idAt(40, t0 + 40));
    // An id seen again moves to the newest end, once.
    const again = rememberEvents(seen, [seen[0]!]);
    expect(again.at(-1)).toBe(seen[0]);
    expect(again.filter((x) => x === seen[0]).length).toBe(1);
    expect(seenEventsOf({ value: 'idle' })).toEqual([]);
    expect(seenEventsOf({ events: ['1.a', 2] })).toEqual(['1.a']);
  });
});
