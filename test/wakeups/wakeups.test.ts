// Wake-ups in real time against a real nats-server and real Postgres: timed sleeps (10,000 of
// them), events (listed, urgent, no recipient), prioritized mail, waitFor, and the
// maxActiveSessions admission queue.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { defineAgent, type InboxMessage } from '../../actors/index.js';
import type { Store } from '../../persistence/types.js';
import type { Runtime } from '../../runtime/index.js';
import { natsClient, publish, sleep, startNats, startStack, type Stack, waitFor, stateOf } from '../helpers.js';

type Nats = Awaited<ReturnType<typeof startNats>>;
let nats: Nats;
let stack: Stack;
let store: Store;
let rt: Runtime;

/** What each session's handler saw, batch by batch (the handler stands in for the LLM). */
const batches = new Map<string, { at: number; items: string[] }[]>();
const label = (m: InboxMessage): string =>
  m.kind === 'wake' ? `wake:${(m.body as { reason: string }).reason}` : m.kind === 'event' ? `event:${m.eventType}` : `${m.kind}:${JSON.stringify(m.body)}`;

/** `{ sleepMs, wakeEvents?, mail? }` puts it to sleep; `{ wait, timeoutMs }` waits; anything else is recorded. */
const sleeper = defineAgent<{ until?: number }>({
  type: 'sleeper',
  onMessage: 'queue',
  handle(batch, ctx) {
    const list = batches.get(ctx.sessionId) ?? [];
    list.push({ at: ctx.now(), items: batch.map(label) });
    batches.set(ctx.sessionId, list);
    const cmd = batch[0]?.body as { sleepMs?: number; wakeEvents?: string[]; mail?: 'high'; wait?: string; timeoutMs?: number } | null;
    if (batch[0]?.kind === 'message' && cmd?.sleepMs !== undefined) {
      ctx.state.until = ctx.now() + cmd.sleepMs;
      return ctx.sleep({ until: ctx.state.until, ...(cmd.wakeEvents ? { wakeEvents: cmd.wakeEvents } : {}), ...(cmd.mail ? { wakeOnMailPriority: cmd.mail } : {}) });
    }
    if (batch[0]?.kind === 'message' && cmd?.wait !== undefined) {
      return ctx.waitFor({ event: cmd.wait, ...(cmd.timeoutMs !== undefined ? { timeoutMs: cmd.timeoutMs } : {}) });
    }
    return undefined;
  },
});

const subscriber = defineAgent({
  type: 'subscriber',
  onMessage: 'queue',
  subscribe: ['alerts.*'],
  handle(batch, ctx) {
    const list = batches.get(ctx.sessionId) ?? [];
    list.push({ at: ctx.now(), items: batch.map(label) });
    batches.set(ctx.sessionId, list);
    if (batch[0]?.kind === 'message') return ctx.sleep({ durationMs: 3_600_000 }); // sleeps an hour, lists no event
    return undefined;
  },
});

const seen = (sid: string): string[] => (batches.get(sid) ?? []).flatMap((b) => b.items);

beforeAll(async () => {
  stack = await startStack('wakeups', { agents: [sleeper, subscriber], config: { defaultAgentType: 'sleeper' } });
  ({ nats, store, rt } = stack);
});

afterAll(async () => {
  await stack?.stop();
});

