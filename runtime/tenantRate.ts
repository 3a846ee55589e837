/**
 * Owns the per-tenant rate of one node (AGENTRY_TENANT_RATE / AGENTRY_TENANT_BURST): one token
 * bucket per tenant, shared by the two ways a tenant's messages enter the node, so a tenant gets
 * one rate per node, not one per path:
 * - the API ingress (`sendMessage`, `sendMail`, `POST /agents/<id>/messages`, every connection)
 *   `take`s a token before it publishes, and refuses the message when there is none
 *   (RATE_LIMITED, HTTP 429 with Retry-After); what it accepted it stamps with this node's
 *   `chargedMark` (header `Agentry-Rate-Charged`);
 * - the session host `tryTake`s a token for every inbox message of a tenant's session it is
 *   about to apply, whoever published it (raw NATS producers, other sessions' mail, cron tasks),
 *   and defers the message while there is none (runtime/host/tenantPacer.ts) — except a message
 *   this node's API already charged (it carries this node's mark), which is not counted twice.
 *
 * The mark is random per process: a producer that cannot read the inbox stream cannot forge it,
 * and a message charged by another node's API (or by this node before a restart) is charged again
 * here — each node enforces the rate on what it applies. Time comes from a function (the
 * runtime's clock) so tests can drive it; a clock stepping back adds no tokens.
 */
import { randomBytes } from 'node:crypto';
import { AgentryError } from '../actors/errors.js';

/** Header stamped on inbox messages the API charged to their tenant's bucket (value: the node's mark). */
export const RATE_CHARGED_HEADER = 'Agentry-Rate-Charged';

/** Tenants whose bucket is kept; the least recently seen are forgotten (they start full again). */
const MAX_TENANTS = 10_000;

interface Bucket { tokens: number; last: number }

/** One node's per-tenant rate (see the module comment). */
export interface TenantRate {
  readonly ratePerSec: number;
  readonly burst: number;
  /** The API's check: takes a token of `tenant`; throws RATE_LIMITED (retryable, `retryAfterMs`) when it has none. */
  take(tenant: string): void;
  /** The host's check: 0 when a token of `tenant` was taken, else the milliseconds until the next one (nothing taken). */
  tryTake(tenant: string): number;
  /** The value of RATE_CHARGED_HEADER on messages this node's API charged. */
  readonly chargedMark: string;
  /** API refusals so far, per tenant (metric agentry_tenant_rate_limited_total). */
  readonly refused: Map<string, number>;
  /** Inbox messages the host deferred so far, per tenant (metric agentry_tenant_rate_deferred_total). */
  readonly deferred: Map<string, number>;
}

/** A limiter of `ratePerSec` per tenant, bursts of `burst`, on the clock `now` (milliseconds). */
export function createTenantRate(ratePerSec: number, burst: number, now: () => number): TenantRate {
  const buckets = new Map<string, Bucket>();
  /** The tenant's bucket refilled to now (and moved to the back of the LRU order). */
  const refill = (tenant: string): Bucket => {
    const t = now();
    let b = buckets.get(tenant);
    if (b) buckets.delete(tenant);
    else {
      b = { tokens: burst, last: t };
      if (buckets.size >= MAX_TENANTS) buckets.delete(buckets.keys().next().value!);
    }
    buckets.set(tenant, b);
    b.tokens = Math.min(burst, b.tokens + (Math.max(0, t - b.last) / 1000) * ratePerSec);
    b.last = t;
    return b;
  };
  const waitMs = (b: Bucket): number => Math.max(1, Math.ceil(((1 - b.tokens) / ratePerSec) * 1000));
  const refused = new Map<string, number>();
  return {
    ratePerSec,
    burst,
    chargedMark: randomBytes(12).toString('base64url'),
    refused,
    deferred: new Map(),
    take(tenant) {
      const b = refill(tenant);
      if (b.tokens >= 1) { b.tokens -= 1; return; }
      refused.set(tenant, (refused.get(tenant) ?? 0) + 1);
      throw new AgentryError('RATE_LIMITED', `tenant ${tenant} is over its rate: at most ${ratePerSec} messages per second (bursts of ${burst})`, { retryable: true, details: { tenant, retryAfterMs: waitMs(b) } });
    },
    tryTake(tenant) {
      const b = refill(tenant);
      if (b.tokens >= 1) { b.tokens -= 1; return 0; }
      return waitMs(b);
    },
  };
}
