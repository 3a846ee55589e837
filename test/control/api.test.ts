/* eslint-disable @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-argument -- the raw client deals in untyped JSON on purpose: it must not share the server's types */
// Issue 5, proof 1: every control-API method exercised over a real WebSocket by an independent
// JSON-RPC client (raw `ws` + JSON), including the error cases, against a runtime on a real
// nats-server and real Postgres. Results are also checked against the published schemas.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineAgent, TerminalError } from '../../actors/index.js';
import { METHOD_NAMES, methods } from '../../client/index.js';
import { echo } from '../../examples/echo.js';
import { slowWriter } from '../../examples/slowWriter.js';
import { startControlPlane, type ControlPlane, type Runtime } from '../../runtime/index.js';
import { natsClient, startNats, waitFor, startStack, type Stack } from '../helpers.js';
import { RawRpc } from './rawRpc.js';

type Nats = Awaited<ReturnType<typeof startNats>>;

let nats: Nats;
let stack: Stack;
let rt: Runtime;
let cp: ControlPlane;
let c: RawRpc;

const failing = defineAgent({
  type: 'failing',
  maxAttempts: 1,
  handle(batch) { throw new TerminalError(`cannot handle ${JSON.stringify(batch[0]?.body)}`); },
});

/** Asserts a result matches the method's published result schema. */
function conforms(method: keyof typeof methods, result: unknown): void {
  const r = methods[method].result.safeParse(result);
  expect(r.success, `${method} result ${JSON.stringify(result)?.slice(0, 300)} vs schema: ${r.error?.message ?? ''}`).toBe(true);
}

beforeAll(async () => {
  stack = await startStack('control_api', { agents: [echo, slowWriter, failing] });
  ({ nats, rt } = stack);
  cp = await startControlPlane(rt, { port: 0 });
  c = await RawRpc.open(cp.rpcUrl);
});

afterAll(async () => {
  c?.close();
  await cp?.close();
  await stack?.stop();
});

