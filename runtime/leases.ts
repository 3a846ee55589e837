/**
 * Owns partition ownership across nodes, in the NATS KV bucket `<prefix>_LEASES`:
 *   node.<nodeId>  — a heartbeat: who is alive (the bucket's TTL removes a dead node's keys);
 *   part.<p>       — the lease of partition p: `{ node }`, created only when free, renewed by
 *                    compare-and-set on its revision.
 * Each node aims for ceil(partitions / live nodes) leases: it takes free partitions up to that
 * share and releases the surplus (after draining it) when more nodes join. When a node dies its
 * keys expire and the others take its partitions. A node that restarts under the same id (after
 * a crash) reclaims its own leases at once — unless the process holding them is seen alive (two
 * processes given one id: `twinsSeen`).
 *
 * The KV revision at acquisition is the partition's fencing epoch: revisions only grow, so a
 * new owner's epoch is always higher. The new owner records it in Postgres before it consumes
 * (`acquired` does that), and every commit checks it inside its transaction.
 *
 * Two loops, two timers. Renewal (every quarter of the TTL) only renews: it never waits behind
 * a takeover, a drain or a slow start-up, and every KV request it makes has a deadline. Balance
 * (every quarter of the TTL) takes and releases partitions, one at a time, off the renewal path.
 * A watch on the bucket starts a balance round at once when a lease is deleted (a node released
 * it: leaving, or handing over its surplus) and when a node appears or leaves, so a handoff
 * waits for neither poll: the freed partition is taken within a round trip. (Keys that expire
 * leave no marker: a dead node's partitions are found by the poll after its TTL.) The same watch
 * keeps a mirror of the bucket, from which the cluster view is answered without a KV request.
 *
 * Faults: a renewal that fails for a whole TTL — NATS cut off, the event loop stalled, the
 * process paused — means another node may own the partition now. A lease is `usable()` only
 * while its last successful renewal (timed from when it was *sent*) is younger than 90% of the
 * TTL. Older, it is *suspended*, before anyone else can take it: the partition stops consuming
 * (`suspended`) and its commits wait; live sessions stay. The next renewal decides: if its
 * compare-and-set still succeeds, nobody can have owned the partition meanwhile (any other
 * owner would have changed the revision, and an expired key fails the CAS too), so the lease
 * resumes (`resumed`: the feed restarts from the ack floor) and no handler runs twice. If it
 * fails, the lease is lost (`released(p, false)`). The commit path asks `fenceOf()`; Postgres'
 * epoch row catches what a paused process could still slip past.
 */
import { Kvm, KvWatchInclude, type KV } from '@nats-io/kv';
import { JetStreamApiError } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { settleWithin, within } from './deadline.js';
import { isStreamFull } from './streamKeeper.js';
import { followConnection, type ConnectionUp } from './connectionUp.js';
import type { Logger } from './logger.js';

export interface LeaseEvents {
  /** This node now owns p (epoch = fencing epoch): fence the old owner, then start consuming it. */
  acquired(p: number, epoch: number): Promise<void>;
  /** This node must stop owning p: `graceful` when releasing to rebalance, false when it was lost. */
  released(p: number, graceful: boolean): Promise<void>;
  /** p's lease went too long without renewal: stop consuming it (commits wait); it may come back. */
  suspended?(p: number): void;
  /** A suspended lease was renewed with its revision intact: consume again, in order. */
  resumed?(p: number): void;
}

/** Whether a commit may go ahead for a partition: `wait` while its lease is suspended. */
export type Fence = 'ok' | 'wait' | 'lost';

export interface LeaseOptions {
  readonly nc: NatsConnection;
  readonly bucket: string;
  readonly nodeId: string;
  readonly partitions: number;
  /** Lease lifetime; renewed every quarter of it. */
  readonly ttlMs: number;
  readonly logger: Logger;
  readonly events: LeaseEvents;
  /** Clock for lease ages (tests may slow it down or speed it up); default: one that never steps (`steadyNow`). */
  readonly now?: () => number;
  /** Facts about this node its heartbeat carries for the cluster view (version, sessions, …). */
  readonly nodeInfo?: () => Readonly<Record<string, unknown>>;
}

/** A live node as its heartbeat key says: id, when it was written, and what it reported. */
export interface NodeHeartbeat {
  readonly nodeId: string;
  /** When the node wrote the heartbeat (its clock). */
  readonly at: number;
  readonly info: Readonly<Record<string, unknown>>;
}

/** One partition's lease as the bucket holds it: free (`nodeId` null) or owned under an epoch. */
export interface PartitionLease {
  readonly partition: number;
  readonly nodeId: string | null;
  readonly epoch: number | null;
  /** When the owner last renewed it (its clock). */
  readonly renewedAt: number | null;
}

