/**
 * Owns `maxActiveSessions` and `maxActivePerTenant`: how many sessions of this node may be in
 * `active` (handler running or retrying) at once, overall and per tenant, and the work waiting
 * for a slot — a held message's release or a due wake — served fairly across tenants
 * (fairQueue.ts: round robin between tenants, priority then arrival within one). A due wake
 * takes its slot before its session loads (`reserveWake`), so 100,000 wakes due at once wait
 * here without touching the store.
 *
 * Not to be confused with liveSlots.ts (`maxLiveSessions`: actors in memory).
 */
import { priorityRank, type Priority } from '../../actors/types.js';
import { FairQueue } from './fairQueue.js';

/** The bounds, read at each check (config may be replaced in dev). */
export interface ActiveBounds {
  readonly maxActiveSessions: number;
  /** 0: unbounded. */
  readonly maxActivePerTenant: number;
}

/** Active-slot admission (see the module comment). */
export class ActiveSlots {
  /** Live sessions whose top state is `active`. */
  private active = 0;
  /** Active sessions per tenant ('' none, never bounded). */
  private readonly byTenant = new Map<string, number>();
  /** Due wakes loading their session: they hold a slot before they are active. */
  private reservedWakes = 0;
  private readonly ready = new FairQueue();
  private seq = 0;

  constructor(private readonly bounds: () => ActiveBounds) {}

  /** Sessions whose handler is running now. */
  get activeCount(): number { return this.active; }

  /** Work waiting for a slot. */
  get waiting(): number { return this.ready.size; }

  /** Whether one more session may become active now (of `tenant`, when given). */
  hasCapacity(tenant?: string): boolean {
    return this.active + this.reservedWakes < this.bounds().maxActiveSessions && (tenant === undefined || this.tenantHasCapacity(tenant));
  }

  /** Whether a tenant is under maxActivePerTenant ('': no tenant, never bounded). */
  private tenantHasCapacity(tenant: string): boolean {
    const max = this.bounds().maxActivePerTenant;
    return max <= 0 || tenant === '' || (this.byTenant.get(tenant) ?? 0) < max;
  }

  /** Counts a session entering (+1) or leaving (-1) `active`, overall and for its tenant. */
  delta(tenant: string | undefined, d: 1 | -1): void {
    this.active += d;
    if (tenant === undefined) return;
    const n = (this.byTenant.get(tenant) ?? 0) + d;
    if (n <= 0) this.byTenant.delete(tenant); else this.byTenant.set(tenant, n);
  }

  /** A due wake takes a slot while its session loads; `unreserveWake` gives it back (the wake's session is then active, or the wake was stale). */
  reserveWake(): void { this.reservedWakes++; }
  unreserveWake(): void { this.reservedWakes--; }

  /** Queues work that would make a session active until a slot is free (urgent first, then oldest). */
  enqueue(priority: Priority, at: number, run: () => void, tenant = ''): void {
    this.ready.push(tenant, { rank: priorityRank(priority), at, n: this.seq++, run });
  }

  /** Starts queued work while slots are free, taking tenants in turn. */
  pump(): void {
    while (this.hasCapacity() && this.ready.size > 0) {
      const e = this.ready.pop((t) => this.tenantHasCapacity(t));
      if (!e) break;
      e.run();
    }
  }

  /** Active and queued sessions per tenant (metrics). */
  tenantLoad(): { active: ReadonlyMap<string, number>; queued: ReadonlyMap<string, number> } {
    return { active: this.byTenant, queued: this.ready.depths() };
  }
}
