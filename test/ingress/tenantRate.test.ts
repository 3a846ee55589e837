// The per-tenant rate limit of the ingress (issue 17 §3): over HTTP a tenant over its rate gets
// 429 RATE_LIMITED with Retry-After, and over JSON-RPC the typed RATE_LIMITED error; another
// tenant is not affected, and nothing refused was published. Real nats-server and Postgres.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { defineAgent } from '../../actors/index.js';
import { createClient } from '../../client/index.js';
import { startIngressEnv, type IngressEnv } from './env.js';

const sink = defineAgent({ type: 'sink', onMessage: 'queue', handle: () => undefined });

let env: IngressEnv;
beforeAll(async () => {
  // Bursts of 3, then one message per 100 s: however slow the machine, the 4th message is over the rate.
  env = await startIngressEnv('tenantrate', [sink], { config: { tenantRatePerSec: 0.01, tenantBurst: 3, rpcRatePerSec: 1000, rpcBurst: 1000 } });
  await env.rt.createAgent('tr-a', 'sink', undefined, { tenant: 'noisy' });
  await env.rt.createAgent('tr-b', 'sink', undefined, { tenant: 'quiet' });
});
afterAll(async () => { await env?.stop(); });

describe('per-tenant rate limit', () => {
  it('answers 429 with Retry-After over HTTP once a tenant used its burst; another tenant goes on', async () => {
    const statuses: number[] = [];
    let refused: { headers: Headers; json: { error: { type: string; retryable: boolean; tenant?: string } } } | undefined;
    for (let i = 0; i < 6; i++) {
      const r = await env.post('/agents/tr-a/messages', { message: { i } });
      statuses.push(r.status);
      if (r.status === 429) refused ??= r;
    }
    expect(statuses.slice(0, 3)).toEqual([202, 202, 202]);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(2);
    expect(refused!.json.error).toMatchObject({ type: 'RATE_LIMITED', retryable: true, tenant: 'noisy' });
    expect(Number(refused!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((await env.post('/agents/tr-b/messages', { message: 'fine' })).status).toBe(202);
    // What was refused was never published: the session got only the accepted ones.
    const accepted = statuses.filter((s) => s === 202).length;
    const hist = await env.rt.getHistory('tr-a').catch(() => []);
    expect(hist.length).toBeLessThanOrEqual(accepted);
    // /metrics: the refusals per tenant, and the running/queued series with the tenant label.
    const metrics = await (await fetch(`${env.cp.url}/metrics`, { headers: env.auth })).text();
    expect(metrics).toMatch(/agentry_tenant_rate_limited_total\{tenant="noisy"\} [2-9]/);
    expect(metrics).toContain('agentry_tenant_sessions_queued');
  });

  it('refuses over JSON-RPC with the typed RATE_LIMITED error', async () => {
    const c = createClient(env.cp.rpcUrl, { token: env.token, WebSocket: WebSocket });
    try {
      let err: { code?: string; type?: string } | undefined;
      for (let i = 0; i < 6 && !err; i++) {
        try { await c.sendMessage({ agentId: 'tr-a', message: { rpc: i }, tenant: 'noisy' }); } catch (e) { err = e as { code?: string; type?: string }; }
      }
      expect(err?.type ?? err?.code).toBe('RATE_LIMITED');
    } finally { await c.close(); }
  });
});