describe('control API over a raw WebSocket', () => {
  it('ping, its async. alias, and rpc.discover listing every method', async () => {
    const pong = await c.ok('ping');
    expect(pong).toMatchObject({ pong: true, protocol: expect.any(String) });
    conforms('ping', pong);
    expect((await c.ok('async.ping', {})).pong).toBe(true);
    const doc = await c.ok('rpc.discover');
    expect(doc.openrpc).toMatch(/^1\.2/);
    expect(doc.methods.map((m: { name: string }) => m.name).sort()).toEqual([...METHOD_NAMES].sort());
  });

  it('getAgent: updatedAt is the time of the last committed change, for a live session too', async () => {
    const t0 = Date.now();
    await c.ok('createAgent', { agentId: 'api-upd', type: 'echo' });
    const t1 = Date.now();
    const fresh = await c.ok('getAgent', { agentId: 'api-upd' });
    expect(fresh.live).toBe(true);
    expect(fresh.updatedAt).toBeGreaterThanOrEqual(t0);
    expect(fresh.updatedAt).toBeLessThanOrEqual(t1);
    const listed = (await c.ok('listAgents', { idContains: 'api-upd' })).agents[0];
    expect(listed.updatedAt).toBeGreaterThanOrEqual(t0); // the stored row's: the same commit
    expect(listed.updatedAt).toBeLessThanOrEqual(t1);
    const t2 = Date.now();
    await c.ok('sendMessage', { agentId: 'api-upd', message: 'x' });
    await waitFor(async () => (await c.ok('getHistory', { agentId: 'api-upd' })).messages.length > 0, 'the message handled');
    const after = await c.ok('getAgent', { agentId: 'api-upd' });
    expect(after.live).toBe(true);
    expect(after.updatedAt).toBeGreaterThanOrEqual(t2);
    expect(after.updatedAt).toBeLessThanOrEqual(Date.now());
  });

  it('createAgent / getAgent, with their errors', async () => {
    const created = await c.ok('createAgent', { agentId: 'api-a', type: 'echo' });
    expect(created).toEqual({ agentId: 'api-a', type: 'echo', state: 'idle' });
    conforms('createAgent', created);
    const view = await c.ok('getAgent', { agentId: 'api-a' });
    expect(view).toMatchObject({ agentId: 'api-a', type: 'echo', state: 'idle', userState: { turns: 0 } });
    conforms('getAgent', view);
    // alias
    expect((await c.ok('async.getAgent', { agentId: 'api-a' })).agentId).toBe('api-a');
    // initial user state
    await c.ok('async.createAgent', { agentId: 'api-b', type: 'echo', state: { turns: 41 }, config: { wakeOnPriority: 'high' } });
    expect((await c.ok('getAgent', { agentId: 'api-b' })).userState).toEqual({ turns: 41 });

    const exists = await c.err('createAgent', { agentId: 'api-a', type: 'echo' });
    expect(exists).toMatchObject({ code: 4009, data: { type: 'SESSION_EXISTS', retryable: false } });
    const badType = await c.err('createAgent', { agentId: 'api-z', type: 'nope' });
    expect(badType).toMatchObject({ code: 4005, data: { type: 'UNKNOWN_AGENT_TYPE' } });
    const badId = await c.err('createAgent', { agentId: 'a.b', type: 'echo' });
    expect(badId).toMatchObject({ code: 4001, data: { type: 'INVALID_SESSION_ID' } });
    const missing = await c.err('createAgent', { agentId: 'api-z' });
    expect(missing.code).toBe(-32602);
    expect(missing.data.issues[0].path).toEqual(['type']);
    const typo = await c.err('sleepAgent', { agentId: 'api-a', untill: 5 });
    expect(typo.code).toBe(-32602);
    expect(JSON.stringify(typo.data.issues)).toContain('untill');
    const wrongType = await c.err('getAgent', { agentId: 42 });
    expect(wrongType).toMatchObject({ code: -32602, data: { type: 'INVALID_PARAMS' } });
    const byPosition = await c.err('getAgent', ['api-a']);
    expect(byPosition.code).toBe(-32602);
    const unknown = await c.err('getAgent', { agentId: 'nobody' });
    expect(unknown).toMatchObject({ code: 4004, message: expect.stringContaining('nobody'), data: { type: 'UNKNOWN_SESSION', retryable: false } });
  });

  it('subscribe to one session: sendMessage yields state and output notifications with seq 1, 2, 3…; history and transitions follow', async () => {
    await c.ok('createAgent', { agentId: 'api-sub', type: 'echo' });
    const { subscriptionId } = await c.ok('subscribe', { agentId: 'api-sub', kinds: ['state', 'output'] });
    expect(typeof subscriptionId).toBe('string');
    const sent = await c.ok('sendMessage', { agentId: 'api-sub', message: { text: 'hello' }, priority: 'high' });
    expect(sent.seq).toBeGreaterThan(0);
    conforms('sendMessage', sent);
    const reply = await c.waitFor(() => c.notifications.find((n) => n.params.subscriptionId === subscriptionId && n.params.kind === 'output'));
    expect(reply.params).toMatchObject({ agentId: 'api-sub', data: { kind: 'reply', body: { text: 'hello', merged: 1 } } });
    await c.waitFor(() => c.notifications.find((n) => n.params.subscriptionId === subscriptionId && n.params.kind === 'state' && n.params.data.to === 'idle'));
    const mine = c.notifications.filter((n) => n.params.subscriptionId === subscriptionId);
    expect(mine.map((n) => n.params.seq)).toEqual(mine.map((_, i) => i + 1));
    const states = mine.filter((n) => n.params.kind === 'state').map((n) => n.params.data);
    expect(states[0]).toMatchObject({ agentId: 'api-sub', from: 'idle', to: expect.stringMatching(/^active/), state: 'active' });

    const hist = await waitFor(async () => { const h = await c.ok('getHistory', { agentId: 'api-sub' }); return h.messages.length ? h : null; }, 'history');
    conforms('getHistory', hist);
    expect(hist.messages[0]).toMatchObject({ seq: sent.seq, kind: 'message', body: { text: 'hello' }, priority: 'high', outcome: 'ok' });
    const tr = await c.ok('getTransitions', { agentId: 'api-sub' });
    conforms('getTransitions', tr);
    expect(tr.transitions.some((t: { from: string; to: string }) => t.from === 'idle' && t.to.startsWith('active'))).toBe(true);
    expect((await c.err('getHistory', { agentId: 'nobody' })).data.type).toBe('UNKNOWN_SESSION');
    expect((await c.err('getTransitions', { agentId: 'nobody' })).data.type).toBe('UNKNOWN_SESSION');
    expect((await c.err('getHistory', { agentId: 'api-sub', limit: 0 })).code).toBe(-32602);

    expect(await c.ok('unsubscribe', { subscriptionId })).toEqual({ unsubscribed: true });
    expect(await c.ok('unsubscribe', { subscriptionId })).toEqual({ unsubscribed: false });
    const before = c.notifications.length;
    await c.ok('sendMessage', { agentId: 'api-sub', message: 'after unsubscribe' });
    await waitFor(async () => (await c.ok('getHistory', { agentId: 'api-sub' })).messages.length === 2, 'second message handled');
    expect(c.notifications.length).toBe(before);
  });

  it('getHistory: a wake record sorts by its time among the messages (newest first), not last', async () => {
    await c.ok('createAgent', { agentId: 'api-hist', type: 'echo' });
    const handled = async (n: number): Promise<{ kind: string; body: unknown }[]> =>
      waitFor(async () => { const h = await c.ok('getHistory', { agentId: 'api-hist' }); return h.messages.filter((m: { kind: string }) => m.kind !== 'wake').length >= n ? h.messages : null; }, `${n} message(s) handled`);
    await c.ok('sendMessage', { agentId: 'api-hist', message: 'one' });
    await handled(1);
    await c.ok('sleepAgent', { agentId: 'api-hist' });
    await c.ok('sendMessage', { agentId: 'api-hist', message: 'two' }); // deferred: it waits for the wake
    await waitFor(async () => (await c.ok('getAgent', { agentId: 'api-hist' })).mailbox.deferred.length === 1, 'two deferred');
    await c.ok('wakeAgent', { agentId: 'api-hist' });
    await handled(2);
    await c.ok('sendMessage', { agentId: 'api-hist', message: 'three' });
    const messages = await handled(3);
    const show = (ms: { kind: string; body: unknown }[]): unknown[] => ms.map((m) => (m.kind === 'wake' ? 'wake' : m.body));
    expect(show(messages)).toEqual(['three', 'wake', 'two', 'one']);
    expect(messages[1]).toMatchObject({ seq: 0, kind: 'wake', body: { reason: 'manual' } }); // seq stays the inbox's: a wake has none
    // Pages: `limit` messages and the wakes between them; the last row is a message, the next cursor.
    const first = (await c.ok('getHistory', { agentId: 'api-hist', limit: 2 })).messages;
    expect(show(first)).toEqual(['three', 'wake', 'two']);
    const second = (await c.ok('getHistory', { agentId: 'api-hist', limit: 2, before: first[2].seq })).messages;
    expect(show(second)).toEqual(['one']);
    expect(show((await c.ok('getHistory', { agentId: 'api-hist', limit: 1, before: first[0].seq })).messages)).toEqual(['wake', 'two']);
    expect(show((await c.ok('getHistory', { agentId: 'api-hist', limit: 1 })).messages)).toEqual(['three']);
  });

  it('subscribe answers once NATS has the subscription: output published right after, from another connection (another node), arrives', async () => {
    const other = await natsClient(nats.url);
    try {
      for (let i = 0; i < 5; i++) {
        const { subscriptionId } = await c.ok('subscribe', { agentId: `api-race-${i}`, kinds: ['output'] });
        other.publish(`agentry.out.api-race-${i}`, JSON.stringify({ n: i })); // at once, no flush of our own first
        const n = await c.waitFor(() => c.notifications.find((x) => x.params.subscriptionId === subscriptionId));
        expect(n.params).toMatchObject({ seq: 1, kind: 'output', agentId: `api-race-${i}`, data: { kind: 'reply', body: { n: i } } });
        await c.ok('unsubscribe', { subscriptionId });
      }
    } finally { await other.close(); }
  });

  it('subscribe to events by pattern and to every session', async () => {
    const ev = await c.ok('subscribe', { pattern: 'billing.*', kinds: ['event'] });
    const all = await c.ok('subscribe', { kinds: ['output'] });
    const nc = await natsClient(nats.url);
    nc.publish('agentry.events.billing.paid', JSON.stringify({ amount: 5 }));
    nc.publish('agentry.events.other.thing', JSON.stringify({ amount: 6 }));
    await nc.flush();
    const n = await c.waitFor(() => c.notifications.find((x) => x.params.subscriptionId === ev.subscriptionId));
    expect(n.params).toMatchObject({ seq: 1, kind: 'event', data: { type: 'billing.paid', body: { amount: 5 } } });
    await c.ok('createAgent', { agentId: 'api-any', type: 'echo' });
    await c.ok('sendMessage', { agentId: 'api-any', message: 'x' });
    const out = await c.waitFor(() => c.notifications.find((x) => x.params.subscriptionId === all.subscriptionId && x.params.agentId === 'api-any'));
    expect(out.params.data).toMatchObject({ kind: 'reply', body: { text: 'x' } });
    expect(c.notifications.filter((x) => x.params.subscriptionId === ev.subscriptionId)).toHaveLength(1);
    await nc.close();
    expect((await c.err('subscribe', { pattern: 'bad..pattern', kinds: ['event'] })).code).toBe(-32602);
    expect((await c.err('subscribe', { agentId: 'x>', kinds: ['state'] })).data.type).toBe('INVALID_SESSION_ID');
    expect((await c.err('subscribe', { kinds: [] })).code).toBe(-32602);
    await c.ok('unsubscribe', { subscriptionId: ev.subscriptionId });
    await c.ok('unsubscribe', { subscriptionId: all.subscriptionId });
  });

  it('listAgents filters and pages with a cursor', async () => {
    for (let i = 0; i < 5; i++) await c.ok('createAgent', { agentId: `page-${i}`, type: i % 2 ? 'slow-writer' : 'echo' });
    const seen: string[] = [];
    let after: string | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const r = await c.ok('listAgents', { idContains: 'page-', limit: 2, ...(after ? { after } : {}) });
      conforms('listAgents', r);
      seen.push(...r.agents.map((a: { agentId: string }) => a.agentId));
      if (!r.next) break;
      after = r.next;
    }
    expect(seen).toEqual(['page-0', 'page-1', 'page-2', 'page-3', 'page-4']);
    const slow = await c.ok('listAgents', { idContains: 'page-', type: 'slow-writer' });
    expect(slow.agents.map((a: { agentId: string }) => a.agentId)).toEqual(['page-1', 'page-3']);
    expect(slow.next).toBeNull();
    const idle = await c.ok('listAgents', { idContains: 'page-', status: 'idle' });
    expect(idle.agents).toHaveLength(5);
    expect((await c.err('listAgents', { status: 'dozing' })).code).toBe(-32602);
    expect((await c.err('listAgents', { limit: 100_000 })).code).toBe(-32602);
  });

  it('sendMail, sleepAgent, wakeAgent, stopAgent, and the errors of a stopped session', async () => {
    await c.ok('createAgent', { agentId: 'api-life', type: 'echo' });
    const mail = await c.ok('sendMail', { to: 'api-life', from: 'api-a', body: { note: 1 }, priority: 'high' });
    conforms('sendMail', mail);
    const mailed = await waitFor(async () => { const h = await c.ok('getHistory', { agentId: 'api-life' }); return h.messages.length ? h.messages[0] : null; }, 'mail handled');
    expect(mailed).toMatchObject({ kind: 'mail', from: 'api-a', priority: 'high', body: { note: 1 } });

    const beforeSleep = Date.now();
    const slept = await c.ok('sleepAgent', { agentId: 'api-life', durationMs: 3_600_000, wakeEvents: ['billing.paid'], wakeOnMailPriority: 'urgent' });
    conforms('sleepAgent', slept);
    expect(slept.state).toBe('sleeping');
    expect(slept.wakeAt).toBeGreaterThanOrEqual(beforeSleep + 3_600_000); // an hour from the call, not earlier
    const v = await c.ok('getAgent', { agentId: 'api-life' });
    expect(v.wake).toMatchObject({ events: ['billing.paid'], mailPriority: 'urgent' });
    expect((await c.err('sleepAgent', { agentId: 'api-life', untilTime: 'not a time' })).data.type).toBe('INVALID_ARGUMENT');

    const woke = await c.ok('wakeAgent', { agentId: 'api-life' });
    conforms('wakeAgent', woke);
    expect(woke.agentId).toBe('api-life');
    await waitFor(async () => (await c.ok('getAgent', { agentId: 'api-life' })).state === 'idle', 'awake and idle');

    const stopped = await c.ok('stopAgent', { agentId: 'api-life', reason: 'test' });
    expect(stopped).toEqual({ agentId: 'api-life', state: 'stopped' });
    const wake = await c.err('wakeAgent', { agentId: 'api-life' });
    expect(wake).toMatchObject({ code: 4010, data: { type: 'INVALID_TRANSITION', state: 'stopped', retryable: false } });
    expect(wake.message).toContain('stopped');
    expect((await c.err('sleepAgent', { agentId: 'api-life' })).data).toMatchObject({ type: 'INVALID_TRANSITION', state: 'stopped' });
    expect((await c.err('stopAgent', { agentId: 'api-life' })).data.type).toBe('INVALID_TRANSITION');
    expect((await c.err('sendMessage', { agentId: 'api-life', message: 'x' })).data).toMatchObject({ type: 'SESSION_STOPPED', state: 'stopped' });
    expect((await c.err('sendMail', { to: 'api-life', body: 'x' })).code).toBe(4011);
    expect((await c.err('sendMessage', { agentId: 'nobody', message: 'x' })).data.type).toBe('UNKNOWN_SESSION');
    expect((await c.err('wakeAgent', { agentId: 'nobody' })).data.type).toBe('UNKNOWN_SESSION');
    expect((await c.ok('getHistory', { agentId: 'api-life' })).messages.length).toBeGreaterThan(0); // still readable
  });

  it('sleepAgent takes until (as ctx.sleep does): ISO or epoch ms; untilTime still works; both is an error', async () => {
    await c.ok('createAgent', { agentId: 'api-until', type: 'echo' });
    const at = Date.now() + 3_600_000;
    expect(await c.ok('sleepAgent', { agentId: 'api-until', until: new Date(at).toISOString() })).toEqual({ agentId: 'api-until', state: 'sleeping', wakeAt: at });
    expect((await c.ok('sleepAgent', { agentId: 'api-until', until: at + 1 })).wakeAt).toBe(at + 1);
    expect((await c.ok('sleepAgent', { agentId: 'api-until', untilTime: at + 2 })).wakeAt).toBe(at + 2); // the deprecated name
    const both = await c.err('sleepAgent', { agentId: 'api-until', until: at, untilTime: at });
    expect(both).toMatchObject({ code: 4002, message: 'give until or untilTime (its deprecated alias), not both', data: { type: 'INVALID_ARGUMENT' } });
    expect(await c.err('sleepAgent', { agentId: 'api-until', until: 'soon' })).toMatchObject({ message: 'until must be an ISO time or epoch milliseconds', data: { type: 'INVALID_ARGUMENT' } });
    expect((await c.ok('getAgent', { agentId: 'api-until' })).wake.until).toBe(at + 2);
    const doc = await c.ok('rpc.discover');
    const params = doc.methods.find((m: { name: string }) => m.name === 'sleepAgent').params;
    expect(params.map((x: { name: string }) => x.name)).toEqual(expect.arrayContaining(['until', 'untilTime', 'durationMs']));
    expect(params.find((x: { name: string }) => x.name === 'untilTime')).toMatchObject({ deprecated: true });
    expect(params.find((x: { name: string }) => x.name === 'until').deprecated).toBeUndefined();
  });

  it('interruptAgent aborts a running handler', async () => {
    await c.ok('createAgent', { agentId: 'api-slow', type: 'slow-writer' });
    await c.ok('sendMessage', { agentId: 'api-slow', message: 'a long answer please' });
    await waitFor(async () => (await c.ok('getAgent', { agentId: 'api-slow' })).state === 'active', 'handler running');
    const r = await c.ok('interruptAgent', { agentId: 'api-slow', reason: 'operator' });
    conforms('interruptAgent', r);
    expect(r.interrupted).toBe(true);
    await waitFor(async () => (await c.ok('getAgent', { agentId: 'api-slow' })).state === 'idle', 'idle after interrupt');
  });

  it('listDeadLetters and replayDeadLetter', async () => {
    await c.ok('createAgent', { agentId: 'api-dl', type: 'failing' });
    await c.ok('sendMessage', { agentId: 'api-dl', message: { n: 1 } });
    const dls = await waitFor(async () => { const r = await c.ok('listDeadLetters', { agentId: 'api-dl' }); return r.deadLetters.length ? r : null; }, 'dead letter');
    conforms('listDeadLetters', dls);
    expect(dls.deadLetters[0]).toMatchObject({ agentId: 'api-dl', reason: 'handler-failed', replayedAt: null });
    expect(dls.deadLetters[0].error).toContain('cannot handle');
    const replay = await c.ok('replayDeadLetter', { id: dls.deadLetters[0].id });
    conforms('replayDeadLetter', replay);
    expect(replay).toEqual({ published: 1, duplicates: 0 });
    // Replayed again within JetStream's duplicate window: the inbox drops it, and the answer says so.
    expect(await c.ok('replayDeadLetter', { id: dls.deadLetters[0].id })).toEqual({ published: 0, duplicates: 1 });
    await waitFor(async () => (await c.ok('listDeadLetters', { agentId: 'api-dl' })).deadLetters.length === 2, 'replayed message failed again');
    const all = await c.ok('listDeadLetters', { limit: 1000 });
    expect(all.deadLetters.some((d: { agentId: string }) => d.agentId === 'api-dl')).toBe(true);
    expect((await c.err('replayDeadLetter', { id: 'no-such-dead-letter' })).data.type).toBe('INVALID_ARGUMENT');
    expect((await c.err('listDeadLetters', { agentId: 'bad id' })).data.type).toBe('INVALID_SESSION_ID');
  });

  it('protocol: unknown methods, notifications without answers, batches', async () => {
    const nf = await c.err('noSuchMethod', {});
    expect(nf).toMatchObject({ code: -32601, data: { type: 'METHOD_NOT_FOUND' } });
    expect((await c.err('async.noSuchMethod')).code).toBe(-32601);
    // A notification (no id) gets no answer; the next request's answer comes first.
    const framesBefore = c.frames.length;
    c.sendRaw(JSON.stringify({ jsonrpc: '2.0', method: 'ping' }));
    c.sendRaw(JSON.stringify({ jsonrpc: '2.0', method: 'noSuchMethod' }));
    const r = await c.call('ping');
    expect(r.result.pong).toBe(true);
    expect(c.frames.length).toBe(framesBefore + 1);
    // A batch answers each request in an array; notifications inside it are not answered.
    c.sendRaw(JSON.stringify([
      { jsonrpc: '2.0', id: 'b1', method: 'ping' },
      { jsonrpc: '2.0', id: 'b2', method: 'getAgent', params: { agentId: 'nobody' } },
      { jsonrpc: '2.0', method: 'ping' },
      { jsonrpc: '2.0', id: 'b3', method: 'bogus' },
      { id: 'b4', method: 'ping' },
    ]));
    const batch = await c.waitFor(() => c.frames.find((f): f is any[] => Array.isArray(f) && f.some((x: { id?: unknown }) => x.id === 'b1')));
    expect(batch.map((x: { id: unknown }) => x.id)).toEqual(['b1', 'b2', 'b3', 'b4']);
    expect(batch[1].error.code).toBe(4004);
    expect(batch[2].error.code).toBe(-32601);
    expect(batch[3].error.code).toBe(-32600);
  });

  it('an unexpected error is INTERNAL with a request id and no internals', async () => {
    const broken: Runtime = { ...rt, getAgent: () => Promise.reject(new Error('boom at /srv/secret/path.ts:12')) };
    const cp2 = await startControlPlane(broken, { port: 0 });
    const c2 = await RawRpc.open(cp2.rpcUrl);
    try {
      const e = await c2.err('getAgent', { agentId: 'api-a' });
      expect(e.code).toBe(5000);
      expect(e.data).toMatchObject({ type: 'INTERNAL', retryable: false, requestId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
      expect(JSON.stringify(e)).not.toMatch(/boom|secret|\.ts|at /);
    } finally {
      c2.close();
      await cp2.close();
    }
  });
});

describe('control API: tasks and events', () => {
  beforeAll(async () => {
    await rt.createAgent('api-task', 'echo');
  });

  it('scheduleTask fires tasks into the inbox; listTasks shows it; cancelTask removes it', async () => {
    const t = await c.ok('scheduleTask', { agentId: 'api-task', task: { job: 'tick' }, schedule: '* * * * * *', timezone: 'Europe/Paris' });
    conforms('scheduleTask', t);
    expect(t.nextRunAt).toBeGreaterThan(Date.now() - 1000);
    const listed = await c.ok('listTasks', { agentId: 'api-task' });
    conforms('listTasks', listed);
    expect(listed.tasks.find((x: { taskId: string }) => x.taskId === t.taskId)).toMatchObject({ agentId: 'api-task', schedule: '* * * * * *', timezone: 'Europe/Paris', task: { job: 'tick' } });
    expect((await c.ok('listTasks', {})).tasks.some((x: { taskId: string }) => x.taskId === t.taskId)).toBe(true);
    await waitFor(async () => (await c.ok('getHistory', { agentId: 'api-task' })).messages.some((m: { kind: string }) => m.kind === 'task'), 'a task firing', 60_000);
    expect(await c.ok('cancelTask', { taskId: t.taskId })).toEqual({ cancelled: true });
    expect(await c.ok('cancelTask', { taskId: t.taskId })).toEqual({ cancelled: false });
    expect((await c.ok('listTasks', { agentId: 'api-task' })).tasks.some((x: { taskId: string }) => x.taskId === t.taskId)).toBe(false);
  });

  it('scheduleTask rejects a bad cron expression, time zone or session', async () => {
    expect((await c.err('scheduleTask', { agentId: 'api-task', task: 1, schedule: 'every tuesday' })).data.type).toBe('INVALID_ARGUMENT');
    expect((await c.err('scheduleTask', { agentId: 'api-task', task: 1, schedule: '* * * * *', timezone: 'Mars/Olympus' })).data.type).toBe('INVALID_ARGUMENT');
    expect((await c.err('scheduleTask', { agentId: 'nobody', task: 1, schedule: '* * * * *' })).data.type).toBe('UNKNOWN_SESSION');
    expect((await c.err('scheduleTask', { agentId: 'api-task', task: 1 })).code).toBe(-32602);
    // A missing param is named, with what it holds (zod alone said "expected nonoptional").
    const noTask = await c.err('scheduleTask', { agentId: 'api-task', schedule: '* * * * *' });
    expect(noTask).toMatchObject({ code: -32602, message: 'Invalid params: task: required — the body of each task message: any JSON, null for none', data: { type: 'INVALID_PARAMS' } });
    expect(noTask.data.issues).toEqual([{ path: ['task'], code: 'invalid_type', message: 'required — the body of each task message: any JSON, null for none' }]);
    expect((await c.err('scheduleTask', { agentId: 'api-task', task: null })).message).toBe("Invalid params: schedule: required — cron expression, e.g. '0 9 * * 1-5' (seconds field optional)");
    expect((await c.err('sendMessage', { agentId: 'api-task' })).message).toBe('Invalid params: message: required — the message: any JSON; strings are delivered as text');
  });

  it('scheduleTask for an unknown session is refused even with a default agent type; a message is accepted there (it creates the session)', async () => {
    const withDefault: Runtime = { ...rt, config: { ...rt.config, defaultAgentType: 'echo' } };
    const cp2 = await startControlPlane(withDefault, { port: 0 });
    const c2 = await RawRpc.open(cp2.rpcUrl);
    try {
      const refused = await c2.err('scheduleTask', { agentId: 'api-ghost', task: null, schedule: '0 0 1 1 *' });
      expect(refused).toMatchObject({ code: 4004, data: { type: 'UNKNOWN_SESSION', retryable: false } });
      expect(refused.message).toBe('no session api-ghost: create it (createAgent) before you schedule tasks for it');
      expect((await c2.ok('listTasks', { agentId: 'api-ghost' })).tasks).toEqual([]);
      expect((await c2.ok('sendMessage', { agentId: 'api-ghost-msg', message: 'hi' })).seq).toBeGreaterThan(0);
      // An existing session is scheduled as before.
      const t = await c2.ok('scheduleTask', { agentId: 'api-task', task: null, schedule: '0 0 1 1 *' });
      await c2.ok('cancelTask', { taskId: t.taskId });
    } finally {
      c2.close();
      await cp2.close();
    }
  });

  it('each of the four methods reaches the Runtime and answers a conforming result', async () => {
    const calls: [keyof typeof methods, unknown][] = [
      ['scheduleTask', { agentId: 'api-task', task: 1, schedule: '0 0 1 1 *' }], ['listTasks', {}], ['publishEvent', { type: 'wiring.check' }], ['cancelTask', { taskId: 'none' }],
    ];
    for (const [m, params] of calls) {
      const r = await c.call(m, params);
      expect(r.error, m).toBeUndefined();
      conforms(m, r.result);
      if (m === 'scheduleTask' && r.result) await c.ok('cancelTask', { taskId: r.result.taskId });
    }
  });

  it('getNextWakeTime, scheduleWake and cancelWake move a sleeper\'s wake time', async () => {
    await c.ok('createAgent', { agentId: 'api-wt', type: 'echo' });
    expect(await c.ok('getNextWakeTime', { agentId: 'api-wt' })).toEqual({ agentId: 'api-wt', wakeAt: null });
    const slept = await c.ok('sleepAgent', { agentId: 'api-wt', durationMs: 3_600_000, wakeEvents: ['wt.ring'] });
    const next = await c.ok('getNextWakeTime', { agentId: 'api-wt' });
    conforms('getNextWakeTime', next);
    expect(next.wakeAt).toBe(slept.wakeAt);
    const later = Date.now() + 7_200_000;
    const moved = await c.ok('scheduleWake', { agentId: 'api-wt', at: new Date(later).toISOString() });
    conforms('scheduleWake', moved);
    expect(moved).toMatchObject({ agentId: 'api-wt', state: 'sleeping' });
    expect(Math.abs(moved.wakeAt - later)).toBeLessThan(1000);
    const cancelled = await c.ok('cancelWake', { agentId: 'api-wt' });
    conforms('cancelWake', cancelled);
    expect(cancelled).toEqual({ agentId: 'api-wt', state: 'sleeping', wakeAt: null });
    expect((await c.ok('getAgent', { agentId: 'api-wt' })).wake.events).toEqual(['wt.ring']); // conditions kept
    expect((await c.err('scheduleWake', { agentId: 'api-wt', at: 'someday' })).data.type).toBe('INVALID_ARGUMENT');
    await c.ok('wakeAgent', { agentId: 'api-wt' });
    await waitFor(async () => (await c.ok('getAgent', { agentId: 'api-wt' })).state === 'idle', 'awake');
    expect((await c.err('cancelWake', { agentId: 'api-wt' })).data).toMatchObject({ type: 'INVALID_TRANSITION', state: 'idle' });
    expect((await c.err('getNextWakeTime', { agentId: 'nobody' })).data.type).toBe('UNKNOWN_SESSION');
  });

  it('listEvents returns the event history by type pattern and time', async () => {
    const t0 = Date.now() - 1;
    await c.ok('publishEvent', { type: 'audit.login', data: { user: 'a' } });
    await c.ok('publishEvent', { type: 'audit.logout', data: { user: 'a' }, priority: 'high', from: 'api-a' });
    await c.ok('publishEvent', { type: 'other.thing' });
    const r = await c.ok('listEvents', { type: 'audit.*', since: t0 });
    conforms('listEvents', r);
    expect(r.events.map((e: { type: string }) => e.type)).toEqual(['audit.login', 'audit.logout']);
    expect(r.events[1]).toMatchObject({ data: { user: 'a' }, priority: 'high', from: 'api-a' });
    expect((await c.ok('listEvents', { type: 'audit.*', since: Date.now() + 60_000 })).events).toEqual([]);
    expect((await c.err('listEvents', { type: 'bad..type' })).code).toBe(-32602);
  });

  it('publishEvent reaches event subscribers and reports its sequence', async () => {
    const sub = await c.ok('subscribe', { pattern: 'invoice.*', kinds: ['event'] });
    const r = await c.ok('publishEvent', { type: 'invoice.paid', data: { id: 7 }, priority: 'urgent' });
    conforms('publishEvent', r);
    expect(r.seq).toBeGreaterThan(0);
    expect(r.recipients).toBe(0); // an API subscription watches the bus; it is not a recipient session
    const n = await c.waitFor(() => c.notifications.find((x) => x.params.subscriptionId === sub.subscriptionId));
    expect(n.params.data).toMatchObject({ type: 'invoice.paid', body: { id: 7 }, priority: 'urgent' });
    expect((await c.err('publishEvent', { type: 'bad type!' })).code).toBe(-32602);
    await c.ok('unsubscribe', { subscriptionId: sub.subscriptionId });
  });
});
