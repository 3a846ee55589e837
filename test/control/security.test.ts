// Issue 5, proof 4: without the token, or from a foreign Origin, access is refused; plus the
// rest of the control plane's guards: the Host check of a token-less server, the refusal to
// bind beyond loopback without a token, and the per-connection rate limit.
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echo } from '../../examples/echo.js';
import { loadConfig, startControlPlane, type ControlPlane, type Runtime } from '../../runtime/index.js';
import { sleep, startStack, type Stack } from '../helpers.js';
import { RawRpc } from './rawRpc.js';

let stack: Stack;
let rt: Runtime;
let cp: ControlPlane;
const TOKEN = `t-${Math.random().toString(36).slice(2)}-${Date.now()}`;

/** A raw HTTP GET (fetch forbids setting Host). */
function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body }); });
    });
    req.on('error', reject);
    req.end();
  });
}

/** A raw form POST (urlencoded), as a browser's sign-in form sends it. */
function post(url: string, body: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => { text += d.toString(); });
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }); });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const refusal = (p: Promise<unknown>): Promise<number> => p.then(() => 0, (e: unknown) => (e as { status?: number }).status ?? -1);

beforeAll(async () => {
  stack = await startStack('control_sec', { agents: [echo] });
  ({ rt } = stack);
  // No inspector build here (staticDir does not exist): the UI is the placeholder page.
  cp = await startControlPlane(rt, { port: 0, token: TOKEN, staticDir: join(tmpdir(), `agentry-no-inspector-${process.pid}`) });
});

afterAll(async () => {
  await cp?.close();
  await stack?.stop();
});

describe('token', () => {
  it('is required on /rpc: missing or wrong → 401; header or ?token= → connected', async () => {
    expect(await refusal(RawRpc.open(cp.rpcUrl))).toBe(401);
    expect(await refusal(RawRpc.open(cp.rpcUrl, { headers: { Authorization: 'Bearer wrong-token-wrong-token' } }))).toBe(401);
    expect(await refusal(RawRpc.open(`${cp.rpcUrl}?token=wrong`))).toBe(401);
    expect(await refusal(RawRpc.open(cp.rpcUrl, { headers: { Authorization: `Basic ${TOKEN}` } }))).toBe(401);
    const viaHeader = await RawRpc.open(cp.rpcUrl, { headers: { Authorization: `Bearer ${TOKEN}` } });
    expect((await viaHeader.ok('ping')).pong).toBe(true);
    viaHeader.close();
    const viaQuery = await RawRpc.open(`${cp.rpcUrl}?token=${encodeURIComponent(TOKEN)}`);
    expect((await viaQuery.ok('ping')).pong).toBe(true);
    viaQuery.close();
  });

  it('is required on /metrics and the UI; /healthz, /readyz and /openrpc.json stay open', async () => {
    expect((await get(`${cp.url}/metrics`)).status).toBe(401);
    expect((await get(`${cp.url}/metrics`, { Authorization: `Bearer ${TOKEN}` })).status).toBe(200);
    expect((await get(`${cp.url}/`)).status).toBe(401);
    expect((await get(`${cp.url}/index.html`, { Cookie: 'agentry_token=wrong' })).status).toBe(401);
    // A browser visit with ?token= trades it for an HttpOnly cookie and drops it from the address bar.
    const visit = await get(`${cp.url}/?token=${encodeURIComponent(TOKEN)}`);
    expect(visit.status).toBe(303);
    expect(visit.headers.location).toBe('/');
    const cookie = String(visit.headers['set-cookie']);
    expect(cookie).toMatch(/^agentry_token=.*; HttpOnly; SameSite=Strict; Path=\//);
    const page = await get(`${cp.url}/`, { Cookie: cookie.split(';')[0]! });
    expect(page.status).toBe(200);
    expect(page.body).toContain('inspector UI is not built');
    // The cookie also opens the WebSocket (same-origin page).
    const ws = await RawRpc.open(cp.rpcUrl, { headers: { Cookie: cookie.split(';')[0]! }, origin: cp.url });
    expect((await ws.ok('ping')).pong).toBe(true);
    ws.close();
    expect((await get(`${cp.url}/healthz`)).status).toBe(200);
    expect([200, 503]).toContain((await get(`${cp.url}/readyz`)).status);
    expect((await get(`${cp.url}/openrpc.json`)).status).toBe(200);
  });

  it('a browser without the token gets a sign-in page; the form sets the cookie, which a reload keeps; logout clears it', async () => {
    const html = { Accept: 'text/html,application/xhtml+xml' };
    const first = await get(`${cp.url}/`, html);
    expect(first.status).toBe(401);
    expect(first.headers['content-type']).toMatch(/^text\/html/);
    expect(first.body).toContain('<form method="post" action="/login">');
    expect(first.body).not.toContain(TOKEN);
    // An API client still gets the plain refusal.
    expect((await get(`${cp.url}/`)).body).toMatch(/^unauthorized/);
    const wrong = await post(`${cp.url}/login`, 'token=not-the-token', { Origin: cp.url });
    expect(wrong.status).toBe(401);
    expect(wrong.body).toContain('not the one this server was started with');
    expect(wrong.headers['set-cookie']).toBeUndefined();
    expect((await post(`${cp.url}/login`, `token=${encodeURIComponent(TOKEN)}`, { Origin: 'https://evil.example' })).status).toBe(403);
    const ok = await post(`${cp.url}/login`, `token=${encodeURIComponent(TOKEN)}`, { Origin: cp.url });
    expect(ok.status).toBe(303);
    expect(ok.headers.location).toBe('/');
    const cookie = String(ok.headers['set-cookie']);
    expect(cookie).toMatch(/^agentry_token=.*; HttpOnly; SameSite=Strict; Path=\//);
    // A reload sends the cookie: the UI, not the form.
    const reload = await get(`${cp.url}/`, { ...html, Cookie: cookie.split(';')[0]! });
    expect(reload.status).toBe(200);
    expect(reload.body).toContain('inspector UI is not built');
    expect((await post(`${cp.url}/login`, 'x'.repeat(10_000), { Origin: cp.url })).status).toBe(413);
    const out = await get(`${cp.url}/logout`, html);
    expect(out.status).toBe(303);
    expect(String(out.headers['set-cookie'])).toMatch(/^agentry_token=; HttpOnly; SameSite=Strict; Path=\/; Max-Age=0/);
  });

  it('refuses to bind beyond loopback without one, and rejects short tokens naming the variable (not the value)', async () => {
    await expect(startControlPlane(rt, { host: 'agentry.example', port: 0, token: '' })).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringContaining('AGENTRY_TOKEN') });
    expect(() => loadConfig({}, { AGENTRY_TOKEN: 'short-secret' })).toThrow(/token \(AGENTRY_TOKEN\): must be at least 16 characters/);
    try { loadConfig({}, { AGENTRY_TOKEN: 'short-secret' }); } catch (e) { expect((e as Error).message).not.toContain('short-secret'); }
    expect(loadConfig({}, { AGENTRY_ALLOWED_ORIGINS: 'https://a.example, https://b.example:8443' }).allowedOrigins).toEqual(['https://a.example', 'https://b.example:8443']);
  });
});

