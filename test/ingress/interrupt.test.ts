// Issue 7, proof 3: interrupting a run. A handler awaiting a 10 s abortable operation is
// interrupted by POST /agents/:id/interrupt: its abort listener runs after the call is made and
// before the call answers (the time is printed; bounds on it belong in bench/); the batch is in history as `interrupted` (not retried, not
// dead-lettered, its reply dropped); the session is idle again and processes the message queued
// behind it and the next one normally. On an idle session the call is a no-op that says so.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineAgent } from '../../actors/index.js';
import { waitFor } from '../helpers.js';
import { startIngressEnv, type IngressEnv } from './env.js';
import { openSse } from './sseClient.js';

const runs: string[] = [];
let abortedAt = 0;
let started: () => void = () => undefined;

/** `{ tag, wait: true }` waits 10 s on an abortable timer first; every run ends with a reply. */
const slow = defineAgent({
  type: 'slow',
  onMessage: 'queue',
  maxAttempts: 3, // a retry would show: the interrupted batch must not get one
  retryBaseMs: 10,
  async handle(batch, ctx) {
    const body = batch[0]!.body as { tag: string; wait?: boolean };
    runs.push(body.tag);
    if (body.wait) {
      ctx.stream({ tag: body.tag, status: 'working' });
      ctx.reply({ tag: body.tag, partial: true }); // dropped: the run does not complete
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, 10_000);
        ctx.signal.addEventListener('abort', () => {
          abortedAt = performance.now();
          clearTimeout(timer);
          reject(new Error('aborted'));
        }, { once: true });
        started();
      });
    }
    ctx.reply({ tag: body.tag, done: true });
    return undefined;
  },
});

let env: IngressEnv;

beforeAll(async () => {
  env = await startIngressEnv('ingress_interrupt', [slow]);
});

afterAll(async () => {
  await env?.stop();
});