interface Held {
  revision: number;
  readonly epoch: number;
  /** When the last successful renewal (or the acquisition) was sent. */
  renewedAt: number;
  /** A graceful release is draining it: renewed, but not counted towards the share. */
  releasing: boolean;
  /** Not renewed for 90% of the TTL: not consuming, commits wait, until a renewal decides. */
  suspended: boolean;
  /**
   * When a renewal sent then, past its deadline, is still unanswered (null: none). It may still
   * land and change the revision, so a compare-and-set sent meanwhile would fail on it: rounds skip
   * the lease until it is answered, for at most half the TTL.
   */
  pendingSince?: number | null;
}

/** Share of the TTL after which a lease is no longer used (see the module comment). */
const USABLE_FRACTION = 0.9;

/** The partition leases of one node. */
export class LeaseManager {
  private kv: KV | undefined;
  private readonly held = new Map<number, Held>();
  private renewTimer: NodeJS.Timeout | undefined;
  private balanceTimer: NodeJS.Timeout | undefined;
  private renewing: Promise<void> | null = null;
  private balancing: Promise<void> | null = null;
  private stopped = false;
  /** A balance was asked for while one ran: run another when it ends. */
  private balanceAgain = false;
  private watcher: { stop(): void } | null = null;
  /** Node ids seen in the bucket by the watch (a new one means a join: rebalance now). */
  private readonly knownNodes = new Set<string>();
  /** The bucket as the watch last saw it: key → revision, value, when it arrived (local clock). */
  private readonly mirror = new Map<string, { revision: number; body: Record<string, unknown> | null; seenAt: number }>();
  /** The watch has delivered every value the bucket held when it opened, and is still running. */
  private mirrorLive = false;
  /** KV reads the cluster view made (0 while the mirror answers; tests, metrics). */
  viewReads = 0;
  private readonly now: () => number;
  private lastRenewStart = 0;
  /**
   * Whether the control connection is up (runtime/connectionUp.ts: nats.js drops what is sent
   * while a connection is down). A renewal round sends nothing while it is down (a lease not
   * renewed ages as it would; a dropped renewal used to leave the lease skipped as "pending" for
   * up to half the TTL after the reconnect), and `confirm()` waits for it to be back.
   */
  private conn: ConnectionUp | null = null;

  constructor(private readonly o: LeaseOptions) {
    this.now = o.now ?? steadyNow;
  }

  /** How long recent KV requests took (ms, newest last; a timed-out one counts as its deadline). */
  private readonly latencies: number[] = [];

  /**
   * Deadline of one KV request: a blackholed server must not hold a renewal round. A quarter of
   * the TTL, or twice the slowest of the recent requests (a timeout doubles it), up to half the
   * TTL: a server that answers slower than a quarter TTL (an overloaded one) still renews and
   * hands out leases. Safety does not rest on it: a lease counts from when its renewal was sent
   * (`renewedAt`), however late the answer came, so it is never believed held past its TTL.
   * Public for tests and metrics.
   */
  get requestMs(): number {
    const base = Math.max(250, Math.floor(this.o.ttlMs / 4));
    const cap = Math.max(base, Math.floor(this.o.ttlMs / 2));
    let slowest = 0;
    for (const l of this.latencies) slowest = Math.max(slowest, l);
    return Math.min(cap, Math.max(base, Math.ceil(slowest * 2)));
  }

  /**
   * One KV request with the current deadline; its time (or the deadline, if it passed) is
   * remembered. A request past its deadline may still be answered: `late` then gets the answer
   * (and its real time is remembered too).
   */
  private async kvRequest<T>(p: Promise<T>, what: string, late?: (v: T) => void): Promise<T> {
    const ms = this.requestMs;
    const t0 = performance.now();
    try {
      const v = await within(p, ms, what);
      this.noteLatency(performance.now() - t0);
      return v;
    } catch (err) {
      const timedOut = (err as { name?: string }).name === 'TimeoutError';
      this.noteLatency(timedOut ? ms : performance.now() - t0);
      if (timedOut) p.then((v) => { this.noteLatency(performance.now() - t0); late?.(v); }, () => undefined);
      throw err;
    }
  }

  /**
   * Deadline of a key listing (`kv.keys`: an ordered consumer, several round trips, then the
   * keys): three request deadlines, at most the TTL. It only holds a balance round or a cluster
   * view, never a renewal; with one request deadline a slow server failed every listing, and the
   * balance round that starts with one took no partition at all.
   */
  private get listMs(): number { return Math.min(Math.max(this.o.ttlMs, this.requestMs), this.requestMs * 3); }

  private noteLatency(ms: number): void {
    this.latencies.push(ms);
    if (this.latencies.length > LATENCY_SAMPLES) this.latencies.shift();
  }

