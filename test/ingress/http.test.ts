// Issue 7, proof 1: curl-style requests (plain fetch): a message sent over HTTP is answered on
// the session's SSE stream; malformed, mistyped, oversized and unauthenticated requests get the
// documented status and error body; plus the other routes' edges (events, unknown routes and
// sessions, stopped sessions, media type, Origin and CORS, rate limit, NATS down).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineAgent } from '../../actors/index.js';
import { echo } from '../../examples/echo.js';
import { waitFor } from '../helpers.js';
import { startIngressEnv, type IngressEnv } from './env.js';
import { openSse } from './sseClient.js';

/** Streams two chunks, then replies. */
const chatty = defineAgent({
  type: 'chatty',
  onMessage: 'queue',
  handle(batch, ctx) {
    ctx.stream({ partial: 'thinking' });
    ctx.stream({ partial: 'almost' });
    ctx.reply({ answer: batch.map((m) => m.body) });
    return undefined;
  },
});

let env: IngressEnv;

beforeAll(async () => {
  env = await startIngressEnv('ingress_http', [echo, chatty], { controlPlane: { ingress: { ratePerSec: 1000, burst: 1000 } } });
  await env.rt.createAgent('h-chat', 'chatty');
  await env.rt.createAgent('h-echo', 'echo');
});

afterAll(async () => {
  await env?.stop();
});

/** The error body every refusal carries. */
function expectError(r: { status: number; json: any }, status: number, type: string, code: number): void {
  expect(r.status, JSON.stringify(r.json)).toBe(status);
  expect(r.json).toMatchObject({ error: { code, type, retryable: expect.any(Boolean), message: expect.any(String) } });
}

