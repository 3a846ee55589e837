// Issue 11 item 4, against real NATS and Postgres: input Postgres cannot store (a NUL character,
// a lone UTF-16 surrogate, JSON 10,000 levels deep; also bytes that are not UTF-8) is refused at
// the door — HTTP 400 and JSON-RPC -32602 with data.type UNSTORABLE_INPUT, one dead letter
// (reason `unstorable`, payload stored) for a raw NATS producer — and the session's messages
// before and after the poison are all processed, in order. Plus the small door defects of item
// 7: bad percent-encoding in a path is 400 (not 500), a NUL in listAgents' filters is invalid
// params (not INTERNAL), and a URL that does not parse neither answers 500 nor crashes the node.
import { connect as netConnect } from 'node:net';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineAgent } from '../../actors/index.js';
import { storableProblem } from '../../persistence/index.js';
import { RawRpc } from '../control/rawRpc.js';
import { natsClient, waitFor } from '../helpers.js';
import { startIngressEnv, type IngressEnv } from './env.js';

/** Keeps every body it is handed, in order, in its state. */
const recorder = defineAgent({
  type: 'recorder',
  onMessage: 'queue',
  initialState: () => ({ seen: [] as unknown[] }),
  handle(batch, ctx) {
    for (const m of batch) ctx.state.seen.push(m.body);
    return undefined;
  },
});

let env: IngressEnv;
let nc: NatsConnection;

const DEEP = 10_000;
/** JSON text nested `n` levels deep (never built as a value: JSON.stringify would overflow here too). */
const deepJson = (n: number): string => `${'['.repeat(n)}${']'.repeat(n)}`;

beforeAll(async () => {
  env = await startIngressEnv('ingress_poison', [recorder], { controlPlane: { ingress: { ratePerSec: 1000, burst: 1000 } } });
  nc = await natsClient(env.nats.url);
}, 60_000);

afterAll(async () => {
  await nc?.close();
  await env?.stop();
});

/** What the session has applied, from its committed state. */
async function seen(agentId: string): Promise<unknown[]> {
  return ((await env.rt.getAgent(agentId)).userState as { seen: unknown[] }).seen;
}

/** The bodies of the session's committed history, oldest first. */
async function historyBodies(agentId: string): Promise<unknown[]> {
  return (await env.rt.getHistory(agentId, { limit: 100 })).reverse().map((h) => h.body);
}

/** Waits until the session has applied and committed exactly `expected`, in order. */
async function expectApplied(agentId: string, expected: unknown[]): Promise<void> {
  await waitFor(async () => (await seen(agentId)).length >= expected.length && (await historyBodies(agentId)).length >= expected.length,
    `${agentId} to apply and commit ${expected.length} messages`, 30_000);
  expect(await seen(agentId)).toEqual(expected);
  expect(await historyBodies(agentId)).toEqual(expected);
}

function postRaw(path: string, raw: string | Uint8Array): Promise<{ status: number; json: any }> {
  return fetch(`${env.cp.url}${path}`, { method: 'POST', headers: { ...env.auth, 'Content-Type': 'application/json' }, body: typeof raw === 'string' ? raw : new Uint8Array(raw) }).then(async (r) => {
    const text = await r.text();
    let json: unknown;
    try { json = JSON.parse(text); } catch { json = text; }
    return { status: r.status, json };
  });
}

