// The typed client (`agentry/client`): typed calls and errors, subscriptions, reconnection with
// re-subscription after the server goes away, and no Node-only imports (it must run in browsers).
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConnectionError, RpcError, createClient, type Gap, type Notification } from '../../client/index.js';
import { echo } from '../../examples/echo.js';
import { startControlPlane, type ControlPlane, type Runtime } from '../../runtime/index.js';
import { waitFor, startStack, type Stack } from '../helpers.js';

let stack: Stack;
let rt: Runtime;
let cp: ControlPlane;
const TOKEN = `client-${Math.random().toString(36).slice(2)}-${Date.now()}`;

beforeAll(async () => {
  stack = await startStack('control_client', { agents: [echo] });
  ({ rt } = stack);
  cp = await startControlPlane(rt, { port: 0, token: TOKEN });
});

afterAll(async () => {
  await cp?.close();
  await stack?.stop();
});

describe('agentry/client', () => {
  it('calls methods with typed results and raises typed errors', async () => {
    const api = createClient(cp.rpcUrl, { token: TOKEN, WebSocket });
    try {
      const created = await api.createAgent({ agentId: 'cl-a', type: 'echo' });
      expect(created.state).toBe('idle');
      const view = await api.getAgent({ agentId: 'cl-a' });
      expect(view.mailbox.pending).toBe(0);
      expect((await api.ping()).pong).toBe(true);
      expect((await api.discover()).openrpc).toBe('1.2.6');
      const err = await api.getAgent({ agentId: 'nobody' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RpcError);
      expect(err).toMatchObject({ code: 4004, type: 'UNKNOWN_SESSION', retryable: false });
      const bad = await api.call('getAgent', { agentId: 5 as unknown as string }).catch((e: unknown) => e);
      expect(bad).toMatchObject({ code: -32602, type: 'INVALID_PARAMS' });
    } finally {
      await api.close();
    }
  });

  it('reports a refused token and an unreachable server as ConnectionError', async () => {
    const wrong = createClient(cp.rpcUrl, { token: 'wrong-token-wrong-token', WebSocket });
    const e1 = await wrong.connect().catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(ConnectionError);
    expect(e1).toMatchObject({ type: 'UNAUTHORIZED', status: 401, retryable: false });
    await wrong.close();
    const none = createClient('ws://127.0.0.1:1/rpc', { WebSocket });
    expect(await none.ping().catch((e: unknown) => e)).toMatchObject({ name: 'ConnectionError', type: 'CONNECT_FAILED', retryable: true });
    await none.close();
    const closed = createClient(cp.rpcUrl, { token: TOKEN, WebSocket });
    await closed.close();
    expect(await closed.ping().catch((e: unknown) => e)).toMatchObject({ type: 'CLOSED' });
  });

  it('sends the token as ?token= when asked (the browser way)', async () => {
    const api = createClient(cp.rpcUrl, { token: TOKEN, WebSocket, tokenIn: 'query' });
    expect((await api.ping()).pong).toBe(true);
    await api.close();
  });

  it('subscribes, and after the server goes away reconnects, re-subscribes and reports the gap', async () => {
    const port = cp.port;
    const states: string[] = [];
    const api = createClient(cp.rpcUrl, { token: TOKEN, WebSocket, onConnectionChange: (s) => { states.push(s); } });
    const got: Notification[] = [];
    const gaps: Gap[] = [];
    await api.createAgent({ agentId: 'cl-sub', type: 'echo' });
    const sub = await api.subscribe({ agentId: 'cl-sub', kinds: ['output'] }, (n) => { got.push(n); }, { onGap: (g) => { gaps.push(g); } });
    const firstId = sub.id;
    await api.sendMessage({ agentId: 'cl-sub', message: 'one' });
    await waitFor(() => got.length === 1, 'first reply');
    expect(got[0]).toMatchObject({ seq: 1, kind: 'output', agentId: 'cl-sub', data: { kind: 'reply', body: { text: 'one' } } });
    expect(got[0]!.subscriptionId).toBe(firstId); // the handle's id is the wire's subscriptionId

    // The control plane restarts on the same port (a deploy, say).
    await cp.close();
    cp = await startControlPlane(rt, { port, token: TOKEN });
    await waitFor(() => gaps.length === 1, 're-subscription', 20_000);
    expect(gaps[0]).toEqual({ reason: 'reconnected', expected: 2, received: 0 });
    expect(sub.id).not.toBe(firstId);
    expect(states).toEqual(expect.arrayContaining(['open', 'reconnecting']));
    await api.sendMessage({ agentId: 'cl-sub', message: 'two' });
    await waitFor(() => got.length === 2, 'reply after reconnect');
    expect(got[1]).toMatchObject({ seq: 1, data: { body: { text: 'two' } } });
    await sub.unsubscribe();
    await api.sendMessage({ agentId: 'cl-sub', message: 'three' });
    await waitFor(async () => (await api.getAgent({ agentId: 'cl-sub' })).lastSeq > 0 && (await api.getHistory({ agentId: 'cl-sub' })).messages.length === 3, 'third handled');
    expect(got).toHaveLength(2);
    await api.close();
  }, 40_000);

  it('imports nothing but its own files and zod (browser-safe)', () => {
    for (const f of readdirSync('client').filter((n) => n.endsWith('.ts'))) {
      const src = readFileSync(join('client', f), 'utf8');
      const specs = [...src.matchAll(/^\s*(?:import|export)[^'"]*from\s+'([^']+)'/gm)].map((m) => m[1]);
      for (const s of specs) expect(s === 'zod' || s!.startsWith('./'), `${f} imports ${s}`).toBe(true);
      const code = src.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
      expect(code, f).not.toMatch(/\b(process|Buffer|require)\b[.(]/);
    }
  });
});