describe('POST /agents/:agentId/messages and GET /agents/:agentId/stream', () => {
  it('sends a message over HTTP and receives its chunks, reply and state changes on the event stream', async () => {
    const s = await openSse(`${env.cp.url}/agents/h-chat/stream`, env.auth);
    expect(s.status).toBe(200);
    expect(s.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(s.headers.get('cache-control')).toBe('no-store');
    await s.until(() => s.comments.some((c) => c.startsWith('stream of h-chat')), 'the opening comment');

    const r = await env.post('/agents/h-chat/messages', { message: { text: 'hello over http' }, priority: 'high' });
    expect(r.status).toBe(202);
    expect(r.json).toEqual({ seq: expect.any(Number) });
    expect(r.headers.get('content-type')).toBe('application/json');

    const reply = await s.next((e) => e.event === 'reply');
    await s.until((ev) => ev.filter((e) => e.event === 'chunk').length === 2, 'both chunks');
    expect(reply.json).toEqual({ agentId: 'h-chat', body: { answer: [{ text: 'hello over http' }] }, msgId: expect.any(String), at: expect.any(Number) });
    expect(reply.id).toMatch(/^\d+$/);
    // Chunks are live, with ids after the last durable id before them.
    const chunks = s.events.filter((e) => e.event === 'chunk');
    expect(chunks.map((c) => (c.json as { body: unknown }).body)).toEqual([{ partial: 'thinking' }, { partial: 'almost' }]);
    for (const c of chunks) expect(c.id).toMatch(/^\d+-c\d+$/);
    expect((chunks[0]!.json as { run: number }).run).toBeGreaterThan(0);
    // The run's state changes are durable entries too, in id order.
    await s.until((ev) => ev.some((e) => e.event === 'state' && (e.json as { to: string }).to === 'idle'), 'back to idle');
    const durable = s.events.filter((e) => e.event !== 'chunk');
    expect(durable.map((e) => e.event)).toEqual(['state', 'state', 'reply']);
    expect(durable.map((e) => (e.json as { to?: string }).to ?? 'reply')).toEqual(['active.running', 'idle', 'reply']);
    const ids = durable.map((e) => Number(e.id));
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    // The entries are exactly the session's durable log.
    const log = await env.store.readLog('h-chat', ids[0]! - 1, 100);
    expect(log.map((e) => e.id)).toEqual(ids);
    expect(log.map((e) => e.data)).toEqual(durable.map((e) => e.json));
    s.close();
  });

  it('takes the token as ?token= (EventSource cannot set headers), and the message defaults and extra fields of sendMessage', async () => {
    const s = await openSse(`${env.cp.url}/agents/h-echo/stream?token=${encodeURIComponent(env.token)}`);
    expect(s.status).toBe(200);
    const r = await env.post('/agents/h-echo/messages', { message: 'plain text', from: 'webhook:1', msgId: 'dedupe-1' });
    expect(r.status).toBe(202);
    // Idempotency-Key is the msgId when the body has none: a repeat is dropped by JetStream.
    const k1 = await env.post('/agents/h-echo/messages', { message: 'once' }, { headers: { 'Idempotency-Key': 'idem-42' } });
    const k2 = await env.post('/agents/h-echo/messages', { message: 'once' }, { headers: { 'Idempotency-Key': 'idem-42' } });
    expect(k1.status).toBe(202);
    expect(k2.json.seq).toBe(k1.json.seq);
    const first = await s.next((e) => e.event === 'reply');
    expect((first.json as { body: { text: string } }).body.text).toBe('plain text');
    const second = await s.next((e) => e.event === 'reply');
    expect((second.json as { body: { text: string } }).body.text).toBe('once');
    await new Promise((r) => setTimeout(r, 300));
    expect(s.events.filter((e) => e.event === 'reply')).toHaveLength(2);
    const history = await env.rt.getHistory('h-echo');
    expect(history.find((h) => h.body === 'plain text')).toMatchObject({ from: 'webhook:1', priority: 'normal' });
    s.close();
  });
});

describe('refusals: documented status and error body', () => {
  it('malformed JSON → 400 PARSE_ERROR; too deep → 400 UNSTORABLE_INPUT; not an object → 400 INVALID_ARGUMENT', async () => {
    expectError(await env.post('/agents/h-echo/messages', undefined, { raw: '{"message": ', headers: { 'Content-Type': 'application/json' } }), 400, 'PARSE_ERROR', -32700);
    expectError(await env.post('/agents/h-echo/messages', undefined, { raw: `{"message":${'['.repeat(200)}${']'.repeat(200)}}`, headers: { 'Content-Type': 'application/json' } }), 400, 'UNSTORABLE_INPUT', -32602);
    expectError(await env.post('/agents/h-echo/messages', ['message']), 400, 'INVALID_ARGUMENT', 4002);
    expectError(await env.post('/agents/h-echo/messages', 'hello'), 400, 'INVALID_ARGUMENT', 4002);
  });

  it('wrong types and unknown fields → 400 INVALID_PARAMS with the issues, like the JSON-RPC method', async () => {
    const bad = await env.post('/agents/h-echo/messages', { message: 'x', priority: 'extreme' });
    expectError(bad, 400, 'INVALID_PARAMS', -32602);
    expect(bad.json.error.issues[0]).toMatchObject({ path: ['priority'] });
    expect(bad.json.error.message).toMatch(/^Invalid params: priority: /);
    expectError(await env.post('/agents/h-echo/messages', { message: 'x', prio: 'high' }), 400, 'INVALID_PARAMS', -32602);
    expectError(await env.post('/agents/h-echo/messages', { message: 'x', msgId: 7 }), 400, 'INVALID_PARAMS', -32602);
    expectError(await env.post('/agents/h-echo/messages', { agentId: 'someone-else', message: 'x' }), 400, 'INVALID_ARGUMENT', 4002);
    expectError(await env.post('/agents/bad.id/messages', { message: 'x' }), 400, 'INVALID_SESSION_ID', 4001);
    expectError(await env.post('/events/bad..type', { data: 1 }), 400, 'INVALID_PARAMS', -32602);
    expectError(await env.post('/events/ok', { data: 1, priority: 3 }), 400, 'INVALID_PARAMS', -32602);
  });

  it('a body above 1 MiB → 413 PAYLOAD_TOO_LARGE, announced or not', async () => {
    const big = JSON.stringify({ message: 'x'.repeat(1024 * 1024 + 10) });
    const r = await env.post('/agents/h-echo/messages', undefined, { raw: big, headers: { 'Content-Type': 'application/json' } });
    expectError(r, 413, 'PAYLOAD_TOO_LARGE', 4013);
    // Chunked (no Content-Length): counted while reading.
    const chunked = new ReadableStream<Uint8Array>({
      start(c) { for (let i = 0; i < 20; i++) c.enqueue(new TextEncoder().encode(i === 0 ? '{"message":"' : 'y'.repeat(64 * 1024))); c.close(); },
    });
    const res = await fetch(`${env.cp.url}/agents/h-echo/messages`, { method: 'POST', headers: { ...env.auth, 'Content-Type': 'application/json' }, body: chunked, duplex: 'half' } as RequestInit);
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: { type: 'PAYLOAD_TOO_LARGE', code: 4013, retryable: false } });
    // The server is fine afterwards.
    expect((await env.post('/agents/h-echo/messages', { message: 'after big' })).status).toBe(202);
  });

  it('missing or wrong token → 401 UNAUTHORIZED with WWW-Authenticate, on every route', async () => {
    for (const token of [null, 'wrong-token-wrong-token']) {
      const r = await env.post('/agents/h-echo/messages', { message: 'x' }, { token });
      expectError(r, 401, 'UNAUTHORIZED', 4401);
      expect(r.headers.get('www-authenticate')).toBe('Bearer');
      expectError(await env.post('/events/anything', {}, { token }), 401, 'UNAUTHORIZED', 4401);
      expectError(await env.post('/agents/h-echo/interrupt', {}, { token }), 401, 'UNAUTHORIZED', 4401);
    }
    const s = await fetch(`${env.cp.url}/agents/h-echo/stream`);
    expect(s.status).toBe(401);
    expect(await s.json()).toMatchObject({ error: { type: 'UNAUTHORIZED', code: 4401 } });
    expect((await fetch(`${env.cp.url}/agents/h-echo/stream?token=nope`)).status).toBe(401);
    expect((await fetch(`${env.cp.url}/agents/h-echo/stream`, { headers: { Authorization: `Basic ${env.token}` } })).status).toBe(401);
  });

  it('unknown route → 404 NOT_FOUND; unknown session → 404 UNKNOWN_SESSION; wrong method → 405 with Allow', async () => {
    expectError(await env.post('/agents/h-echo/nothing', {}), 404, 'NOT_FOUND', 4404);
    expectError(await env.post('/events/a/b', {}), 404, 'NOT_FOUND', 4404);
    expectError(await env.post('/agents/nobody-here/messages', { message: 'x' }), 404, 'UNKNOWN_SESSION', 4004);
    expectError(await env.post('/agents/nobody-here/interrupt'), 404, 'UNKNOWN_SESSION', 4004);
    const stream = await fetch(`${env.cp.url}/agents/nobody-here/stream`, { headers: env.auth });
    expect(stream.status).toBe(404);
    expect(await stream.json()).toMatchObject({ error: { type: 'UNKNOWN_SESSION', code: 4004 } });
    const get = await fetch(`${env.cp.url}/agents/h-echo/messages`, { headers: env.auth });
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expect(await get.json()).toMatchObject({ error: { type: 'METHOD_NOT_ALLOWED', code: 4405 } });
    const postStream = await env.post('/agents/h-echo/stream', {});
    expectError(postStream, 405, 'METHOD_NOT_ALLOWED', 4405);
    expect(postStream.headers.get('allow')).toBe('GET');
  });

  it('a stopped session → 409 SESSION_STOPPED; its stream still opens (its history stays readable)', async () => {
    await env.rt.createAgent('h-stopped', 'echo');
    await env.rt.stopAgent('h-stopped');
    const r = await env.post('/agents/h-stopped/messages', { message: 'x' });
    expectError(r, 409, 'SESSION_STOPPED', 4011);
    expect(r.json.error.state).toBe('stopped');
    const s = await openSse(`${env.cp.url}/agents/h-stopped/stream?lastEventId=0`, env.auth);
    expect(s.status).toBe(200);
    const states = [await s.next((e) => e.event === 'state'), await s.next((e) => e.event === 'state')];
    expect(states.map((e) => (e.json as { to: string }).to)).toEqual(['idle', 'stopped']);
    s.close();
  });

  it('a form or text body → 415 UNSUPPORTED_MEDIA_TYPE (so browsers cannot post cross-site without a preflight)', async () => {
    expectError(await env.post('/agents/h-echo/messages', undefined, { raw: 'message=hi', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } }), 415, 'UNSUPPORTED_MEDIA_TYPE', 4415);
    expectError(await env.post('/agents/h-echo/messages', undefined, { raw: '{"message":"hi"}', headers: { 'Content-Type': 'text/plain' } }), 415, 'UNSUPPORTED_MEDIA_TYPE', 4415);
    expect((await env.post('/agents/h-echo/messages', undefined, { raw: '{"message":"hi"}', headers: { 'Content-Type': 'application/json; charset=utf-8' } })).status).toBe(202);
  });

  it('a foreign Origin → 403 FORBIDDEN; an allowed one gets CORS headers and a preflight', async () => {
    expectError(await env.post('/agents/h-echo/messages', { message: 'x' }, { headers: { Origin: 'https://evil.example' } }), 403, 'FORBIDDEN', 4403);
    const own = env.cp.url;
    const ok = await env.post('/agents/h-echo/messages', { message: 'x' }, { headers: { Origin: own } });
    expect(ok.status).toBe(202);
    expect(ok.headers.get('access-control-allow-origin')).toBe(own);
    const pre = await fetch(`${env.cp.url}/agents/h-echo/messages`, { method: 'OPTIONS', headers: { Origin: own, 'Access-Control-Request-Method': 'POST' } });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-methods')).toBe('POST');
    expect(pre.headers.get('access-control-allow-headers')).toContain('Authorization');
    const bad = await fetch(`${env.cp.url}/agents/h-echo/stream`, { method: 'OPTIONS', headers: { Origin: 'https://evil.example' } });
    expect(bad.status).toBe(403);
  });
});