describe('wake-ups', () => {
  it('wakes every one of 10,000 sessions sleeping 1-5 s, none early', async () => {
    const n = 10_000;
    const nc = await natsClient(nats.url);
    const planned = new Map<string, number>();
    const acks: Promise<number>[] = [];
    for (let i = 0; i < n; i++) {
      const sid = `nap-${i}`;
      acks.push(publish(nc, sid, { sleepMs: 1000 + Math.floor(Math.random() * 4000) }));
      if (acks.length >= 1000) await Promise.all(acks.splice(0));
    }
    await Promise.all(acks);
    await nc.close();
    await waitFor(() => [...Array(n).keys()].every((i) => seen(`nap-${i}`).includes('wake:time')), 'all 10,000 wakes', 240_000, 200);
    let early = 0;
    for (let i = 0; i < n; i++) {
      const sid = `nap-${i}`;
      const until = (await rt.store.loadSession(sid))?.snapshot as { context: { userState: { until: number } } };
      planned.set(sid, until.context.userState.until);
      const wake = batches.get(sid)!.find((b) => b.items[0] === 'wake:time')!;
      if (wake.at < planned.get(sid)!) early++;
    }
    expect(early).toBe(0);
  }, 300_000);

  it('wakes sleepers that list system_alert, not the others; urgent events wake subscribers; an unheard event is dead-lettered', async () => {
    await rt.sendMessage('listens', { sleepMs: 3_600_000, wakeEvents: ['system_alert'] });
    await rt.sendMessage('deaf', { sleepMs: 3_600_000, wakeEvents: ['other'] });
    await rt.createAgent('sub-1', 'subscriber');
    await rt.sendMessage('sub-1', 'sleep now');
    await waitFor(async () => (await stateOf(rt, 'listens')) === 'sleeping' && (await stateOf(rt, 'deaf')) === 'sleeping' && (await stateOf(rt, 'sub-1')) === 'sleeping', 'three sleepers');
    await waitFor(async () => (await store.eventRecipients('system_alert')).includes('listens'), 'committed wake events');

    const r1 = await rt.publishEvent('system_alert', { disk: 'full' });
    expect(r1.recipients).toBe(1);
    await waitFor(() => seen('listens').includes('event:system_alert'), 'listens woke');
    expect(seen('listens').slice(-2)).toEqual(['wake:event', 'event:system_alert']);
    expect((await rt.getAgent('deaf')).state).toBe('sleeping');

    // A normal event to a subscribed sleeper that does not list it waits for its wake...
    const r2 = await rt.publishEvent('alerts.cpu', { load: 9 }, { priority: 'normal' });
    expect(r2.recipients).toBe(1);
    await waitFor(async () => (await rt.getAgent('sub-1')).mailbox.deferred.length === 1, 'the event deferred to the wake');
    await sleep(300);
    expect((await rt.getAgent('sub-1')).state).toBe('sleeping');
    expect((await rt.getAgent('sub-1')).mailbox.deferred).toHaveLength(1);
    // ...an urgent one wakes it at once, and it then gets both, oldest first.
    await rt.publishEvent('alerts.fire', null, { priority: 'urgent' });
    await waitFor(() => seen('sub-1').includes('event:alerts.fire'), 'urgent wake');
    expect(seen('sub-1').slice(1)).toEqual(['wake:event', 'event:alerts.cpu', 'event:alerts.fire']);

    // Published straight to NATS (no SDK): routed by the runtime's event router.
    const nc = await natsClient(nats.url);
    const h = natsHeaders();
    h.set('Agentry-Priority', 'urgent');
    await rt.sendMessage('deaf', 'still asleep'); // deferred
    await jetstream(nc).publish('agentry.events.other', JSON.stringify({ via: 'raw' }), { headers: h });
    await waitFor(() => seen('deaf').includes('event:other'), 'raw event routed');
    expect(seen('deaf').slice(1)).toEqual(['wake:event', 'message:"still asleep"', 'event:other']);
    await nc.close();

    const r3 = await rt.publishEvent('nobody.listens', { x: 1 });
    expect(r3.recipients).toBe(0);
    const dls = await waitFor(async () => {
      const all = await store.listDeadLetters({ sessionId: '_events' });
      return all.some((d) => d.id === `event:${r3.seq}`) ? all : null;
    }, 'the unheard event dead-lettered by the router');
    expect(dls.find((d) => d.id === `event:${r3.seq}`)).toMatchObject({ reason: 'no-recipient', payload: { type: 'nobody.listens', data: { x: 1 } } });
    const history = await rt.listEvents({ type: 'system_alert' });
    expect(history.map((e) => e.data)).toEqual([{ disk: 'full' }]);
  });

  it('wakeOnMailPriority high: normal mail does not wake, high mail does, and both arrive in order', async () => {
    await rt.sendMessage('mailbox', { sleepMs: 3_600_000, mail: 'high' });
    await waitFor(async () => (await stateOf(rt, 'mailbox')) === 'sleeping', 'sleeping');
    await rt.sendMail('mailbox', { n: 1 }, { from: 'boss', priority: 'normal' });
    await waitFor(async () => (await rt.getAgent('mailbox')).mailbox.deferred.length === 1, 'deferred');
    await sleep(300);
    expect((await rt.getAgent('mailbox')).state).toBe('sleeping');
    await rt.sendMail('mailbox', { n: 2 }, { from: 'boss', priority: 'high' });
    await waitFor(() => seen('mailbox').includes('mail:{"n":2}'), 'high mail wakes');
    expect(seen('mailbox').slice(1)).toEqual(['wake:mail', 'mail:{"n":1}', 'mail:{"n":2}']);
  });

  it('waitFor resumes on the event; without it, resumes with a timeout at the right time', async () => {
    await rt.sendMessage('waiter', { wait: 'answer', timeoutMs: 60_000 });
    await waitFor(async () => (await stateOf(rt, 'waiter')) === 'waiting', 'waiting');
    await waitFor(async () => (await store.eventRecipients('answer')).includes('waiter'), 'committed wait');
    await rt.publishEvent('answer', { value: 42 });
    await waitFor(() => seen('waiter').includes('event:answer'), 'resumed');
    expect((await rt.getAgent('waiter')).state).toBe('idle');

    // Nothing else happens to waiter-2: the timeout alone resumes it (how late is bench/'s business).
    await rt.sendMessage('waiter-2', { wait: 'never', timeoutMs: 1500 });
    await waitFor(() => seen('waiter-2').includes('wake:timeout'), 'timeout', 60_000);
    const b = batches.get('waiter-2')!;
    const dueAt = b[0]!.at + 1500;
    expect(b[1]!.at).toBeGreaterThanOrEqual(dueAt); // never early
    expect(b[1]!.items).toEqual(['wake:timeout']);
  });
});
