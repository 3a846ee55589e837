// Owns the shape every chaos scenario test shares: a cluster, a set of sessions (rec-queue ones
// created by their first message, rec-merge and rec-sleep ones created up front; optionally
// mailers with their mailboxes and sessions with a cron task), a load that
// runs while the test injects its fault, a settle period with a deadline, and the verifier's
// report printed and returned. The test decides when and what the fault is.
import type { Cluster, ClusterOptions } from './cluster.js';
import { Cluster as ClusterClass } from './cluster.js';
import { Load, type PoisonKind } from './load.js';
import { summarize, verify, type FaultRecord, type Report, type Traffic } from './verifier.js';

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
  /**
   * Load sessions that mail each message they handle on (`rec-mailer`, half `rec-mailer-merge`;
   * default 0) and the `rec-mailbox` sessions they mail (default 3 when there are mailers): each
   * mailer has one partner, on another partition.
   */
  readonly mailers?: number;
  readonly mailboxes?: number;
  /** `rec-mailbox` sessions with a cron task each (default 0), and its schedule (default every 2 s). */
  readonly cronSessions?: number;
  readonly cronSchedule?: string;
}

/** The default cron schedule (croner, with seconds): a firing every 2 s. */
export const CRON_EVERY_2S = '*/2 * * * * *';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A running scenario: its cluster, its load, and the faults recorded so far. */
export class Scenario {
  readonly faults: FaultRecord[] = [];
  private cronCancelled = false;
  private constructor(readonly cluster: Cluster, readonly load: Load, readonly sleepers: readonly string[], readonly total: number, readonly traffic: Traffic) {}

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
      const traffic = await setUpTraffic(cluster, o);
      const messages = o.messages === undefined ? 60 : o.messages;
      const load = new Load({
        url: cluster.nats.url, sessions: [...queue, ...merge, ...traffic.mailTo.keys()], sleepers, ratePerSec: o.ratePerSec ?? 150, eventsPerSec, eventSubscribers: subscribers,
        ...(messages === null ? {} : { messages }),
      });
      await load.start();
      return new Scenario(cluster, load, sleepers, messages === null ? Infinity : (queue.length + merge.length + traffic.mailTo.size) * messages, traffic);
    } catch (e) {
      console.log(`[scenario] setting up failed: ${(e as Error).message}\n${await cluster.diagnose().catch(() => '')}\n${cluster.tails(40)}`);
      cluster.keepLogs();
      await cluster.destroy();
      throw e;
    }
  }

  /** Waits until this fraction of the planned messages is acked by JetStream (the fault then lands mid-load). */
  async progress(fraction: number, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.load.ackedCount() < this.total * fraction) {
      if (Date.now() > deadline) {
        console.log(`[progress] load stuck; nodes:\n${await this.cluster.diagnose()}\n${this.cluster.tails(40)}`);
        this.cluster.keepLogs();
        throw new Error(`load stuck at ${this.load.ackedCount()} of ${this.total} acked`);
      }
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
    this.load.close(); // open-ended load ends here; a planned one publishes the rest of its plan
    await Promise.race([this.load.finished(), sleep(settleMs)]);
    // From the load's end: on a loaded machine (CI runs suites side by side) a planned load can
    // still be publishing long after the faults, and its tail needs the same time to drain.
    const deadline = Date.now() + settleMs;
    let ranOut = '';
    const lastTimer = Math.max(0, ...this.load.timers.map((t) => t.until));
    let waited = '';
    let outbox = -1;
    let owners = await this.cluster.ownership();
    const settleFrom = Date.now();
    for (;;) {
      // Cron keeps firing: once every task has fired after the settle began (it survived the
      // faults), the tasks are cancelled, so that the stream and the outbox can drain for good.
      const cron = await this.cronSettled(settleFrom);
      const unacked = await this.cluster.unacked().catch(() => -1);
      owners = await this.cluster.ownership();
      const single = !owners.known || (owners.overlaps.length === 0 && owners.unowned.length === 0);
      const timersDue = Date.now() > lastTimer + 500 && (await this.timersFired());
      outbox = await this.outboxRows();
      const events = await this.eventsDelivered();
      // Checked before the inbox is read again: a late re-route publishes its copies first, acks after.
      const unrouted = await this.cluster.eventsUnrouted().catch(() => -1);
      const inbox = unrouted === 0 ? await this.cluster.unacked().catch(() => -1) : -1;
      if (unacked === 0 && inbox === 0 && unrouted === 0 && owners.ready && single && timersDue && outbox === 0 && events && cron) break;
      waited = `unacked=${unacked} ready=${owners.ready} owners=${JSON.stringify(owners.byNode)} timersFired=${timersDue} outbox=${outbox} eventsDelivered=${events} eventsUnrouted=${unrouted} cronSettled=${cron}`;
      if (Date.now() > deadline) { ranOut = waited; console.log(`[${title}] settle deadline passed (${waited})`); break; }
      await sleep(250);
    }
    const verified = await verify(this.cluster, this.load, this.faults, { traffic: this.traffic, cronLiveFrom: settleFrom });
    // Two nodes that both believe they own a partition after settling: both may process its sessions.
    const problems = [...verified.problems];
    // Said with the problems, so that a failure read from CI's summary says whether it settled.
    if (ranOut && problems.length > 0) problems.push(`the settle ran out of time after ${settleMs} ms: ${ranOut}`);
    if (owners.overlaps.length > 0) problems.push(`partitions claimed by more than one node after settling: ${owners.overlaps.join('; ')}`);
    if (owners.known && owners.unowned.length > 0) problems.push(`partitions owned by no node after settling: ${owners.unowned.join(', ')}`);
    // Every committed output (each message's reply) published: none stranded in the outbox.
    if (outbox !== 0) problems.push(outbox < 0 ? 'outbox table unreadable' : `${outbox} committed outputs never published (left in the outbox)`);
    const report: Report = { ...verified, problems, ok: problems.length === 0 };
    console.log(summarize(report, title));
    if (!report.ok) {
      // Read while the nodes still run: a node that owns partitions and does not consume them
      // shows its feeds' states here. The logs are kept (their directory is printed at destroy).
      console.log(`[${title}] nodes at the verdict:\n${await this.cluster.diagnose()}`);
      console.log(this.cluster.tails(40));
      this.cluster.keepLogs();
    }
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

  /**
   * True once every cron task has a firing due after `from` in its session's committed state and
   * the tasks are cancelled (they are cancelled then, once; a cancel that fails is tried again).
   */
  private async cronSettled(from: number): Promise<boolean> {
    if (this.traffic.cron.size === 0 || this.cronCancelled) return true;
    const db = await this.cluster.db();
    let latest: number;
    try {
      const r = await db.query<{ n: string | null }>(
        `SELECT min((SELECT max((f->>0)::bigint) FROM jsonb_array_elements(coalesce(snapshot->'context'->'userState'->'fires', '[]'::jsonb)) f))::text AS n
           FROM sessions WHERE id = ANY($1)`, [[...this.traffic.cron.keys()]]);
      latest = Number(r.rows[0]?.n ?? 0);
    } catch { return false; } finally { await db.end(); }
    if (!(latest > from)) return false;
    for (const node of this.cluster.nodes) {
      if (!node.child || node.child.exited() || node.paused) continue;
      try {
        for (const taskId of this.traffic.cron.values()) await node.child.ctl('cancelTask', taskId);
        this.cronCancelled = true;
        return false; // one more round: a firing that was under way when cancelled drains first
      } catch { /* that node is cut off: try another */ }
    }
    return false;
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

/**
 * Creates the mailboxes, the mailers (each with a partner on another partition: its mail crosses
 * partitions, so usually nodes) and the cron sessions with their tasks, through node 0.
 */
async function setUpTraffic(cluster: Cluster, o: ScenarioOptions): Promise<Traffic> {
  const ctl = cluster.nodes[0]!.child!;
  const nMailers = o.mailers ?? 0;
  const boxes = nMailers > 0 ? Array.from({ length: o.mailboxes ?? 3 }, (_, k) => `mb-${k}`) : [];
  for (const sid of boxes) await ctl.ctl('createAgent', sid, 'rec-mailbox');
  const mailTo = new Map<string, string>();
  for (let k = 0; k < nMailers; k++) {
    const sid = `mx-${k}`;
    const p = cluster.partitionOf(sid);
    const ordered = boxes.map((_, j) => boxes[(k + j) % boxes.length]!);
    const to = ordered.find((b) => cluster.partitionOf(b) !== p) ?? ordered[0]!;
    await ctl.ctl('createAgent', sid, k % 2 === 0 ? 'rec-mailer' : 'rec-mailer-merge', { seen: [], to });
    mailTo.set(sid, to);
  }
  const schedule = o.cronSchedule ?? CRON_EVERY_2S;
  const cron = new Map<string, string>();
  for (let k = 0; k < (o.cronSessions ?? 0); k++) {
    const sid = `cr-${k}`;
    await ctl.ctl('createAgent', sid, 'rec-mailbox');
    const taskId = `chaos-cron-${k}`;
    await ctl.ctl('scheduleTask', sid, { k }, schedule, { taskId });
    cron.set(sid, taskId);
  }
  return { mailTo, cron, cronPeriodMs: cronPeriodMs(schedule) };
}

/** The period in ms of an every-N-seconds schedule (the only kind the chaos load uses); 0 for any other. */
function cronPeriodMs(schedule: string): number {
  const m = /^\*\/(\d+) \* \* \* \* \*$/.exec(schedule);
  return m ? Number(m[1]) * 1000 : 0;
}

/** The failure message a scenario test asserts with: the problems, or nothing when all is well. */
export function problemsOf(r: Report): string[] { return r.problems; }