describe('POST /events/:type', () => {
  it('publishes on the bus → 202 { seq, recipients }', async () => {
    const r = await env.post('/events/invoice.paid', { data: { amount: 3 }, priority: 'urgent' });
    expect(r.status).toBe(202);
    expect(r.json).toEqual({ seq: expect.any(Number), recipients: 0 });
    const empty = await env.post('/events/ping');
    expect(empty.status).toBe(202);
    const events = await env.rt.listEvents({ type: 'invoice.paid' });
    expect(events.at(-1)).toMatchObject({ type: 'invoice.paid', data: { amount: 3 }, priority: 'urgent' });
  });
});

describe('limits', () => {
  it('rate limit per client address → 429 RATE_LIMITED with Retry-After', async () => {
    const limited = await startIngressEnv('ingress_rate', [echo], { controlPlane: { ingress: { ratePerSec: 1, burst: 3 } } });
    try {
      await limited.rt.createAgent('r-1', 'echo');
      const statuses: number[] = [];
      let last: Awaited<ReturnType<IngressEnv['post']>> | undefined;
      for (let i = 0; i < 5; i++) {
        last = await limited.post('/agents/r-1/messages', { message: i });
        statuses.push(last.status);
      }
      expect(statuses).toEqual([202, 202, 202, 429, 429]);
      expectError(last!, 429, 'RATE_LIMITED', 4029);
      expect(last!.json.error.retryable).toBe(true);
      expect(last!.headers.get('retry-after')).toBe('1');
    } finally {
      await limited.stop();
    }
  });

  it('caps the open streams → 429; a closed stream frees its place', async () => {
    const capped = await startIngressEnv('ingress_cap', [echo], { controlPlane: { ingress: { maxStreams: 2, heartbeatMs: 200 } } });
    try {
      await capped.rt.createAgent('c-1', 'echo');
      const url = `${capped.cp.url}/agents/c-1/stream`;
      const a = await openSse(url, capped.auth);
      const b = await openSse(url, capped.auth);
      const refused = await fetch(url, { headers: capped.auth });
      expect(refused.status).toBe(429);
      expect(await refused.json()).toMatchObject({ error: { type: 'RATE_LIMITED', retryable: true } });
      // Heartbeats arrive as comments.
      await a.until(() => a.comments.includes('keep-alive'), 'a heartbeat', 60_000);
      a.close();
      const c = await waitFor(async () => {
        const x = await openSse(url, capped.auth);
        if (x.status === 200) return x;
        x.close();
        return null;
      }, 'a free place', 5000);
      b.close();
      c.close();
    } finally {
      await capped.stop();
    }
  });

  it('NATS down → 503 NOT_READY (retryable); back when NATS is', async () => {
    const down = await startIngressEnv('ingress_down', [echo]);
    try {
      await down.rt.createAgent('d-1', 'echo');
      await down.nats.stop();
      await waitFor(() => !down.rt.transport.isConnected(), 'NATS disconnected', 60_000);
      const r = await down.post('/agents/d-1/messages', { message: 'x' });
      expectError(r, 503, 'NOT_READY', 5003);
      expect(r.json.error.retryable).toBe(true);
      expect(r.headers.get('retry-after')).toBe('1');
      expect((await fetch(`${down.cp.url}/agents/d-1/stream`, { headers: down.auth })).status).toBe(503);
      await down.nats.restart();
      await waitFor(() => down.rt.transport.isConnected(), 'NATS back', 20_000);
      expect((await down.post('/agents/d-1/messages', { message: 'y' })).status).toBe(202);
    } finally {
      await down.stop();
    }
  }, 60_000);
});
