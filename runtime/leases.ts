/**
 * Owns partition ownership across nodes, in the NATS KV bucket `<prefix>_LEASES`:
 *   node.<nodeId>  — a heartbeat: who is alive (the bucket's TTL removes a dead node's keys);
 *   part.<p>       — the lease of partition p: `{ node }`, created only when free, renewed by
 *                    compare-and-set on its revision.
 * Each node aims for ceil(partitions / live nodes) leases: it takes free partitions up to that
 * share and releases the surplus (after draining it) when more nodes join. When a node dies its
 * keys expire and the others take its partitions.
 *
 * A node that restarts under the same id (after a crash) reclaims its own leases at once.
 *
 * The KV revision at acquisition is the partition's fencing epoch: revisions only grow, so a
 * new owner's epoch is always higher, and Postgres refuses a commit whose epoch is lower than
 * the one stored on the session (`FencedError`). A node that cannot renew for a whole TTL (cut
 * off from NATS) gives its partitions up on its own before anyone else can take them.
 */
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from './logger.js';

export interface LeaseEvents {
  /** This node now owns p (epoch = fencing epoch): start consuming it. */
  acquired(p: number, epoch: number): Promise<void>;
  /** This node must stop owning p: `graceful` when releasing to rebalance, false when it was lost. */
  released(p: number, graceful: boolean): Promise<void>;
}

export interface LeaseOptions {
  readonly nc: NatsConnection;
  readonly bucket: string;
  readonly nodeId: string;
  readonly partitions: number;
  /** Lease lifetime; renewed every third of it. */
  readonly ttlMs: number;
  readonly logger: Logger;
  readonly events: LeaseEvents;
}

interface Held { revision: number; readonly epoch: number; renewedAt: number }

/** The partition leases of one node. */
export class LeaseManager {
  private kv: KV | undefined;
  private readonly held = new Map<number, Held>();
  private timer: NodeJS.Timeout | undefined;
  private ticking = Promise.resolve();
  private stopped = false;

  constructor(private readonly o: LeaseOptions) {}

  /** Opens the bucket, announces the node and takes its share of the free partitions. */
  async start(): Promise<void> {
    this.kv = await new Kvm(this.o.nc).create(this.o.bucket, { history: 1, ttl: this.o.ttlMs });
    await this.tick();
    this.timer = setInterval(() => {
      // A failed tick must not end the chain: every later renewal would be skipped and the leases expire.
      this.ticking = this.ticking.then(() => this.tick()).catch((err: unknown) => { this.o.logger.error({ err }, 'lease tick failed'); });
    }, Math.max(200, Math.floor(this.o.ttlMs / 3)));
    this.timer.unref();
  }

  /** Partitions this node owns now. */
  owned(): number[] { return [...this.held.keys()].sort((a, b) => a - b); }

  owns(p: number): boolean { return this.held.has(p); }

  /** Fencing epoch of an owned partition (0 when not owned). */
  epochOf(p: number): number { return this.held.get(p)?.epoch ?? 0; }

  /** Releases every lease (graceful shutdown), so other nodes take over without waiting for the TTL. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.ticking;
    for (const p of this.owned()) {
      await this.o.events.released(p, true);
      await this.kv?.delete(`part.${p}`, { previousSeq: this.held.get(p)!.revision }).catch(() => undefined);
      this.held.delete(p);
    }
    await this.kv?.delete(`node.${this.o.nodeId}`).catch(() => undefined);
  }

  /**
   * Takes partition p if its lease is free, or if it names this node (this node restarted
   * after a crash: it need not wait for its own lease to expire). Returns the new revision,
   * which is higher than any earlier one: the new fencing epoch.
   */
  private async takeOver(kv: KV, p: number, body: string): Promise<number | null> {
    try {
      return await kv.create(`part.${p}`, body);
    } catch { /* taken: by whom? */ }
    try {
      const e = await kv.get(`part.${p}`);
      if (e && e.operation === 'PUT' && e.json<{ node: string }>().node === this.o.nodeId) return await kv.update(`part.${p}`, body, e.revision);
    } catch { /* raced */ }
    return null;
  }

  private async tick(): Promise<void> {
    const t0 = performance.now();
    try {
      await this.tickOnce();
    } finally {
      const ms = performance.now() - t0;
      if (ms > this.o.ttlMs / 3) this.o.logger.warn({ ms: Math.round(ms) }, 'lease tick was slow; leases may expire');
      else this.o.logger.debug({ ms: Math.round(ms) }, 'lease tick');
    }
  }

  private async tickOnce(): Promise<void> {
    if (this.stopped || !this.kv) return;
    const kv = this.kv;
    const now = Date.now();
    const body = JSON.stringify({ node: this.o.nodeId, at: now });
    try {
      await kv.put(`node.${this.o.nodeId}`, body);
    } catch (err) {
      this.o.logger.warn({ err }, 'lease heartbeat failed');
    }
    // Renew what we hold, all at once (one round trip, not one per partition).
    await Promise.all([...this.held].map(async ([p, h]) => {
      try {
        h.revision = await kv.update(`part.${p}`, body, h.revision);
        h.renewedAt = now;
        return;
      } catch (err) {
        const msg = (err as Error).message;
        if (/wrong last sequence: 0\b/.test(msg)) {
          // Expired (we renewed too late) and nobody took it: take it again, with a new epoch,
          // keeping the live sessions. If someone else holds it now, it is lost.
          try {
            const rev = await kv.create(`part.${p}`, body);
            this.held.set(p, { revision: rev, epoch: rev, renewedAt: now });
            this.o.logger.warn({ partition: p, epoch: rev }, 'partition lease had expired; renewed it with a new epoch');
            return;
          } catch { /* taken */ }
        } else if (/timeout|disconnect|closed/i.test(msg) && now - h.renewedAt < this.o.ttlMs * 0.8) {
          return; // a transient failure: the next tick renews it in time
        }
        this.o.logger.warn({ partition: p, err: msg }, 'partition lease lost');
        await this.o.events.released(p, false);
        this.held.delete(p);
      }
    }));
    // Aim for an even share among live nodes.
    let nodes = 1;
    try {
      nodes = 0;
      for await (const key of await kv.keys('node.*')) if (key) nodes++;
      nodes = Math.max(1, nodes);
    } catch { /* keep 1 */ }
    const share = Math.ceil(this.o.partitions / nodes);
    for (let p = 0; p < this.o.partitions && this.held.size < share; p++) {
      if (this.held.has(p)) continue;
      const rev = await this.takeOver(kv, p, body);
      if (rev === null) continue;
      this.held.set(p, { revision: rev, epoch: rev, renewedAt: now });
      await this.o.events.acquired(p, rev);
    }
    if (this.held.size > share) {
      for (const p of this.owned().slice(share)) {
        // Drain first (its commits still carry the epoch), then free the key for the new owner.
        await this.o.events.released(p, true);
        const h = this.held.get(p)!;
        this.held.delete(p);
        await kv.delete(`part.${p}`, { previousSeq: h.revision }).catch(() => undefined);
      }
    }
  }
}