  /**
   * A renewal of p sent at `sentAt` under revision `was` was answered after its deadline: the
   * server applied it, so the lease is renewed as of `sentAt` (the key's TTL restarted no earlier)
   * and `rev` is its revision — unless the lease moved on meanwhile (released, or another renewal
   * already got through). Without this, the next renewal's compare-and-set failed on the
   * revision this one made, and on a slow server the read to sort that out was late too.
   */
  private renewedLate(p: number, h: Held, was: number, sentAt: number, rev: number): void {
    if (this.held.get(p) !== h || h.revision !== was) return;
    h.revision = rev;
    if (sentAt > h.renewedAt) h.renewedAt = sentAt;
    if (h.suspended && this.now() - h.renewedAt < this.o.ttlMs * USABLE_FRACTION) {
      h.suspended = false;
      this.o.logger.info({ partition: p }, 'partition lease renewal answered late, still in time: resumed');
      this.o.events.resumed?.(p);
    }
  }

  /** Opens the bucket, announces the node and takes its share of the free partitions. */
  async start(): Promise<void> {
    this.conn = followConnection(this.o.nc);
    const kv = await new Kvm(this.o.nc).create(this.o.bucket, { history: 1, ttl: this.o.ttlMs });
    this.kv = kv;
    // Watching before anything else: surplus another node frees while this one announces itself
    // and takes its first share is seen (bounded: the timers cover a watch that does not open).
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, this.requestMs * 2);
      void this.watchChanges(kv, () => { clearTimeout(t); resolve(); });
    });
    await this.heartbeat(kv, this.heartbeatBody());
    this.lastRenewStart = this.now();
    this.renewTimer = setInterval(() => { this.renewSoon(); }, Math.max(100, Math.floor(this.o.ttlMs / 4)));
    this.renewTimer.unref();
    await this.balance();
    this.balanceTimer = setInterval(() => { void this.balance(); }, Math.max(200, Math.floor(this.o.ttlMs / 4)));
    this.balanceTimer.unref();
  }

  /** Partitions this node owns now. */
  owned(): number[] { return [...this.held.keys()].sort((a, b) => a - b); }

  /** The partitions this node owns and is not letting go of (a graceful release drains them first): whose timers it fires. */
  serving(): number[] { return [...this.held].filter(([, h]) => !h.releasing).map(([p]) => p).sort((a, b) => a - b); }

  owns(p: number): boolean { return this.held.has(p); }

  /** Fencing epoch of an owned partition (0 when not owned). */
  epochOf(p: number): number { return this.held.get(p)?.epoch ?? 0; }

  /** Whether this node may still commit for p under `epoch`: owned with that epoch, renewed recently enough. */
  usable(p: number, epoch: number): boolean {
    const h = this.held.get(p);
    return h !== undefined && h.epoch === epoch && !h.suspended && this.now() - h.renewedAt < this.o.ttlMs * USABLE_FRACTION;
  }

  /**
   * The commit path's question: go ahead, wait (lease suspended, may come back), or give up (lost).
   * Not 'lost' merely because `stop()` began: it releases each partition gracefully, and the
   * drain is there for the commits under way; a partition is lost to them only once its lease is
   * let go (`held` forgets it), and `usable` still bounds them by the last renewal. Answering
   * 'lost' from the first moment of stop() refused a record that waited for a commit slot, or
   * for the next event-loop turn (`setImmediate` in the group commit), and ran its handler again
   * on the next node (test/durability/stopDrainsCommits.test.ts).
   */
  fenceOf(p: number, epoch: number): Fence {
    const h = this.held.get(p);
    if (h === undefined || h.epoch !== epoch) return 'lost';
    return this.usable(p, epoch) ? 'ok' : 'wait';
  }

  /** How long ago the oldest held lease was last renewed (ms; 0 when none is held). */
  renewalAge(): number {
    let oldest = 0;
    const now = this.now();
    for (const h of this.held.values()) oldest = Math.max(oldest, now - h.renewedAt);
    return oldest;
  }

  /**
   * Renews p's lease now: true when this node still owns it, false when it does not, null when
   * NATS did not answer (ask again later). A partition feed asks this before it deletes and
   * re-creates consumers, so a deposed node never removes the new owner's.
   */
  async confirm(p: number): Promise<boolean | null> {
    // Sent while the connection is down, the request would be dropped by the client (see
    // `conn`): a feed restarting on a reconnect of the data connection asks this while the
    // control connection may still be reconnecting.
    await this.conn?.whenUp(Math.floor(this.o.ttlMs / 2));
    const kv = this.kv;
    const h = this.held.get(p);
    if (!kv || !h || this.stopped) return false;
    const sentAt = this.now();
    const was = h.revision;
    try {
      const rev = await this.kvRequest(kv.update(`part.${p}`, this.body(), h.revision), 'lease renewal', (r) => { this.renewedLate(p, h, was, sentAt, r); });
      if (this.held.get(p) !== h) return false;
      h.revision = rev;
      h.renewedAt = sentAt;
      if (h.suspended) {
        // Suspended while this confirmation was on its way: the feed was paused meanwhile, and a
        // paused restart does not consume again by itself. Until 2026-11-28 the suspension was
        // cleared silently here and the partition handled nothing until its lease was lost
        // (chaos seed 11: 45 s; test/runtime/leaseConfirmSuspended.test.ts).
        h.suspended = false;
        this.o.logger.info({ partition: p }, 'partition lease confirmed after a lapse: resumed');
        this.o.events.resumed?.(p);
      }
      return true;
    } catch (err) {
      if (this.held.get(p) !== h) return false;
      if (isCasFailure(err)) {
        const mine = await this.recover(kv, p, h);
        if (mine) return this.confirm(p);
        if (mine === null) return null; // the read got no answer: undecided
        this.lose(p, 'its lease was taken or expired');
        return false;
      }
      return null;
    }
  }

  /**
   * Releases every lease (graceful shutdown) so other nodes take over without waiting for the
   * TTL: partitions drain in parallel, keys are deleted in parallel, each request with a deadline.
   * False when a lease key could not be deleted (NATS gone): other nodes then wait for its TTL.
   * Renewals go on while the partitions drain, as in a rebalancing release: a drain is there for
   * the turns and commits under way, and a lease left unrenewed for 90% of its TTL makes their
   * commits wait and then be refused (its key expires), so the drain was as long as the TTL, not
   * the grace (test/durability/stopDrainsCommits.test.ts).
   */
  async stop(): Promise<boolean> {
    this.stopped = true;
    clearInterval(this.balanceTimer);
    this.watcher?.stop();
    await settleWithin(this.balancing ?? undefined, this.o.ttlMs);
    const kv = this.kv;
    const freed = await Promise.all(this.owned().map(async (p) => {
      const h = this.held.get(p);
      if (!h) return true;
      await this.o.events.released(p, true).catch((err: unknown) => { this.o.logger.warn({ err, partition: p }, 'partition release failed'); });
      // A renewal in flight would move the key's revision under the delete: let it land first.
      // Nothing awaits between its end and forgetting p, so no later round renews p.
      while (this.renewing) await this.renewing;
      if (this.held.get(p) !== h) return true; // a renewal found it taken or expired: not ours to delete
      this.held.delete(p);
      if (!kv) return true;
      return within(kv.delete(`part.${p}`, { previousSeq: h.revision }), 1_000, 'lease release').then(() => true, () => false);
    }));
    clearInterval(this.renewTimer);
    while (this.renewing) await this.renewing; // its heartbeat must not write the node key back
    if (kv) await settleWithin(kv.delete(`node.${this.o.nodeId}`), 1_000);
    this.conn?.stop();
    return freed.every(Boolean);
  }

  /** This process (a restarted node keeps its id but not this): tells our own writes from others'. */
  private readonly instance = `${process.pid}-${Math.random().toString(36).slice(2, 10)}`;

  /**
   * Other live processes running under this node's id (a copy-pasted `AGENTRY_NODE_ID`, a pod
   * duplicated by a forced delete), by instance, with when one was last seen writing: a heartbeat
   * or a lease renewal the watch saw as an update, i.e. written after this process started
   * watching — a crashed predecessor writes nothing more, so its leases are still reclaimed at
   * once. A live twin's leases are left to it: before 2026-11-29 the two reclaimed each other's
   * partitions at every balance round for as long as both ran (8 partitions flapping between
   * them several times a second, each takeover a fencing epoch, a consumer re-made and the
   * partition's unacked messages redelivered).
   */
  private readonly twinsSeen = new Map<string, number>();
  private twinWarnedAt = -Infinity;

  /** Instances of other live processes using this node's id (see `twinsSeen`); empty when the id is this process's alone. */
  twins(): string[] {
    const now = this.now();
    return [...this.twinsSeen].filter(([, at]) => now - at <= this.o.ttlMs).map(([inst]) => inst);
  }

  private isLiveTwin(inst: unknown): boolean {
    if (typeof inst !== 'string' || inst === this.instance) return false;
    const at = this.twinsSeen.get(inst);
    return at !== undefined && this.now() - at <= this.o.ttlMs;
  }

  /** A write of another process under this node's id was seen: remember it, and say so (once a minute). */
  private twinSeen(inst: string, now: number): void {
    this.twinsSeen.set(inst, now);
    if (this.twinsSeen.size > 16) for (const [i, at] of this.twinsSeen) if (now - at > this.o.ttlMs) this.twinsSeen.delete(i);
    if (now - this.twinWarnedAt < 60_000) return;
    this.twinWarnedAt = now;
    this.o.logger.error({ nodeId: this.o.nodeId, instance: this.instance, twin: inst },
      'another live process runs with this node id: give each process its own AGENTRY_NODE_ID (each keeps the leases it holds; partitions are not balanced evenly until then)');
  }

  private body(): string {
    return JSON.stringify({ node: this.o.nodeId, inst: this.instance, at: this.now() });
  }

  /** The heartbeat: the lease body plus what the node reports of itself. */
  private heartbeatBody(): string {
    let info: Readonly<Record<string, unknown>> = {};
    try { info = this.o.nodeInfo?.() ?? {}; } catch { /* a report that fails must not stop the heartbeat */ }
    return JSON.stringify({ ...info, node: this.o.nodeId, inst: this.instance, at: this.now(), renewalAgeMs: this.renewalAge() });
  }

  /**
   * Every live node's heartbeat and every partition's lease (any node can answer for the whole
   * cluster): from the watch's mirror of the bucket when it is live (one NATS round trip instead
   * of a read per key: the inspector polls this every few seconds), else, or with `read`, read key
   * by key. Bounded: each request has the request deadline.
   */
  async clusterView(opts: { read?: boolean } = {}): Promise<{ nodes: NodeHeartbeat[]; partitions: PartitionLease[] }> {
    const kv = this.kv;
    if (!kv) throw new Error('leases are not started');
    const mirrored = opts.read ? null : this.mirroredEntries();
    if (mirrored) {
      // One round trip instead of a read per key: the mirror is only as good as the connection
      // feeding it, and a view with NATS gone must fail (NOT_READY), not show the past.
      await within(this.o.nc.flush(), this.requestMs, 'lease bucket (NATS round trip)');
      return this.viewOf(mirrored);
    }
    const lister = await within(kv.keys(), this.listMs, 'lease key list');
    const keys: string[] = [];
    try {
      await within((async () => { for await (const k of lister) if (k) keys.push(k); })(), this.listMs, 'lease key list');
    } finally {
      lister.stop();
    }
    // A key that cannot be read fails the whole view (the caller answers NOT_READY): a partial one
    // would show an owned partition as free or a live node as gone.
    this.viewReads += keys.length;
    const entries = await Promise.all([...new Set(keys)].map(async (k) => {
      const e = await this.kvRequest(kv.get(k), 'lease read');
      if (!e || e.operation !== 'PUT') return null; // deleted or expired since it was listed
      try { return { key: k, revision: e.revision, body: e.json<Record<string, unknown>>() }; } catch { return null; }
    }));
    return this.viewOf(entries);
  }

  /**
   * The mirror's live keys, when it can answer: the watch is running and caught up, and this
   * node's own heartbeat (written every quarter TTL) arrived within half a TTL, so a watch that
   * stalled without ending is not believed. Keys not rewritten for a TTL are taken as expired
   * (the bucket's TTL removes keys without a marker). Null: read the bucket instead.
   */
  private mirroredEntries(): { key: string; revision: number; body: Record<string, unknown> }[] | null {
    if (!this.mirrorLive) return null;
    const now = this.now();
    const own = this.mirror.get(`node.${this.o.nodeId}`);
    if (!own || now - own.seenAt > this.o.ttlMs / 2) return null;
    const out: { key: string; revision: number; body: Record<string, unknown> }[] = [];
    for (const [key, e] of this.mirror) if (e.body && now - e.seenAt <= this.o.ttlMs) out.push({ key, revision: e.revision, body: e.body });
    return out;
  }

  /** Nodes and partitions from the bucket's entries (read or mirrored). */
  private viewOf(entries: readonly ({ key: string; revision: number; body: Record<string, unknown> } | null)[]): { nodes: NodeHeartbeat[]; partitions: PartitionLease[] } {
    const nodes: NodeHeartbeat[] = [];
    const owned = new Map<number, PartitionLease>();
    for (const e of entries) {
      if (!e) continue;
      if (e.key.startsWith('node.')) {
        const info = { ...e.body };
        delete info.node;
        delete info.inst;
        delete info.at;
        if (typeof e.body.at !== 'number') continue; // not a heartbeat this code wrote
        nodes.push({ nodeId: e.key.slice('node.'.length), at: e.body.at, info });
      } else if (e.key.startsWith('part.')) {
        const partition = Number(e.key.slice('part.'.length));
        // Renewals write the epoch into the body; until the first one the key's revision is it.
        const epoch = typeof e.body.epoch === 'number' ? e.body.epoch : e.revision;
        if (Number.isInteger(partition)) {
          owned.set(partition, { partition, nodeId: String(e.body.node), epoch, renewedAt: typeof e.body.at === 'number' ? e.body.at : null });
        }
      }
    }
    const partitions = Array.from({ length: this.o.partitions }, (_, p) => owned.get(p) ?? { partition: p, nodeId: null, epoch: null, renewedAt: null });
    return { nodes: nodes.sort((a, b) => a.nodeId.localeCompare(b.nodeId)), partitions };
  }

  /**
   * A renewal's CAS failed. If the key holds a value this process wrote, an earlier renewal
   * that timed out on our side was applied by the server after all (a slow server): ownership
   * never left us, adopt that revision (true). Someone else wrote it, or it expired: lost
   * (false). The read got no answer: undecided (null) — the lease stays held but unrenewed, so
   * it is suspended at 90% of the TTL like any late one, and a later round decides. (Until
   * 2026-11-28 no answer counted as lost: a server slower than the request deadline made every
   * node drop every lease it held.)
   */
  private async recover(kv: KV, p: number, h: Held): Promise<boolean | null> {
    let e: Awaited<ReturnType<KV['get']>>;
    try {
      e = await this.kvRequest(kv.get(`part.${p}`), 'lease read');
    } catch {
      return null;
    }
    // `>=`: a late answer (renewedLate) may have adopted that revision already.
    if (e && e.operation === 'PUT' && e.revision >= h.revision && e.json<{ inst?: string }>().inst === this.instance) {
      h.revision = e.revision;
      return true;
    }
    return false;
  }

  private async heartbeat(kv: KV, body: string): Promise<void> {
    try {
      await this.kvRequest(kv.put(`node.${this.o.nodeId}`, body), 'node heartbeat');
    } catch (err) {
      this.o.logger.warn({ err: (err as Error).message }, 'node heartbeat failed');
    }
  }

  /** Starts a renewal round unless one is running (a round has deadlines: it cannot pile up). */
  private renewSoon(): void {
    const now = this.now();
    if (now - this.lastRenewStart > this.o.ttlMs / 2) this.o.logger.warn({ ms: now - this.lastRenewStart }, 'lease renewal ran late (a busy or paused process); leases may lapse');
    this.lastRenewStart = now;
    this.expireStale();
    // Stopping: renewals go on until the last partition is drained and let go (see `stop`).
    if (this.renewing || (this.stopped && this.held.size === 0) || !this.kv) return;
    this.renewing = this.renew(this.kv).catch((err: unknown) => { this.o.logger.error({ err }, 'lease renewal failed'); }).finally(() => { this.renewing = null; });
  }

  /** Suspends leases not renewed for 90% of the TTL: another node may take them any moment. */
  private expireStale(): void {
    const now = this.now();
    for (const [p, h] of this.held) {
      if (h.suspended || now - h.renewedAt < this.o.ttlMs * USABLE_FRACTION) continue;
      h.suspended = true;
      this.o.logger.warn({ partition: p, ms: now - h.renewedAt }, 'partition lease not renewed in time: suspended (not consuming, commits wait) until a renewal decides');
      this.o.events.suspended?.(p);
    }
  }

  private async renew(kv: KV): Promise<void> {
    // Nothing sent while the connection is down: the client would drop it (see `conn`), and a
    // renewal that timed out would be skipped as pending after the reconnect. The leases age as
    // with any failed renewal, and `expireStale` below still suspends them in time.
    if (this.conn && !this.conn.up()) { this.expireStale(); return; }
    const sentAt = this.now();
    const body = this.body();
    await Promise.all([
      this.heartbeat(kv, this.heartbeatBody()),
      ...[...this.held].map(async ([p, h]) => {
        if (h.pendingSince != null && sentAt - h.pendingSince < this.o.ttlMs / 2) return;
        const was = h.revision;
        const req = kv.update(`part.${p}`, withEpoch(body, h.epoch), h.revision);
        try {
          const rev = await this.kvRequest(req, 'lease renewal', (r) => { this.renewedLate(p, h, was, sentAt, r); });
          if (this.held.get(p) !== h) return;
          h.revision = rev;
          h.renewedAt = sentAt;
          if (h.suspended) {
            // The CAS held: nobody owned it in between. Consume again, in order.
            h.suspended = false;
            this.o.logger.info({ partition: p }, 'partition lease renewed after a lapse: resumed');
            this.o.events.resumed?.(p);
          }
        } catch (err) {
          if (this.held.get(p) !== h) return;
          if ((err as { name?: string }).name === 'TimeoutError') {
            h.pendingSince = sentAt;
            const answered = (): void => { if (h.pendingSince === sentAt) h.pendingSince = null; };
            req.then(answered, answered);
            return;
          }
          if (isStreamFull(err)) this.storageFull();
          if (isCasFailure(err) && (await this.recover(kv, p, h)) === false) this.lose(p, 'its lease was taken or expired');
          // Otherwise transient (timeout, disconnected, the read unanswered): the next round tries again; expireStale decides.
        }
      }),
    ]);
    this.expireStale();
  }

  private lastFullLog = 0;
  /**
   * A renewal refused for want of JetStream storage: say so plainly (once a minute), since the
   * leases lapse next and this node stops consuming — and only consuming the inbox makes room.
   * The runtime's own streams are bounded so that they cannot get there (`inboxMaxBytes`,
   * `eventsMaxBytes`); something else filled the server's or account's storage.
   */
  private storageFull(): void {
    const now = Date.now();
    if (now - this.lastFullLog < 60_000) return;
    this.lastFullLog = now;
    this.o.logger.error({ bucket: this.o.bucket }, 'JetStream storage is full: partition lease renewals are refused, leases will lapse and partitions stop; free JetStream storage (other streams, max_file_store) — inboxMaxBytes and eventsMaxBytes must stay well below it');
  }

  /** The lease is gone: stop consuming and committing in p at once. */
  private lose(p: number, why: string): void {
    if (!this.held.delete(p)) return;
    this.o.logger.warn({ partition: p, why }, 'partition lease lost');
    void this.o.events.released(p, false).catch((err: unknown) => { this.o.logger.error({ err, partition: p }, 'releasing a lost partition failed'); });
  }

  /**
   * Takes partition p if its lease is free, or if it names this node (this node restarted
   * after a crash: it need not wait for its own lease to expire). Returns the new revision,
   * which is higher than any earlier one: the new fencing epoch.
   */
  private async takeOver(kv: KV, p: number, body: string): Promise<number | null> {
    try {
      return await this.kvRequest(kv.create(`part.${p}`, body), 'lease create');
    } catch { /* taken, or no answer: by whom? */ }
    try {
      const e = await this.kvRequest(kv.get(`part.${p}`), 'lease read');
      const owner = e && e.operation === 'PUT' ? e.json<{ node?: string; inst?: string }>() : null;
      if (e && owner?.node === this.o.nodeId && !this.held.has(p) && !this.isLiveTwin(owner.inst)) {
        return await this.kvRequest(kv.update(`part.${p}`, body, e.revision), 'lease reclaim');
      }
    } catch { /* raced */ }
    return null;
  }

  /** Ids of the nodes whose heartbeat key is live, read within a deadline. */
  private async liveNodes(kv: KV): Promise<Set<string>> {
    const keys = await within(kv.keys('node.*'), this.listMs, 'node list');
    const names = new Set<string>();
    try {
      await within((async () => { for await (const k of keys) if (k) names.add(k); })(), this.listMs, 'node list');
    } finally {
      keys.stop();
    }
    return names;
  }

  /** One balance round at a time; renewals never wait for it. */
  private balance(): Promise<void> {
    if (this.balancing || this.stopped || !this.kv) return this.balancing ?? Promise.resolve();
    const kv = this.kv;
    this.balancing = this.balanceOnce(kv).catch((err: unknown) => { this.o.logger.error({ err }, 'lease balancing failed'); }).finally(() => {
      this.balancing = null;
      if (this.balanceAgain && !this.stopped) { this.balanceAgain = false; void this.balance(); }
    });
    return this.balancing;
  }

  /** A balance round now, or right after the one running (a change it may not have seen). */
  private balanceSoon(): void {
    if (this.stopped) return;
    if (this.balancing) { this.balanceAgain = true; return; }
    void this.balance();
  }

  /**
   * Watches the bucket for what should move partitions at once: a lease deleted (freed by its
   * owner), a node key new or deleted (a join or a graceful leave). Renewals and heartbeats of
   * known nodes are ignored. The watch is opened again after it ends (a reconnect, a server
   * restart) until the manager stops; while it is down the timers still balance.
   */
  private async watchChanges(kv: KV, opened?: () => void): Promise<void> {
    while (!this.stopped) {
      try {
        // One watch on every key: nats-server 2.9 (Debian's) takes one filter per watch.
        // Every key's last value first (the mirror), then every change.
        const it = await within(kv.watch({ key: '>', include: KvWatchInclude.LastValue }), this.requestMs * 2, 'lease watch');
        this.watcher = it;
        this.mirror.clear();
        opened?.();
        if (this.stopped) { it.stop(); return; }
        // The revision that ends the replay of last values: only a write past it happened while
        // this watch was open (nats.js marks the last replayed value as an update too).
        let replayEnd = Infinity;
        for await (const e of it) {
          const now = this.now();
          if (replayEnd === Infinity && e.delta === 0) replayEnd = e.revision;
          if (e.operation === 'PUT') {
            let body: Record<string, unknown> | null = null;
            try { body = e.json<Record<string, unknown>>(); } catch { /* not ours */ }
            // A value replayed at open counts from when it was written, not from now.
            this.mirror.set(e.key, { revision: e.revision, body, seenAt: e.isUpdate ? now : Math.min(now, e.created.getTime()) });
          } else this.mirror.delete(e.key);
          if (!e.isUpdate) {
            // The bucket as it was when the watch opened: known nodes, nothing to react to.
            if (e.key.startsWith('node.') && e.operation === 'PUT') this.knownNodes.add(e.key.slice('node.'.length));
            if (e.delta === 0) this.mirrorLive = true;
            continue;
          }
          this.mirrorLive = true;
          const written = e.operation === 'PUT' && e.revision > replayEnd ? this.mirror.get(e.key)?.body : null;
          if (written && written.node === this.o.nodeId && typeof written.inst === 'string' && written.inst !== this.instance) this.twinSeen(written.inst, now);
          if (e.key.startsWith('part.')) {
            if (e.operation !== 'PUT') this.balanceSoon();
          } else if (e.key.startsWith('node.')) {
            const id = e.key.slice('node.'.length);
            if (e.operation === 'PUT') {
              if (!this.knownNodes.has(id)) { this.knownNodes.add(id); if (id !== this.o.nodeId) this.balanceSoon(); }
            } else if (this.knownNodes.delete(id)) this.balanceSoon();
          }
        }
      } catch (err) {
        this.o.logger.debug({ err: (err as Error).message }, 'lease watch ended; opening it again');
      }
      this.mirrorLive = false;
      if (!this.stopped) await new Promise((r) => setTimeout(r, Math.max(200, Math.floor(this.o.ttlMs / 4))));
    }
  }

  private async balanceOnce(kv: KV): Promise<void> {
    // Distinct live node keys, read whole within a deadline; on any doubt skip this round: acting
    // on a partial or doubled count (the key lister can restart and repeat keys under load)
    // made nodes release and re-take partitions back and forth.
    let nodes: number;
    try {
      nodes = Math.max(1, (await this.liveNodes(kv)).size);
    } catch (err) {
      this.o.logger.debug({ err: (err as Error).message }, 'node list unavailable; balancing skipped this round');
      return;
    }
    const share = Math.ceil(this.o.partitions / nodes);
    const counted = (): number => [...this.held.values()].filter((h) => !h.releasing).length;
    if ([...this.held.values()].some((h) => h.suspended)) return; // this node is in trouble: take nothing more
    // Start with a partition that depends on the node id, so nodes starting together do not
    // all race for partition 0, 1, 2, … in the same order.
    const offset = hashOf(this.o.nodeId) % this.o.partitions;
    // Take the keys first (cheap CAS writes), then start the partitions taken, several at a
    // time: started one by one, a node facing a backlog spent a minute starting its 64
    // partitions while the first ones already flooded it.
    const taken: [number, Held][] = [];
    for (let i = 0; i < this.o.partitions && counted() < share && !this.stopped; i++) {
      const p = (offset + i) % this.o.partitions;
      if (this.held.has(p)) continue;
      const sentAt = this.now();
      const rev = await this.takeOver(kv, p, this.body());
      if (rev === null || this.stopped) continue;
      const h: Held = { revision: rev, epoch: rev, renewedAt: sentAt, releasing: false, suspended: false };
      this.held.set(p, h);
      taken.push([p, h]);
    }
    let next = 0;
    const starter = async (): Promise<void> => {
      while (next < taken.length) {
        const [p, h] = taken[next++]!;
        try {
          await this.o.events.acquired(p, h.epoch);
        } catch (err) {
          this.o.logger.warn({ err, partition: p }, 'could not start a partition just taken; letting it go');
          if (this.held.get(p) === h) {
            this.held.delete(p);
            await this.o.events.released(p, false).catch(() => undefined);
            await settleWithin(kv.delete(`part.${p}`, { previousSeq: h.revision }), this.requestMs);
          }
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL_STARTS, taken.length) }, starter));
    if (counted() > share) {
      for (const p of this.owned().slice(share)) {
        const h = this.held.get(p);
        if (!h || this.stopped) continue;
        // Drain first (its commits still carry the epoch; renewals go on meanwhile), then free the key.
        h.releasing = true;
        await this.o.events.released(p, true);
        if (this.held.get(p) !== h) continue;
        this.held.delete(p);
        await settleWithin(kv.delete(`part.${p}`, { previousSeq: h.revision }), this.requestMs);
      }
    }
  }
}

