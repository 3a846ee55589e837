// Owns the shape every chaos scenario test shares: a cluster, a set of sessions (rec-queue ones
// created by their first message, rec-merge and rec-sleep ones created up front), a load that
// runs while the test injects its fault, a settle period with a deadline, and the verifier's
// report printed and returned. The test decides when and what the fault is.
import type { Cluster, ClusterOptions } from './cluster.js';
import { Cluster as ClusterClass } from './cluster.js';
import { Load, type PoisonKind } from './load.js';
import { summarize, verify, type FaultRecord, type Report } from './verifier.js';

export interface ScenarioOptions extends ClusterOptions {
  /** rec-queue sessions (default 30) and rec-merge sessions (default 10). */
  readonly queueSessions?: number;
  readonly mergeSessions?: number;
  /** rec-sleep sessions, for timers due during the fault (default 4). */
  readonly sleepers?: number;
  /** Messages per load session (default 60); null: open-ended, until `load.close()`. */
  readonly messages?: number | null;
  /** Total publish rate (default 150/s). */
  readonly ratePerSec?: number;
  /** rec-event sessions subscribed to the load's events (default 6), and events per second (default 2; 0: none). */
  readonly eventSubscribers?: number;
  readonly eventsPerSec?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A running scenario: its cluster, its load, and the faults recorded so far. */
export class Scenario {
  readonly faults: FaultRecord[] = [];
  private constructor(readonly cluster: Cluster, readonly load: Load, readonly sleepers: readonly string[], readonly total: number) {}

  /** Starts the cluster, creates the typed sessions and starts the load. */
  static async start(o: ScenarioOptions): Promise<Scenario> {
    const cluster = await ClusterClass.start(o);
    try {
      const queue = Array.from({ length: o.queueSessions ?? 30 }, (_, k) => `q-${k}`);
      const merge = Array.from({ length: o.mergeSessions ?? 10 }, (_, k) => `m-${k}`);
      const sleepers = Array.from({ length: o.sleepers ?? 4 }, (_, k) => `z-${k}`);
      const ctl = cluster.nodes[0]!.child!;
      for (const sid of merge) await ctl.ctl('createAgent', sid, 'rec-merge');
      for (const sid of sleepers) await ctl.ctl('createAgent', sid, 'rec-sleep');
      const eventsPerSec = o.eventsPerSec ?? 2;
      const subscribers = eventsPerSec > 0 ? Array.from({ length: o.eventSubscribers ?? 6 }, (_, k) => `ev-${k}`) : [];
      for (const sid of subscribers) await ctl.ctl('createAgent', sid, 'rec-event');
      const messages = o.messages === undefined ? 60 : o.messages;
      const load = new Load({
        url: cluster.nats.url, sessions: [...queue, ...merge], sleepers, ratePerSec: o.ratePerSec ?? 150, eventsPerSec, eventSubscribers: subscribers,
        ...(messages === null ? {} : { messages }),
      });
      await load.start();
      return new Scenario(cluster, load, sleepers, messages === null ? Infinity : (queue.length + merge.length) * messages);
    } catch (e) {
      await cluster.destroy();
      throw e;
    }
  }

  /** Waits until this fraction of the planned messages is acked by JetStream (the fault then lands mid-load). */
  async progress(fraction: number, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.load.ackedCount() < this.total * fraction) {
      if (Date.now() > deadline) throw new Error(`load stuck at ${this.load.ackedCount()} of ${this.total} acked`);
      await sleep(50);
    }
  }

  /** Sets each sleeper a timer due at `from + k * spreadMs / n` (so they fall due during a fault). */
  timersAt(from: number, spreadMs: number): void {
    this.sleepers.forEach((sid, k) => { this.load.sleep(sid, Math.round(from + (k * spreadMs) / Math.max(1, this.sleepers.length))); });
  }

  /** Slips one poison message of each kind into the given sessions (one kind per session, cycling). */
  poison(sessions: readonly string[], kinds: readonly PoisonKind[]): void {
    sessions.forEach((sid, k) => { this.load.injectPoison(sid, kinds[k % kinds.length]!); });
  }

  /** Records a fault that starts now; call `end()` on the result when it is lifted. */
  fault(kind: string, node: number | null, detail?: Record<string, unknown>): FaultRecord & { endNow(): void } {
    const f: FaultRecord = { kind, node, start: Date.now(), end: Date.now(), ...(detail ? { detail } : {}) };
    this.faults.push(f);
    return Object.assign(f, { endNow: () => { f.end = Date.now(); } });
  }