describe('POST /agents/:agentId/interrupt', () => {
  it('aborts a handler awaiting a 10 s operation before the call answers; the batch is interrupted, not retried nor dead-lettered; later messages run normally', async () => {
    const sid = 'int-1';
    await env.rt.createAgent(sid, 'slow');
    // The route on an idle session is a no-op that says so.
    expect((await env.post(`/agents/${sid}/interrupt`)).json.interrupted).toBe(false);
    const s = await openSse(`${env.cp.url}/agents/${sid}/stream`, env.auth);
    const running = new Promise<void>((r) => { started = r; });
    expect((await env.post(`/agents/${sid}/messages`, { message: { tag: 'long', wait: true } })).status).toBe(202);
    await running;
    expect((await env.post(`/agents/${sid}/messages`, { message: { tag: 'queued' } })).status).toBe(202);
    await waitFor(async () => (await env.rt.getAgent(sid)).mailbox.pending === 1, 'the second message queued behind the run');
    await s.until((ev) => ev.some((e) => e.event === 'chunk'), 'the running handler\'s chunk');

    const t0 = performance.now();
    const r = await env.post(`/agents/${sid}/interrupt`, { reason: 'user pressed stop' });
    const answered = performance.now();
    // Happened-before: the call aborted the handler (not its 10 s timer), before answering.
    expect(abortedAt).toBeGreaterThan(t0);
    expect(abortedAt).toBeLessThanOrEqual(answered);
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ agentId: sid, state: expect.stringMatching(/^(idle|active)$/), interrupted: true });
    console.log(`interrupt: abort listener ${(abortedAt - t0).toFixed(1)} ms after the call, answer (committed) after ${(answered - t0).toFixed(1)} ms`);

    // The queued message runs next, then a new one; replies arrive on the stream.
    await s.until((ev) => ev.some((e) => e.event === 'reply' && (e.json as { body: { tag: string } }).body.tag === 'queued'), 'the queued message\'s reply');
    expect((await env.post(`/agents/${sid}/messages`, { message: { tag: 'next' } })).status).toBe(202);
    await s.until((ev) => ev.some((e) => e.event === 'reply' && (e.json as { body: { tag: string } }).body.tag === 'next'), 'the next message\'s reply');
    // A retry of the interrupted batch would run before the messages queued behind it (one
    // session runs one batch at a time, in order): `next` having run is the proof there was none.

    expect(runs).toEqual(['long', 'queued', 'next']);
    const history = await env.rt.getHistory(sid);
    expect(history.map((h) => [(h.body as { tag: string }).tag, h.outcome]).reverse()).toEqual([['long', 'interrupted'], ['queued', 'ok'], ['next', 'ok']]);
    expect(await env.rt.listDeadLetters({ sessionId: sid })).toEqual([]);
    expect((await env.rt.getAgent(sid)).state).toBe('idle');
    // No reply of the interrupted run reached the stream (its chunk did: chunks are live).
    const replies = s.events.filter((e) => e.event === 'reply').map((e) => (e.json as { body: unknown }).body);
    expect(replies).toEqual([{ tag: 'queued', done: true }, { tag: 'next', done: true }]);
    s.close();
  });

  it('with nothing queued, the session is idle at once and the stream shows the INTERRUPT transition', async () => {
    const sid = 'int-4';
    await env.rt.createAgent(sid, 'slow');
    const s = await openSse(`${env.cp.url}/agents/${sid}/stream`, env.auth);
    const running = new Promise<void>((r) => { started = r; });
    await env.post(`/agents/${sid}/messages`, { message: { tag: 'alone', wait: true } });
    await running;
    const t0 = performance.now();
    const r = await env.post(`/agents/${sid}/interrupt`);
    expect(abortedAt).toBeGreaterThan(t0);
    expect(abortedAt).toBeLessThanOrEqual(performance.now());
    expect(r.json).toEqual({ agentId: sid, state: 'idle', interrupted: true });
    // No reply follows this commit: the stream finds the entry by re-reading after the state notice.
    const t = await s.next((e) => e.event === 'state' && (e.json as { event: string }).event === 'INTERRUPT', 30_000);
    expect(t.json).toMatchObject({ agentId: sid, from: 'active.running', to: 'idle', state: 'idle' });
    expect((await env.rt.getHistory(sid)).map((h) => h.outcome)).toEqual(['interrupted']);
    s.close();
  });

  it('on an idle or sleeping session it is a no-op that says so (interrupted: false)', async () => {
    const sid = 'int-2';
    await env.rt.createAgent(sid, 'slow');
    const before = await env.rt.getTransitions(sid);
    const idle = await env.post(`/agents/${sid}/interrupt`);
    expect(idle.status).toBe(200);
    expect(idle.json).toEqual({ agentId: sid, state: 'idle', interrupted: false });
    await env.rt.sleepAgent(sid, { durationMs: 3_600_000 });
    const asleep = await env.post(`/agents/${sid}/interrupt`, {});
    expect(asleep.json).toEqual({ agentId: sid, state: 'sleeping', interrupted: false });
    expect((await env.rt.getTransitions(sid)).length).toBe(before.length + 1); // just the sleep
    // The JSON-RPC method gives the same answer through the same implementation.
    await env.rt.wakeAgent(sid);
    await waitFor(async () => (await env.rt.getAgent(sid)).state === 'idle', 'idle after the wake run');
    expect(await env.rt.interruptAgent(sid)).toMatchObject({ state: 'idle', interrupted: false });
  });

  it('a stopped session refuses it → 409 INVALID_TRANSITION naming the state', async () => {
    const sid = 'int-3';
    await env.rt.createAgent(sid, 'slow');
    await env.rt.stopAgent(sid);
    const r = await env.post(`/agents/${sid}/interrupt`, { reason: 'x' });
    expect(r.status).toBe(409);
    expect(r.json).toMatchObject({ error: { code: 4010, type: 'INVALID_TRANSITION', retryable: false, state: 'stopped', command: 'interrupt' } });
  });
});
