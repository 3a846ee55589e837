/* eslint-disable @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-argument -- the raw client deals in untyped JSON on purpose: it must not share the server's types */
// Turn policies through the control API: createAgent's `policy`, sendMessage's `policy`, and
// `reject` answering an API sender with the typed SESSION_BUSY error (JSON-RPC code 4012, HTTP
// 409) when the session is running a turn, while the refused message still reaches history
// (`rejected`) and the dead letters (`busy`). Real NATS and Postgres; the turn is held open by a
// gate the test releases.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codes, defineAgent } from '../../actors/index.js';
import { methods } from '../../client/index.js';
import { startControlPlane, type ControlPlane } from '../../runtime/index.js';
import { startStack, waitFor, type Stack } from '../helpers.js';
import { openSse } from '../ingress/sseClient.js';
import { RawRpc } from './rawRpc.js';

const gates = new Map<string, () => void>();
let started = 0;
const gated = defineAgent<{ applied: unknown[] }>({
  type: 'tpc-gated',
  onMessage: 'queue',
  initialState: () => ({ applied: [] }),
  async handle(batch, ctx) {
    started++;
    await new Promise<void>((resolve, reject) => {
      gates.set(ctx.sessionId, resolve);
      ctx.signal.addEventListener('abort', () => { reject(new Error('aborted')); }, { once: true });
    });
    ctx.state.applied.push(...batch.map((m) => m.body));
    return undefined;
  },
});

let stack: Stack;
let cp: ControlPlane;
let c: RawRpc;

beforeAll(async () => {
  stack = await startStack('turn_policy_api', { agents: [gated] });
  cp = await startControlPlane(stack.rt, { port: 0 });
  c = await RawRpc.open(cp.rpcUrl);
});

afterAll(async () => {
  for (const open of gates.values()) open();
  c?.close();
  await cp?.close();
  await stack?.stop();
});

const open = (sid: string): void => { gates.get(sid)?.(); gates.delete(sid); };
const running = (sid: string) => waitFor(async () => gates.has(sid) && (await c.ok('getAgent', { agentId: sid })).state === 'active', `${sid} running a turn`);

describe('turn policies over the control API', () => {
  it('sendMessage with policy reject while a turn runs: SESSION_BUSY (4012), the message kept as rejected and as a dead letter busy', async () => {
    const sid = 'tpc-1';
    await c.ok('createAgent', { agentId: sid, type: 'tpc-gated' });
    const first = await c.ok('sendMessage', { agentId: sid, message: 'a' });
    await running(sid);
    const e = await c.err('sendMessage', { agentId: sid, message: 'b', policy: 'reject' });
    expect(e.code).toBe(codes.SESSION_BUSY);
    expect(e.code).toBe(4012);
    expect(e.data).toMatchObject({ type: 'SESSION_BUSY', retryable: true, seq: expect.any(Number) });
    const seqB = (e.data as { seq: number }).seq;
    expect(seqB).toBeGreaterThan(first.seq);
    open(sid);
    const hist = await waitFor(async () => {
      const h = await c.ok('getHistory', { agentId: sid });
      return h.messages.length === 2 ? h : null;
    }, 'both messages in history');
    expect(methods.getHistory.result.safeParse(hist).success).toBe(true);
    expect(hist.messages.map((m: { body: unknown; fate: string; seq: number }) => [m.body, m.fate, m.seq])).toEqual([['b', 'rejected', seqB], ['a', 'handled', first.seq]]);
    const dls = await c.ok('listDeadLetters', { agentId: sid });
    expect(dls.deadLetters.map((d: { id: string; reason: string }) => [d.id, d.reason])).toEqual([[`${sid}:${seqB}`, 'busy']]);
    // The session's event stream replays the fate (a plainly handled message has none).
    const sse = await openSse(`${cp.url}/agents/${sid}/stream`, { 'Last-Event-ID': '0' });
    try {
      const fate = await sse.next((ev) => ev.event === 'fate', 20_000);
      expect(fate.json).toMatchObject({ agentId: sid, seq: seqB, fate: 'rejected' });
    } finally { sse.close(); }
  });

  it('an idle session takes a reject message: sendMessage answers with its seq', async () => {
    const sid = 'tpc-2';
    await c.ok('createAgent', { agentId: sid, type: 'tpc-gated' });
    const r = await c.ok('sendMessage', { agentId: sid, message: 'x', policy: 'reject' });
    expect(methods.sendMessage.result.safeParse(r).success).toBe(true);
    await running(sid);
    open(sid);
    await waitFor(async () => (await c.ok('getHistory', { agentId: sid })).messages[0]?.fate === 'handled', 'x handled');
  });

  it('a session created with policy reject refuses API senders without a per-message policy, over JSON-RPC and HTTP (409)', async () => {
    const sid = 'tpc-3';
    const created = await c.ok('createAgent', { agentId: sid, type: 'tpc-gated', policy: 'reject' });
    expect(created.agentId).toBe(sid);
    expect((await c.ok('getAgent', { agentId: sid })).policy).toBe('reject');
    await c.ok('sendMessage', { agentId: sid, message: 'a' });
    await running(sid);
    expect((await c.err('sendMessage', { agentId: sid, message: 'b' })).data).toMatchObject({ type: 'SESSION_BUSY' });
    const res = await fetch(`${cp.url}/agents/${sid}/messages`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ message: 'c' }) });
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: unknown }).error).toMatchObject({ code: 4012, type: 'SESSION_BUSY', retryable: true });
    const before = started;
    open(sid);
    await waitFor(async () => (await c.ok('getHistory', { agentId: sid })).messages.length === 3, 'three messages in history');
    const fates = (await c.ok('getHistory', { agentId: sid })).messages.map((m: { body: unknown; fate: string }) => [m.body, m.fate]).reverse();
    expect(fates).toEqual([['a', 'handled'], ['b', 'rejected'], ['c', 'rejected']]);
    expect(started).toBe(before); // neither refused message ran
  });

  it('an unknown policy is invalid params', async () => {
    const e = await c.err('sendMessage', { agentId: 'tpc-1', message: 'x', policy: 'sometimes' });
    expect(e.code).toBe(-32602);
    expect((await c.err('createAgent', { agentId: 'tpc-9', type: 'tpc-gated', policy: 'never' })).code).toBe(-32602);
  });
});