  /**
   * Waits (up to `settleMs`) for the load to be acked, the inbox stream to drain, every node to
   * be ready and every timer to have fallen due and fired; then verifies and prints the report.
   */
  async finish(title: string, settleMs = 60_000): Promise<Report> {
    const deadline = Date.now() + settleMs;
    this.load.close(); // open-ended load ends here; a planned one publishes the rest of its plan
    await Promise.race([this.load.finished(), sleep(settleMs)]);
    const lastTimer = Math.max(0, ...this.load.timers.map((t) => t.until));
    let waited = '';
    let outbox = -1;
    let owners = await this.cluster.ownership();
    for (;;) {
      const unacked = await this.cluster.unacked().catch(() => -1);
      owners = await this.cluster.ownership();
      const single = !owners.known || (owners.overlaps.length === 0 && owners.unowned.length === 0);
      const timersDue = Date.now() > lastTimer + 500 && (await this.timersFired());
      outbox = await this.outboxRows();
      const events = await this.eventsDelivered();
      if (unacked === 0 && owners.ready && single && timersDue && outbox === 0 && events) break;
      waited = `unacked=${unacked} ready=${owners.ready} owners=${JSON.stringify(owners.byNode)} timersFired=${timersDue} outbox=${outbox} eventsDelivered=${events}`;
      if (Date.now() > deadline) { console.log(`[${title}] settle deadline passed (${waited})`); break; }
      await sleep(250);
    }
    const verified = await verify(this.cluster, this.load, this.faults);
    // Two nodes that both believe they own a partition after settling: both may process its sessions.
    const problems = [...verified.problems];
    if (owners.overlaps.length > 0) problems.push(`partitions claimed by more than one node after settling: ${owners.overlaps.join('; ')}`);
    if (owners.known && owners.unowned.length > 0) problems.push(`partitions owned by no node after settling: ${owners.unowned.join(', ')}`);
    // Every committed output (each message's reply) published: none stranded in the outbox.
    if (outbox !== 0) problems.push(outbox < 0 ? 'outbox table unreadable' : `${outbox} committed outputs never published (left in the outbox)`);
    const report: Report = { ...verified, problems, ok: problems.length === 0 };
    console.log(summarize(report, title));
    if (!report.ok) console.log(this.cluster.tails(12));
    return report;
  }

  /** Outbox rows still stored: outputs committed and not yet published (-1: unreadable). */
  private async outboxRows(): Promise<number> {
    const db = await this.cluster.db();
    try {
      const r = await db.query<{ n: string }>('SELECT count(*)::text AS n FROM outbox');
      return Number(r.rows[0]?.n ?? -1);
    } catch { return -1; } finally { await db.end(); }
  }

  /** Has every event subscriber committed at least as many events as were published? */
  private async eventsDelivered(): Promise<boolean> {
    const subs = this.load.eventSubscribers;
    if (subs.length === 0 || this.load.events.length === 0) return true;
    const db = await this.cluster.db();
    try {
      const r = await db.query<{ n: string }>(
        `SELECT coalesce(min(jsonb_array_length(coalesce(snapshot->'context'->'userState'->'got', '[]'::jsonb))), 0)::text AS n FROM sessions WHERE id = ANY($1)`,
        [[...subs]]);
      return Number(r.rows[0]?.n ?? 0) >= this.load.events.length;
    } catch { return false; } finally { await db.end(); }
  }

  /** Have all timers set so far produced a `time` wake in the committed state? */
  private async timersFired(): Promise<boolean> {
    if (this.load.timers.length === 0) return true;
    const db = await this.cluster.db();
    try {
      const r = await db.query<{ n: string }>(
        `SELECT coalesce(sum(jsonb_array_length(coalesce(snapshot->'context'->'userState'->'wakes', '[]'::jsonb))), 0)::text AS n FROM sessions WHERE id = ANY($1)`,
        [[...this.sleepers]]);
      return Number(r.rows[0]?.n ?? 0) >= this.load.timers.length;
    } catch { return false; } finally { await db.end(); }
  }

  /** Stops the load and tears the cluster down (every process it started is killed). */
  async destroy(): Promise<void> {
    await this.load.stop();
    await this.cluster.destroy();
  }
}

/** The failure message a scenario test asserts with: the problems, or nothing when all is well. */
export function problemsOf(r: Report): string[] { return r.problems; }
