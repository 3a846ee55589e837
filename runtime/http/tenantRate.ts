/**
 * Owns the per-tenant rate limit of the ingress (AGENTRY_TENANT_RATE / AGENTRY_TENANT_BURST):
 * one token bucket per tenant, shared by every JSON-RPC connection and the HTTP routes of a
 * runtime, so a tenant cannot get around it by opening more connections. A message over the
 * rate is refused before it is published (RATE_LIMITED, retryable, with `retryAfterMs`; HTTP 429
 * with Retry-After): nothing is stored, the producer sends it again later. Messages published
 * straight to NATS do not pass here; they wait their turn in the host's fair admission queue,
 * unacked in the stream (deferred, never lost).
 */
import { AgentryError } from '../../actors/errors.js';
import type { Runtime } from '../runtime.js';

/** Tenants whose bucket is kept; the least recently seen are forgotten (they start full again). */
const MAX_TENANTS = 10_000;

interface Bucket { tokens: number; last: number }

/** One runtime's limiter. */
export interface TenantRate {
  /** Takes a token of `tenant`; throws RATE_LIMITED when it has none. */
  take(tenant: string): void;
  /** Refusals so far, per tenant (metrics). */
  readonly refused: Map<string, number>;
}

const limiters = new WeakMap<Runtime, TenantRate>();

/** The limiter of `runtime` (made on first use), or null when no tenant rate is configured. */
export function tenantRateOf(runtime: Runtime, now: () => number = () => performance.now()): TenantRate | null {
  const rate = runtime.config.tenantRatePerSec;
  if (!(rate > 0)) return null;
  let l = limiters.get(runtime);
  if (!l) {
    l = createTenantRate(rate, runtime.config.tenantBurst, now);
    limiters.set(runtime, l);
  }
  return l;
}

/** A limiter of `ratePerSec` per tenant, bursts of `burst`. */
export function createTenantRate(ratePerSec: number, burst: number, now: () => number): TenantRate {
  const buckets = new Map<string, Bucket>();
  const refused = new Map<string, number>();
  return {
    refused,
    take(tenant) {
      const t = now();
      let b = buckets.get(tenant);
      if (b) buckets.delete(tenant);
      else {
        b = { tokens: burst, last: t };
        if (buckets.size >= MAX_TENANTS) buckets.delete(buckets.keys().next().value!);
      }
      buckets.set(tenant, b);
      b.tokens = Math.min(burst, b.tokens + ((t - b.last) / 1000) * ratePerSec);
      b.last = t;
      if (b.tokens >= 1) { b.tokens -= 1; return; }
      refused.set(tenant, (refused.get(tenant) ?? 0) + 1);
      const retryAfterMs = Math.ceil(((1 - b.tokens) / ratePerSec) * 1000);
      throw new AgentryError('RATE_LIMITED', `tenant ${tenant} is over its rate: at most ${ratePerSec} messages per second (bursts of ${burst})`, { retryable: true, details: { tenant, retryAfterMs } });
    },
  };
}
