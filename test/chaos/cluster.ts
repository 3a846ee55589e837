// Owns a chaos test's whole system: one nats-server (the project's nats.conf, a free port, a temp
// store; restartable on the same port and store), a fresh Postgres schema on CI's server, and N
// runtime nodes, each a process of its own over the compiled build (test/fixtures/crash-runtime.mjs)
// that reaches NATS and Postgres only through its own two TCP proxies, so a fault can take one
// node's NATS or Postgres away (refused or blackholed) while the harness still reaches both.
//
// Faults it drives: SIGKILL and restart a node, SIGSTOP / SIGCONT it, SIGTERM it (timed) and
// restart it, restart nats-server, refuse or blackhole one node's NATS or Postgres, and delete
// a partition's consumer as an operator would.
// Every process it starts is registered with procs.ts and killed by destroy() (and on exit).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import pg from 'pg';
import { PG_URL, dropSchema, schemaName, startNats, tempDir } from '../helpers.js';
import { assertBuildIsFresh, startChild, tail, type ChildConfig, type ChildRuntime } from '../durability/childRuntime.js';
import { startTcpProxy, type ProxyMode, type TcpProxy } from '../durability/tcpProxy.js';
import { partitionOf } from '../../runtime/partition.js';
import { alive, track, untrack } from './procs.js';

export interface ClusterOptions {
  /** Names the schema, the control subjects and the log directory. */
  readonly tag: string;
  readonly nodes: number;
  /**
   * How many of the `nodes` slots start() starts (default: all). The others are ready to join
   * later with startNode(i): a node added to a running cluster.
   */
  readonly startNodes?: number;
  /** Default 8 (the server's mapping is written with the same count). */
  readonly partitions?: number;
  /** Lease lifetime of every node; default 3000 ms (short, so failover fits in a test). */
  readonly leaseTtlMs?: number;
  /** Default 3000 ms. */
  readonly shutdownGraceMs?: number;
  /** Default 2000 ms. */
  readonly ackWaitMs?: number;
  /** Node log level; default `warn` (CHAOS_LOG_LEVEL overrides). */
  readonly logLevel?: string;
  /** Further runtime configuration for every node. */
  readonly extra?: Record<string, unknown>;
  /** Keep the log directory after destroy() (CHAOS_KEEP_LOGS=1 too); it is printed. */
  readonly keepLogs?: boolean;
}

/** What a node's stats look like through the fixture's `ping`. */
export interface NodePing {
  readonly pid: number;
  readonly ready: { readonly ok: boolean; readonly checks: Record<string, boolean> };
  readonly stats: Record<string, number>;
  readonly live: number;
  readonly owned?: number[] | null;
  /** Each partition feed's state (runtime/partitionFeed.ts `FeedState`), when the runtime reports it. */
  readonly feeds?: readonly FeedStateView[] | null;
  /** How long ago the node's oldest held lease was last renewed (ms). */
  readonly renewalAgeMs?: number | null;
}

/** What a node says one partition feed is doing (the fields of runtime/partitionFeed.ts `FeedState`). */
export interface FeedStateView {
  readonly partition: number;
  readonly state: string;
  readonly step: string | null;
  readonly forMs: number;
  readonly quietMs: number | null;
  readonly consumer: string | null;
  readonly restarts: number;
}

/** One node's place in the cluster: its id and proxies survive its restarts. */
export interface NodeSlot {
  readonly index: number;
  readonly id: string;
  readonly natsProxy: TcpProxy;
  readonly pgProxy: TcpProxy;
  readonly commitLog: string;
  child: ChildRuntime | null;
  incarnation: number;
  paused: boolean;
  /** The current incarnation's log file. */
  logFile: string;
}

/** How a SIGTERM ended. */
export interface TermResult {
  readonly code: number | null;
  readonly ms: number;
  /** True when the deadline passed and the harness had to SIGKILL it. */
  readonly hung: boolean;
  readonly logTail: string;
}