/** The KV compare-and-set failed: the key's revision is not ours (taken by another node, or expired). */
function isCasFailure(err: unknown): boolean {
  return err instanceof JetStreamApiError && (err.code === 10071 || err.code === 10164);
}

/** A lease body (`{"node":…,"at":…}`) that also names the epoch it was acquired under, for the cluster view. */
function withEpoch(body: string, epoch: number): string {
  return `${body.slice(0, -1)},"epoch":${epoch}}`;
}

/** KV request times remembered for the adaptive deadline (about two renewal rounds of 8 partitions). */
const LATENCY_SAMPLES = 16;

/** Partitions started at once (claim in Postgres, consumer re-created). */
const PARALLEL_STARTS = 8;

function hashOf(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 0x01000193) >>> 0; }
  return h;
}

/**
 * Epoch milliseconds that never step: the process's start time plus a monotonic clock. A lease's
 * age must not follow the wall clock: set back (an NTP step, a VM resumed and re-synced) it made
 * a lease that nobody renewed look fresh for as long as the step (the node kept consuming and
 * committing long after its lease expired on the server; Postgres' epoch fencing still refused
 * its commits once another node claimed the partition), and set forward it made every lease look
 * stale at once (2026-11-29; test/runtime/leaseClockStep.test.ts).
 */
function steadyNow(): number {
  return performance.timeOrigin + performance.now();
}