describe('HTTP: refused at the door with 400 UNSTORABLE_INPUT', () => {
  it('a NUL, a lone surrogate and 10,000 levels of nesting; messages before and after are processed', async () => {
    await env.rt.createAgent('p-http', 'recorder');
    expect((await env.post('/agents/p-http/messages', { message: { i: 1 } })).status).toBe(202);

    const poisons: [string, string, string, string][] = [
      ['{"message":"a\\u0000b"}', 'nul', '$.message', 'a NUL character (U+0000) in $.message at index 1'],
      ['{"message":{"text":"\\ud800"}}', 'lone-surrogate', '$.message.text', 'a lone UTF-16 surrogate (U+D800) in $.message.text at index 0'],
      ['{"message":{"k\\u0000":1}}', 'nul', '$.message', 'in a key of $.message'],
      [`{"message":${deepJson(DEEP)}}`, 'too-deep', '$', 'JSON nested deeper than 64 levels (at character 75)'],
    ];
    for (const [raw, problem, path, text] of poisons) {
      const r = await postRaw('/agents/p-http/messages', raw);
      expect(r.status, raw.slice(0, 60)).toBe(400);
      expect(r.json.error).toMatchObject({ code: -32602, type: 'UNSTORABLE_INPUT', retryable: false, problem });
      expect(String(r.json.error.path).startsWith(path)).toBe(true);
      expect(r.json.error.message).toContain(text);
      expect(r.json.error.message.length).toBeLessThan(1100);
    }
    // Events and other routes get the same door.
    const ev = await postRaw('/events/poison.test', '{"data":{"x":"\\u0000"}}');
    expect(ev.status).toBe(400);
    expect(ev.json.error).toMatchObject({ type: 'UNSTORABLE_INPUT', path: '$.data.x' });
    const intr = await postRaw('/agents/p-http/interrupt', '{"reason":"\\ud800"}');
    expect(intr.json.error).toMatchObject({ type: 'UNSTORABLE_INPUT', path: '$.reason' });
    // Bytes that are not UTF-8 are not JSON text: 400 PARSE_ERROR (never silently U+FFFD).
    const bad = await postRaw('/agents/p-http/messages', Buffer.concat([Buffer.from('{"message":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]));
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatchObject({ type: 'PARSE_ERROR', code: -32700 });

    expect((await env.post('/agents/p-http/messages', { message: { i: 2 } })).status).toBe(202);
    await expectApplied('p-http', [{ i: 1 }, { i: 2 }]);
  });

  it('bad percent-encoding in a path → 400 INVALID_ARGUMENT, not 500; a URL that does not parse → 400, the node stays up', async () => {
    for (const path of ['/agents/%E0%A4%A/messages', '/agents/%zz/stream', '/agents/%ED%A0%80/interrupt', '/events/%C3']) {
      const method = path.endsWith('/stream') ? 'GET' : 'POST';
      const r = await fetch(`${env.cp.url}${path}`, { method, headers: { ...env.auth, 'Content-Type': 'application/json' }, ...(method === 'POST' ? { body: '{}' } : {}) });
      expect(r.status, `${method} ${path}`).toBe(400);
      expect(await r.json()).toMatchObject({ error: { type: 'INVALID_ARGUMENT', code: 4002 } });
    }
    // `//[` is a scheme-relative URL with a broken host: new URL() throws on it. Plain request and WebSocket upgrade.
    for (const extra of ['', 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n']) {
      const answer = await rawHttp(`GET //[ HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}\r\n`);
      expect(answer.split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request');
    }
    expect((await fetch(`${env.cp.url}/healthz`)).status).toBe(200);
  });
});

/** Sends a raw HTTP request and resolves with what the server answered before closing (or 2 s). */
function rawHttp(request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = netConnect(env.cp.port, '127.0.0.1');
    let got = '';
    const done = (): void => { clearTimeout(t); s.destroy(); resolve(got); };
    const t = setTimeout(done, 2000);
    s.on('data', (d) => { got += d.toString(); if (got.includes('\r\n\r\n') && /content-length: (\d+)/i.exec(got) && got.length > got.indexOf('\r\n\r\n') + 4) done(); });
    s.on('end', done);
    s.on('error', reject);
    s.write(request);
  });
}

describe('JSON-RPC: refused as invalid params (-32602) with data.type UNSTORABLE_INPUT', () => {
  it('sendMessage, sendMail, createAgent state, publishEvent, scheduleTask, listAgents filters; the session goes on', async () => {
    const c = await RawRpc.open(env.cp.rpcUrl, { headers: env.auth });
    try {
      await c.ok('createAgent', { agentId: 'p-rpc', type: 'recorder' });
      await c.ok('sendMessage', { agentId: 'p-rpc', message: { i: 1 } });
      const cases: [string, unknown, string, string][] = [
        ['sendMessage', { agentId: 'p-rpc', message: 'a\u0000b' }, 'nul', '$.message'],
        ['sendMessage', { agentId: 'p-rpc', message: { t: 'x\ud800' } }, 'lone-surrogate', '$.message.t'],
        ['sendMail', { to: 'p-rpc', body: { ['k\u0000']: 1 } }, 'nul', '$.body'],
        ['sendMail', { to: 'p-rpc', from: 'a\udc00', body: 1 }, 'lone-surrogate', '$.from'],
        ['createAgent', { agentId: 'p-rpc-2', type: 'recorder', state: { seen: ['\u0000'] } }, 'nul', '$.state.seen[0]'],
        ['publishEvent', { type: 'poison.rpc', data: '\u0000' }, 'nul', '$.data'],
        ['scheduleTask', { agentId: 'p-rpc', task: { t: '\ud800' }, schedule: '0 0 1 1 *' }, 'lone-surrogate', '$.task.t'],
        ['listAgents', { type: 'recorder\u0000' }, 'nul', '$.type'],
        ['listAgents', { idContains: '\ud800' }, 'lone-surrogate', '$.idContains'],
        ['async.sendMessage', { agentId: 'p-rpc', message: '\u0000' }, 'nul', '$.message'],
      ];
      for (const [method, params, problem, path] of cases) {
        const e = await c.err(method, params);
        expect(e, method).toMatchObject({ code: -32602, data: { type: 'UNSTORABLE_INPUT', retryable: false, problem, path } });
      }
      // 10,000 levels deep: refused before parsing, answered with the request's id (read by a
      // scan, wherever it sits), so a client waiting for it is not left hanging.
      c.sendRaw(`{"jsonrpc":"2.0","id":"deep-1","method":"sendMessage","params":{"agentId":"p-rpc","message":${deepJson(DEEP)}}}`);
      const deep = await c.response('deep-1');
      expect(deep.error).toMatchObject({ code: -32602, data: { type: 'UNSTORABLE_INPUT', problem: 'too-deep' } });
      expect(deep.error!.message).toContain('JSON nested deeper than 64 levels');
      c.sendRaw(`{"jsonrpc":"2.0","method":"sendMessage","params":{"agentId":"p-rpc","message":${deepJson(DEEP)}},"id":42}`);
      expect((await c.response(42)).error!.data.type).toBe('UNSTORABLE_INPUT');
      // Just past the limit: 65 levels in a param value.
      c.sendRaw(`{"jsonrpc":"2.0","id":"deep-65","method":"sendMessage","params":{"agentId":"p-rpc","message":${deepJson(65)}}}`);
      expect((await c.response('deep-65')).error!.data.type).toBe('UNSTORABLE_INPUT');
      // In a batch, each request is judged alone.
      c.sendRaw(JSON.stringify([
        { jsonrpc: '2.0', id: 'b1', method: 'sendMessage', params: { agentId: 'p-rpc', message: '\u0000' } },
        { jsonrpc: '2.0', id: 'b2', method: 'ping' },
      ]));
      const batch = await c.waitFor(() => c.frames.find((f): f is any[] => Array.isArray(f) && f.some((r: { id?: unknown }) => r.id === 'b1')));
      expect(batch.find((r) => r.id === 'b1').error.data.type).toBe('UNSTORABLE_INPUT');
      expect(batch.find((r) => r.id === 'b2').result.pong).toBe(true);

      await expect(env.rt.getAgent('p-rpc-2')).rejects.toMatchObject({ code: 'UNKNOWN_SESSION' });
      expect((await c.ok('listAgents', { type: 'recorder' })).agents.length).toBeGreaterThan(0);
      await c.ok('sendMessage', { agentId: 'p-rpc', message: { i: 2 } });
      await expectApplied('p-rpc', [{ i: 1 }, { i: 2 }]);
    } finally {
      c.close();
    }
  });
});

describe('raw NATS: one dead letter per poison message, the rest processed', () => {
  it('NUL (JSON escape and raw byte), lone surrogate, 10,000 deep, bad UTF-8, NUL in a header: each costs one dead letter', async () => {
    await env.rt.createAgent('p-nats', 'recorder');
    await env.rt.createAgent('p-nats-bystander', 'recorder');
    const js = jetstream(nc, { timeout: 30_000 });
    const send = async (sid: string, data: string | Uint8Array, h: Record<string, string> = {}): Promise<number> => {
      const hdrs = natsHeaders();
      for (const [k, v] of Object.entries(h)) hdrs.set(k, v);
      return (await js.publish(`agentry.in.${sid}`, data, { headers: hdrs })).seq;
    };
    const poisons: [string, string | Uint8Array, Record<string, string>, string][] = [
      ['nul-json', '{"poison":"a\\u0000b"}', {}, 'a NUL character (U+0000) in $.poison at index 1'],
      ['nul-raw', new Uint8Array([0x61, 0x00, 0x62]), {}, 'a NUL character (U+0000) in $ at index 1'],
      ['lone-surrogate', '{"poison":"\\ud800x"}', {}, 'a lone UTF-16 surrogate (U+D800) in $.poison at index 0'],
      ['deep-json', deepJson(DEEP), {}, 'JSON nested deeper than 64 levels (at character 64)'],
      ['bad-utf8', new Uint8Array([0x7b, 0xff, 0x7d]), {}, 'not valid UTF-8 (first bad byte at offset 1)'],
      ['nul-header', '{"ok":true}', { 'Agentry-From': 'x\u0000y' }, 'header Agentry-From cannot be stored'],
    ];
    const expected: unknown[] = [];
    const poisonSeqs = new Map<number, [string, string]>();
    let i = 0;
    for (const [kind, data, h, detail] of poisons) {
      expected.push({ i: ++i });
      await send('p-nats', JSON.stringify({ i }));
      poisonSeqs.set(await send('p-nats', data, h), [kind, detail]);
      await send('p-nats-bystander', JSON.stringify({ i }));
    }
    expected.push({ i: ++i });
    await send('p-nats', JSON.stringify({ i }));

    await expectApplied('p-nats', expected);
    await expectApplied('p-nats-bystander', expected.slice(0, -1));
    const dls = await waitFor(async () => {
      const l = await env.rt.listDeadLetters({ sessionId: 'p-nats', limit: 100 });
      return l.length >= poisons.length ? l : null;
    }, 'a dead letter per poison message', 30_000);
    expect(dls).toHaveLength(poisons.length);
    for (const [seq, [kind, detail]] of poisonSeqs) {
      const dl = dls.find((d) => d.id === `p-nats:${seq}`);
      expect(dl, `${kind} (seq ${seq}): ${JSON.stringify(dls.map((d) => d.id))}`).toBeDefined();
      expect(dl!.reason, kind).toBe('unstorable');
      expect(dl!.error, kind).toContain(detail);
      expect(dl!.payload, `${kind}: the payload is stored`).not.toBeNull();
      expect(storableProblem(dl!.payload, 64)).toBeNull();
    }
    expect(dls.find((d) => d.id === `p-nats:${[...poisonSeqs.entries()].find(([, [k]]) => k === 'bad-utf8')![0]}`)!.payload)
      .toEqual({ encoding: 'base64', data: Buffer.from([0x7b, 0xff, 0x7d]).toString('base64') });
    expect(dls.find((d) => d.id === `p-nats:${[...poisonSeqs.entries()].find(([, [k]]) => k === 'nul-json')![0]}`)!.payload)
      .toEqual({ poison: 'a\\u0000b' });
    // The node keeps committing: a later message to a third session is applied too.
    await env.rt.createAgent('p-nats-later', 'recorder');
    await send('p-nats-later', JSON.stringify({ later: true }));
    await expectApplied('p-nats-later', [{ later: true }]);
  });
});