export class Cluster {
  private constructor(
    readonly opts: Required<Pick<ClusterOptions, 'partitions' | 'leaseTtlMs' | 'shutdownGraceMs' | 'ackWaitMs'>> & ClusterOptions,
    readonly nats: Awaited<ReturnType<typeof startNats>>,
    /** The harness's own connection, straight to nats-server (never through a proxy). */
    readonly nc: NatsConnection,
    readonly schema: string,
    readonly dir: string,
    private readonly cleanupDir: () => void,
    readonly nodes: NodeSlot[],
  ) {}

  /** Starts NATS, the proxies and every node; resolves once all nodes answer and the partitions are held. */
  static async start(o: ClusterOptions): Promise<Cluster> {
    assertBuildIsFresh();
    const opts = { partitions: 8, leaseTtlMs: 3000, shutdownGraceMs: 3000, ackWaitMs: 2000, ...o };
    const logs = tempDir(`agentry-chaos-${o.tag}-`);
    const nats = await startNats(opts.partitions);
    track(nats.pid);
    const nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 200, name: 'chaos-harness' });
    const schema = schemaName(`chaos_${o.tag}`);
    const nodes: NodeSlot[] = [];
    const pgUrl = new URL(PG_URL);
    for (let i = 0; i < o.nodes; i++) {
      const id = `node-${i}`;
      mkdirSync(join(logs.dir, id), { recursive: true });
      nodes.push({
        index: i, id,
        natsProxy: await startTcpProxy(nats.port),
        pgProxy: await startTcpProxy(Number(pgUrl.port || 5432), pgUrl.hostname),
        commitLog: join(logs.dir, id, 'commits.jsonl'),
        child: null, incarnation: 0, paused: false, logFile: '',
      });
    }
    const cluster = new Cluster(opts, nats, nc, schema, logs.dir, logs.cleanup, nodes);
    try {
      // One at a time: the first creates the schema and streams, the others find them.
      for (const n of nodes.slice(0, o.startNodes ?? o.nodes)) await cluster.startNode(n.index);
      await cluster.waitPartitionsHeld(60_000, 1);
    } catch (e) {
      console.log(`[chaos] the cluster did not start: ${(e as Error).message}\n${await cluster.diagnose().catch(() => '')}\n${cluster.tails(40)}`);
      cluster.keepLogs();
      await cluster.destroy();
      throw e;
    }
    return cluster;
  }

  /** The partition of a session (as the server's mapping computes it). */
  partitionOf(sessionId: string): number { return partitionOf(sessionId, this.opts.partitions); }

  private childConfig(n: NodeSlot): ChildConfig {
    const pgUrl = new URL(PG_URL);
    pgUrl.hostname = '127.0.0.1';
    pgUrl.port = String(n.pgProxy.port);
    return {
      natsUrl: `nats://127.0.0.1:${n.natsProxy.port}`,
      partitions: this.opts.partitions,
      ctlSubject: `chaos.ctl.${this.schema}.${n.id}`,
      databaseUrl: pgUrl.toString(),
      schema: this.schema,
      defaultAgentType: 'rec-queue',
      logLevel: this.opts.logLevel ?? process.env.CHAOS_LOG_LEVEL ?? 'warn',
      commitLog: n.commitLog,
      exitWithParent: true,
      extra: {
        nodeId: n.id, leaseTtlMs: this.opts.leaseTtlMs, shutdownGraceMs: this.opts.shutdownGraceMs,
        ackWaitMs: this.opts.ackWaitMs, ...(this.opts.extra ?? {}),
      },
    };
  }

  /** Starts (or restarts) node i with its own id, proxies and commit log; a new log file per incarnation. */
  async startNode(i: number, timeoutMs = 45_000): Promise<ChildRuntime> {
    const n = this.nodes[i]!;
    if (n.child && !n.child.exited()) throw new Error(`${n.id} is already running`);
    n.incarnation++;
    n.logFile = join(this.dir, n.id, `run-${n.incarnation}.log`);
    n.paused = false;
    n.child = await startChild(this.nc, this.childConfig(n), n.logFile, timeoutMs, (pid) => { track(pid); });
    return n.child;
  }

  /** SIGKILL; resolves once the process is gone. */
  async killNode(i: number): Promise<void> {
    const n = this.nodes[i]!;
    if (!n.child) return;
    if (n.paused) { process.kill(n.child.pid, 'SIGCONT'); n.paused = false; }
    await n.child.kill();
    untrack(n.child.pid);
  }

  /** SIGSTOP: the process keeps its sockets and locks but runs nothing. */
  pauseNode(i: number): void {
    const n = this.nodes[i]!;
    if (!n.child || n.child.exited()) throw new Error(`${n.id} is not running`);
    process.kill(n.child.pid, 'SIGSTOP');
    n.paused = true;
  }

  /**
   * SIGSTOPs node i at a moment when one of its Postgres sessions has a transaction open (found
   * through its proxy's upstream ports in pg_stat_activity), so the pause holds a transaction and
   * its row locks — the case where a fencing check made at UPDATE time is not enough. A stop that
   * missed (the transaction had ended) is undone at once (a few ms) and tried again, up to
   * `withinMs`; after that it pauses anyway. Says whether the pause holds an open transaction.
   */
  async pauseInTransaction(i: number, withinMs = 10_000): Promise<{ caught: boolean; attempts: number }> {
    const n = this.nodes[i]!;
    const db = await this.db();
    const openXacts = async (): Promise<number> => {
      const ports = n.pgProxy.upstreamPorts();
      if (ports.length === 0) return 0;
      const r = await db.query<{ n: string }>(
        `SELECT count(*)::text AS n FROM pg_stat_activity WHERE client_port = ANY($1) AND xact_start IS NOT NULL AND state IN ('active', 'idle in transaction')`, [ports]);
      return Number(r.rows[0]?.n ?? 0);
    };
    const deadline = Date.now() + withinMs;
    let attempts = 0;
    try {
      while (Date.now() < deadline) {
        if ((await openXacts()) === 0) continue;
        attempts++;
        this.pauseNode(i);
        await new Promise((r) => setTimeout(r, 30)); // an active statement finishes; COMMIT would end it
        if ((await openXacts()) > 0) return { caught: true, attempts };
        this.resumeNode(i);
      }
      this.pauseNode(i);
      return { caught: false, attempts };
    } finally {
      await db.end();
    }
  }

  /** SIGCONT after pauseNode. */
  resumeNode(i: number): void {
    const n = this.nodes[i]!;
    if (!n.child || n.child.exited()) return;
    process.kill(n.child.pid, 'SIGCONT');
    n.paused = false;
  }

  /**
   * SIGTERM (graceful stop) and time it. Past `deadlineMs` the node is SIGKILLed and the result
   * says it hung; either way the process is gone when this resolves.
   */
  async termNode(i: number, deadlineMs: number): Promise<TermResult> {
    const n = this.nodes[i]!;
    if (!n.child) throw new Error(`${n.id} is not running`);
    const child = n.child;
    const t0 = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const hungP = new Promise<'hung'>((r) => { timer = setTimeout(() => { r('hung'); }, deadlineMs); });
    const outcome = await Promise.race([child.stop(), hungP]);
    clearTimeout(timer);
    const ms = Math.round(performance.now() - t0);
    if (outcome === 'hung') {
      await child.kill();
      untrack(child.pid);
      return { code: null, ms, hung: true, logTail: compactLog(tail(n.logFile, 15)) };
    }
    untrack(child.pid);
    return { code: outcome, ms, hung: false, logTail: compactLog(tail(n.logFile, 15)) };
  }

  /** Sets node i's NATS proxy mode (`heal` for a blackhole that resumes held connections). */
  natsMode(i: number, mode: ProxyMode, heal = false): void { this.setMode(this.nodes[i]!.natsProxy, mode, heal); }

  /** Sets node i's Postgres proxy mode. */
  pgMode(i: number, mode: ProxyMode, heal = false): void { this.setMode(this.nodes[i]!.pgProxy, mode, heal); }

  private setMode(p: TcpProxy, mode: ProxyMode, heal: boolean): void {
    if (mode === 'blackhole') p.blackhole({ heal });
    else p.setMode(mode);
  }

  /**
   * Restarts nats-server on the same port and store: SIGTERM, `downMs` with no server at all,
   * then start. The proxies connect to the new process by themselves.
   */
  async restartNats(downMs = 0): Promise<void> {
    untrack(this.nats.pid);
    await this.nats.stop();
    if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
    await this.nats.restart();
    track(this.nats.pid);
  }

  /**
   * As an operator would (`nats consumer rm`): deletes the inbox consumer of one partition node i
   * owns (the `pick`-th, modulo how many it owns). Returns the consumer's name, or null when the
   * node owns none (or did not answer).
   */
  /** Deletes the partition lease bucket's stream (`nats kv rm AGENTRY_LEASES`): the nodes must re-create it and take their partitions again. */
  async deleteLeaseBucket(): Promise<void> {
    const jsm = await jetstreamManager(this.nc);
    await jsm.streams.delete('KV_AGENTRY_LEASES');
  }

  async deleteConsumerOf(i: number, pick = 0): Promise<string | null> {
    const owned = (await this.ping(i))?.owned ?? [];
    if (owned.length === 0) return null;
    const p = owned[pick % owned.length]!;
    const jsm = await jetstreamManager(this.nc);
    for await (const ci of jsm.consumers.list('AGENTRY_INBOX')) {
      if (ci?.config?.filter_subject !== `agentry.part.${p}.>`) continue;
      await jsm.consumers.delete('AGENTRY_INBOX', ci.name);
      return ci.name;
    }
    return null;
  }

  /** Asks node i for its stats; null when it does not answer within `timeoutMs`. */
  async ping(i: number, timeoutMs = 3000): Promise<NodePing | null> {
    const n = this.nodes[i]!;
    if (!n.child || n.child.exited() || n.paused) return null;
    try {
      const m = await this.nc.request(`chaos.ctl.${this.schema}.${n.id}`, JSON.stringify({ op: 'ping' }), { timeout: timeoutMs });
      const r = m.json<{ ok: boolean; result?: NodePing }>();
      return r.ok && r.result?.pid === n.child.pid ? r.result : null;
    } catch { return null; }
  }

  /** True when every node that should run (started, not killed or stopped) answers and reports ready. */
  async healthy(): Promise<boolean> {
    const up = this.nodes.filter((n) => n.child !== null && !n.child.exited());
    const pings = await Promise.all(up.map((n) => this.ping(n.index)));
    return up.length > 0 && pings.every((p) => p?.ready.ok === true);
  }

  /**
   * Which partitions each running node says it owns, and what is wrong with that: partitions
   * claimed by two nodes at once, and partitions nobody claims. `known` is false when a node did
   * not answer or does not report its leases.
   */
  async ownership(): Promise<{ known: boolean; ready: boolean; byNode: Record<string, number[] | null>; overlaps: string[]; unowned: number[] }> {
    const up = this.nodes.filter((n) => n.child !== null && !n.child.exited());
    const pings = await Promise.all(up.map((n) => this.ping(n.index)));
    const byNode: Record<string, number[] | null> = {};
    const claims = new Map<number, string[]>();
    up.forEach((n, k) => {
      const owned = pings[k]?.owned ?? null;
      byNode[n.id] = owned;
      for (const p of owned ?? []) claims.set(p, [...(claims.get(p) ?? []), n.id]);
    });
    const known = pings.every((p) => Array.isArray(p?.owned));
    const overlaps = [...claims].filter(([, ns]) => ns.length > 1).map(([p, ns]) => `partition ${p}: ${ns.join(', ')}`);
    const unowned = Array.from({ length: this.opts.partitions }, (_, p) => p).filter((p) => !claims.has(p));
    return { known, ready: up.length > 0 && pings.every((p) => p?.ready.ok === true), byNode, overlaps, unowned };
  }

  /**
   * Waits until every running node is ready and every partition is held by exactly one of them,
   * and (with `minEach`) each running node holds at least that many: the partitions were spread.
   */
  async waitPartitionsHeld(timeoutMs: number, minEach = 0): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const o = await this.ownership();
      const spread = Object.values(o.byNode).every((ps) => (ps?.length ?? 0) >= minEach);
      // A runtime that does not report its leases is taken at its readiness.
      if (o.ready && (!o.known || (o.overlaps.length === 0 && o.unowned.length === 0 && spread))) return;
      if (Date.now() > deadline) throw new Error(`partitions not all held by exactly one node within ${timeoutMs} ms: ${JSON.stringify(o)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Messages in the inbox stream (a work queue: published and not yet acked). */
  async unacked(): Promise<number> {
    const jsm = await jetstreamManager(this.nc);
    return (await jsm.streams.info('AGENTRY_INBOX')).state.messages;
  }

  /**
   * Events the router has yet to route or to ack (pending plus ack-pending over the events
   * stream's consumers). A route abandoned under load (its hold ran out) is routed again, and its
   * copies land in the inbox (to be skipped by sessions that remember them): until this is 0 the
   * inbox can still fill after it drained.
   */
  async eventsUnrouted(): Promise<number> {
    const jsm = await jetstreamManager(this.nc);
    let n = 0;
    for await (const c of jsm.consumers.list('AGENTRY_EVENTS')) n += c.num_pending + c.num_ack_pending;
    return n;
  }

  /** The sequences still in the inbox stream (published, never acked), from its state and deleted list. */
  async unackedSeqs(): Promise<Set<number>> {
    const jsm = await jetstreamManager(this.nc);
    const st = (await jsm.streams.info('AGENTRY_INBOX', { deleted_details: true })).state;
    const out = new Set<number>();
    if (st.messages === 0) return out;
    const deleted = new Set(st.deleted ?? []);
    for (let q = st.first_seq; q <= st.last_seq; q++) if (!deleted.has(q)) out.add(q);
    return out;
  }

  /**
   * What the first `max` of `seqs` are, read at once (a report read later finds them acked):
   * `seq subject kind msgId [event or delivery id]`, or `seq gone`.
   */
  async describeInbox(seqs: Iterable<number>, max = 8): Promise<string[]> {
    const jsm = await jetstreamManager(this.nc);
    const out: string[] = [];
    for (const seq of seqs) {
      if (out.length >= max) break;
      try {
        const m = await jsm.streams.getMessage('AGENTRY_INBOX', { seq });
        if (!m) { out.push(`${seq} gone`); continue; }
        const h = (k: string): string => m.header?.get(k) ?? '';
        const id = h('Agentry-Event-Id') || h('Agentry-Delivery-Id');
        out.push(`${seq} ${m.subject} kind=${h('Agentry-Kind') || '-'} msgId=${h('Nats-Msg-Id') || '-'}${id ? ` id=${id}` : ''} age=${Date.now() - m.time.getTime()}ms`);
      } catch (err) { out.push(`${seq} unreadable (${(err as Error).message})`); }
    }
    return out;
  }

  /** A direct Postgres client on this cluster's schema (the caller ends it). */
  async db(): Promise<pg.Client> {
    const c = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${this.schema}` });
    await c.connect();
    return c;
  }

  /** Where node logs and commit logs are. */
  logsOf(i: number): { log: string; commits: string } {
    const n = this.nodes[i]!;
    return { log: n.logFile, commits: n.commitLog };
  }

  /**
   * Each running node's view of itself, one line per node: ready or not, the partitions it owns,
   * and what each partition feed is doing (state, step, for how long, how long its consumer has
   * been quiet). Printed when a check fails: a partition owned and not consuming shows here.
   */
  async diagnose(): Promise<string> {
    const lines: string[] = [];
    for (const n of this.nodes) {
      if (!n.child || n.child.exited()) { lines.push(`${n.id}: not running`); continue; }
      if (n.paused) { lines.push(`${n.id}: paused (SIGSTOP)`); continue; }
      const p = await this.ping(n.index);
      if (!p) { lines.push(`${n.id}: no answer to ping`); continue; }
      const feeds = (p.feeds ?? []).map((f) => `p${f.partition} ${f.state}${f.step ? ` (${f.step})` : ''} ${Math.round(f.forMs / 1000)}s` +
        `${f.quietMs === null ? '' : ` quiet ${Math.round(f.quietMs / 1000)}s`} restarts ${f.restarts}`);
      const notReady = Object.entries(p.ready.checks).filter(([, ok]) => !ok).map(([k]) => k);
      lines.push(`${n.id}: ${p.ready.ok ? 'ready' : `NOT ready (${notReady.join(', ')})`}, owns ${JSON.stringify(p.owned ?? null)} (oldest renewal ${p.renewalAgeMs ?? '?'} ms ago); feeds: ${p.feeds ? feeds.join('; ') || 'none' : 'not reported'}`);
    }
    return lines.join('\n');
  }

  /** Keeps the log directory after destroy() whatever CHAOS_KEEP_LOGS says (a check failed: the logs are the evidence). */
  keepLogs(): void { this.keep = true; }
  private keep = false;

  /** The last lines of every node's current log, for a failure message (pino lines shortened to time, message, session, error). */
  tails(lines = 20): string {
    return this.nodes.map((n) => `--- ${n.id} (${n.logFile}) ---\n${compactLog(tail(n.logFile, lines))}`).join('\n');
  }

  /** Kills every node and nats-server, closes proxies and connections, drops the schema, removes the logs (unless kept). */
  async destroy(): Promise<void> {
    for (const n of this.nodes) {
      if (n.child && !n.child.exited()) {
        if (n.paused) { try { process.kill(n.child.pid, 'SIGCONT'); } catch { /* gone */ } }
        await Promise.race([n.child.kill(), new Promise((r) => setTimeout(r, 5000))]);
      }
      if (n.child && !alive(n.child.pid)) untrack(n.child.pid);
    }
    for (const n of this.nodes) { await n.natsProxy.close(); await n.pgProxy.close(); }
    await this.nc.close().catch(() => undefined);
    const natsPid = this.nats.pid;
    await this.nats.kill().catch(() => undefined);
    untrack(natsPid);
    await this.nats.cleanup().catch(() => undefined);
    await dropSchema(this.schema).catch(() => undefined);
    if (this.keep || this.opts.keepLogs === true || process.env.CHAOS_KEEP_LOGS === '1') console.log(`[chaos] logs kept in ${this.dir}`);
    else this.cleanupDir();
  }
}

/** Shortens pino JSON lines to `time level msg {fields} err.message`; other lines pass unchanged. */
export function compactLog(text: string): string {
  return text.split('\n').map((line) => {
    if (!line.startsWith('{')) return line;
    try {
      const o = JSON.parse(line) as Record<string, unknown>;
      const { time, level, msg, err, ...rest } = o;
      for (const k of ['node', 'pid', 'hostname']) Reflect.deleteProperty(rest, k);
      const e = err as { message?: string; code?: string } | undefined;
      const fields = Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : '';
      return `${String(time).slice(11, 23)} ${String(level)} ${String(msg)}${fields}${e ? ` — ${e.code ? `${e.code}: ` : ''}${e.message ?? ''}` : ''}`;
    } catch { return line; }
  }).join('\n');
}