describe('origin', () => {
  it('refuses a foreign Origin even with the token; accepts its own origins and clients without Origin', async () => {
    const auth = { Authorization: `Bearer ${TOKEN}` };
    expect(await refusal(RawRpc.open(cp.rpcUrl, { headers: auth, origin: 'http://evil.example' }))).toBe(403);
    expect(await refusal(RawRpc.open(`${cp.rpcUrl}?token=${encodeURIComponent(TOKEN)}`, { origin: `http://evil.example:${cp.port}` }))).toBe(403);
    expect(await refusal(RawRpc.open(cp.rpcUrl, { headers: auth, origin: 'null' }))).toBe(403);
    for (const origin of [`http://127.0.0.1:${cp.port}`, `http://localhost:${cp.port}`]) {
      const c = await RawRpc.open(cp.rpcUrl, { headers: auth, origin });
      expect((await c.ok('ping')).pong).toBe(true);
      c.close();
    }
    const cli = await RawRpc.open(cp.rpcUrl, { headers: auth });
    expect((await cli.ok('ping')).pong).toBe(true);
    cli.close();
  });

  it('AGENTRY_ALLOWED_ORIGINS replaces the default list', async () => {
    const cp2 = await startControlPlane(rt, { port: 0, allowedOrigins: ['https://ops.example.com'] });
    try {
      const ok = await RawRpc.open(cp2.rpcUrl, { origin: 'https://ops.example.com' });
      expect((await ok.ok('ping')).pong).toBe(true);
      ok.close();
      expect(await refusal(RawRpc.open(cp2.rpcUrl, { origin: `http://127.0.0.1:${cp2.port}` }))).toBe(403);
    } finally {
      await cp2.close();
    }
  });

  it('a token-less (loopback) server answers only loopback Host names, against DNS rebinding', async () => {
    const open = await startControlPlane(rt, { port: 0 });
    try {
      expect((await get(`${open.url}/`, { Host: `rebind.example:${open.port}` })).status).toBe(403);
      expect((await get(`${open.url}/metrics`, { Host: `rebind.example:${open.port}` })).status).toBe(403);
      expect((await get(`${open.url}/`, { Host: `localhost:${open.port}` })).status).toBe(200);
      expect(await refusal(RawRpc.open(open.rpcUrl, { headers: { Host: `rebind.example:${open.port}` } }))).toBe(403);
      const c = await RawRpc.open(open.rpcUrl);
      expect((await c.ok('ping')).pong).toBe(true);
      c.close();
    } finally {
      await open.close();
    }
  });
});

describe('rate limit', () => {
  it('answers RATE_LIMITED (retryable) past the burst, per connection, and recovers', async () => {
    const limited = await startControlPlane(rt, { port: 0, ratePerSec: 5, burst: 10 });
    try {
      const a = await RawRpc.open(limited.rpcUrl);
      const b = await RawRpc.open(limited.rpcUrl);
      a.sendRaw(JSON.stringify(Array.from({ length: 30 }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'ping' }))));
      const answers = await a.waitFor(() => a.frames.find((f): f is any[] => Array.isArray(f)));
      const limitedOnes = answers.filter((x: { error?: { code: number } }) => x.error?.code === 4029);
      expect(answers.filter((x: { result?: unknown }) => x.result).length).toBeGreaterThanOrEqual(10);
      expect(limitedOnes.length).toBeGreaterThanOrEqual(15);
      expect(limitedOnes[0].error.data).toEqual({ type: 'RATE_LIMITED', retryable: true });
      expect((await b.ok('ping')).pong).toBe(true); // another connection has its own bucket
      await sleep(500);
      expect((await a.ok('ping')).pong).toBe(true);
      a.close();
      b.close();
    } finally {
      await limited.close();
    }
  });
});
