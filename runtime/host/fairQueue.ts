/**
 * Owns the host's admission queue (work waiting for an active slot): one lane per tenant, each
 * ordered by priority then arrival, and the lanes served in turn (round robin), so a tenant
 * with 10,000 queued sessions cannot starve one with ten: a newly queued tenant is served
 * within one round of the tenants queued before it. Work without a tenant (and due wakes, whose
 * session is not loaded yet) shares the lane ''. A lane whose tenant is at its own bound
 * (`maxActivePerTenant`) is skipped until a slot of that tenant frees.
 */
import { MinHeap } from '../minHeap.js';

/** A queued piece of work: higher rank first, then the earlier, then the first queued. */
export interface FairEntry { readonly rank: number; readonly at: number; readonly n: number; readonly run: () => void }

export class FairQueue {
  private readonly lanes = new Map<string, MinHeap<FairEntry>>();
  /** Tenants with queued work, in serving order (the next one first). */
  private readonly turn: string[] = [];
  private count = 0;

  get size(): number { return this.count; }

  push(tenant: string, e: FairEntry): void {
    let lane = this.lanes.get(tenant);
    if (!lane) {
      lane = new MinHeap<FairEntry>((a, b) => a.rank !== b.rank ? a.rank > b.rank : a.at !== b.at ? a.at < b.at : a.n < b.n);
      this.lanes.set(tenant, lane);
      this.turn.push(tenant);
    }
    lane.push(e);
    this.count++;
  }

  /** The next entry of the next tenant that `mayRun` admits (undefined: none may run now). */
  pop(mayRun: (tenant: string) => boolean = () => true): FairEntry | undefined {
    for (let i = 0; i < this.turn.length; i++) {
      const t = this.turn.shift()!;
      if (!mayRun(t)) { this.turn.push(t); continue; }
      const lane = this.lanes.get(t)!;
      const e = lane.pop()!;
      this.count--;
      if (lane.size > 0) this.turn.push(t); else this.lanes.delete(t);
      return e;
    }
    return undefined;
  }

  /** Queued entries per tenant (metrics, the inspector). */
  depths(): Map<string, number> {
    return new Map([...this.lanes].map(([t, l]) => [t, l.size]));
  }
}
