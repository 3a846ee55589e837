/**
 * Owns the Prometheus metrics of one control plane (its own registry, so two control planes in
 * one process do not collide): session counts by state (read from the store every few seconds,
 * never per scrape), live and running actors, the session host's counters, inbox backlog per
 * partition (from JetStream consumer info), how long activations take (from the host's state
 * notices), how late timers fire (from the scheduler), readiness, the node's id and version, its
 * partitions and lease lag, its clock's offset from Postgres', and the API's own requests, errors
 * and connections. Labels are bounded sets (method names, states, partitions, this node's id and
 * version): never a session id.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { SessionStatus } from '../../persistence/types.js';
import { packageVersion } from '../cluster.js';
import type { Runtime } from '../runtime.js';
import type { HostStats } from '../host/sessionHost.js';
import { registerTenantMetrics } from './tenantMetrics.js';

const STATES: readonly SessionStatus[] = ['idle', 'active', 'sleeping', 'waiting', 'stopped'];

/** Why the server closed a WebSocket. */
export type DisconnectReason = 'slow_consumer' | 'heartbeat' | 'protocol' | 'shutdown';

/** The metrics the control plane updates, plus the registry to render. */
export interface ControlPlaneMetrics {
  readonly registry: Registry;
  /** Records one JSON-RPC request (`method` must already be a known name or `_unknown`/`_protocol`). */
  observeRpc(method: string, seconds: number, errorType: string | null): void;
  connectionOpened(): void;
  connectionClosed(reason: DisconnectReason | null): void;
  rateLimited(): void;
  /** Stops the periodic store and JetStream reads. */
  close(): void;
}

/** Creates the registry and starts refreshing the cached values every `refreshMs`. */
export function createMetrics(runtime: Runtime, refreshMs = 5000): ControlPlaneMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];

  let byStatus: Partial<Record<SessionStatus, number>> = {};
  let partitions: { partition: number; pending: number; ackPending: number }[] = [];
  /** Pending of consumers that had delivered nothing when asked: asked once per consumer. */
  const asked = new Map<number, { name: string; pending: number }>();
  const refreshTenants = registerTenantMetrics(runtime, registry);
  const refresh = async (): Promise<void> => {
    try { byStatus = await runtime.store.countSessionsByStatus(); } catch { /* keep the last counts; readiness reports the store */ }
    await refreshTenants();
    if (!runtime.transport.isConnected()) return;
    // Pending from each consumer's last delivery, unacked from the host: asking the server for
    // consumer info scans the inbox (~30 ms per partition over 100k messages; every 5 s for 64
    // partitions that kept nats-server 2.9's JetStream API busy in front of a backlog). Only a
    // consumer that has delivered nothing yet is asked, once.
    const unacked = runtime.host.unackedByPartition();
    const next: typeof partitions = [];
    for (let p = 0; p < runtime.config.partitions; p++) {
      const name = runtime.transport.consumerName(p); // consumers of partitions this node owns
      if (name === null) continue;
      let pending = runtime.transport.pendingAtLastDelivery(p);
      if (pending === null) {
        const known = asked.get(p);
        if (known?.name === name) pending = known.pending;
        else {
          try {
            pending = (await runtime.transport.jsm.consumers.info(runtime.transport.inboxStream, name)).num_pending;
            asked.set(p, { name, pending });
          } catch { continue; /* not created yet, or owned elsewhere and gone */ }
        }
      }
      next.push({ partition: p, pending, ackPending: unacked.get(p) ?? 0 });
    }
    partitions = next;
  };
  void refresh();
  const timer = setInterval(() => { void refresh(); }, refreshMs);
  timer.unref();

  new Gauge({
    name: 'agentry_sessions', help: 'Sessions by state (from the store, refreshed every few seconds)', labelNames: ['state'], registers,
    collect() { for (const s of STATES) this.set({ state: s }, byStatus[s] ?? 0); },
  });
  new Gauge({ name: 'agentry_sessions_live', help: 'Session actors in memory on this node (the rest are passivated)', registers, collect() { this.set(runtime.host.liveCount()); } });
  new Gauge({ name: 'agentry_sessions_running', help: 'Sessions whose handler is running now on this node', registers, collect() { this.set(runtime.host.activeCount()); } });
  new Gauge({
    name: 'agentry_inbox_pending', help: 'Inbox messages not yet delivered, per partition consumer', labelNames: ['partition'], registers,
    collect() { this.reset(); for (const p of partitions) this.set({ partition: String(p.partition) }, p.pending); },
  });
  new Gauge({
    name: 'agentry_inbox_ack_pending', help: 'Inbox messages delivered but not yet acked (in processing), per partition consumer', labelNames: ['partition'], registers,
    collect() { this.reset(); for (const p of partitions) this.set({ partition: String(p.partition) }, p.ackPending); },
  });
  new Gauge({
    name: 'agentry_ready', help: 'Readiness of this node (1 ready, 0 not), by check', labelNames: ['check'], registers,
    collect() {
      const r = runtime.readiness();
      this.set({ check: 'all' }, r.ok ? 1 : 0);
      for (const [k, v] of Object.entries(r.checks)) this.set({ check: k }, v ? 1 : 0);
    },
  });

  new Gauge({
    name: 'agentry_readiness_warnings', help: 'Known problems that do not make this node unready, by code (1 while present): NATS_SERVER_CLUSTER_FAULTS is a nats-server cluster before 2.10, known to lose acknowledged messages; alert on it',
    labelNames: ['code'], registers,
    collect() { this.reset(); for (const w of runtime.readiness().warnings ?? []) this.set({ code: w.code }, 1); },
  });
  new Gauge({
    name: 'agentry_node_info', help: 'Always 1: this node\'s id and the agentry-runtime version it runs (join on node to label other series, count by version during an upgrade)',
    labelNames: ['node', 'version'], registers,
    collect() { this.reset(); this.set({ node: runtime.config.nodeId, version: packageVersion() ?? 'unknown' }, 1); },
  });
  new Gauge({ name: 'agentry_partitions_owned', help: 'Partitions whose lease this node holds', registers, collect() { this.set(runtime.leases.owned().length); } });
  let lastRejections = 0;
  new Counter({
    name: 'agentry_unhandled_rejections_total', help: 'Promise rejections nothing handled (an agent handler that did not await or catch one), logged instead of ending the process',
    registers, collect() { const v = runtime.unhandledRejections(); if (v > lastRejections) { this.inc(v - lastRejections); lastRejections = v; } },
  });
  new Gauge({ name: 'agentry_node_id_twins', help: 'Other live processes seen running with this node\'s id (must be 0: give each process its own AGENTRY_NODE_ID)', registers, collect() { this.set(runtime.leases.twins().length); } });
  new Gauge({
    name: 'agentry_lease_renewal_age_seconds', help: 'Age of the oldest lease renewal on this node: near the lease TTL, partitions are suspended (a stalled node)', registers,
    collect() { this.set(runtime.leases.renewalAge() / 1000); },
  });
  // Skewed clocks (runtime/storeClock.ts): timers keep the store's time whatever this says, but
  // alert on it (its host's NTP is broken) and on a sync that stopped (a stale offset).
  new Gauge({
    name: 'agentry_clock_offset_seconds', help: "Postgres' clock minus this node's wall clock, as last measured (positive: this node's clock is behind); the runtime keeps time by the store's clock, a large value means this host's NTP is broken. 0 on PGlite; absent before a measurement",
    registers,
    collect() { this.reset(); const o = runtime.clockStatus().offsetMs; if (o !== null) this.set(o / 1000); },
  });
  new Gauge({
    name: 'agentry_clock_sync_age_seconds', help: "How long ago this node last read Postgres' clock (it syncs every AGENTRY_CLOCK_SYNC_MS; older means the store is away and the clock runs on from its last sync); absent without a sync (PGlite)",
    registers,
    collect() { this.reset(); const a = runtime.clockStatus().syncAgeMs; if (a !== null) this.set(a / 1000); },
  });
  let lastRestarts = 0;
  new Counter({
    name: 'agentry_consumer_restarts_total', help: 'Partition consumers re-created from their oldest unacked message because order may have broken (reconnect, lost delivery, dropped session)', registers,
    collect() { const v = runtime.transport.consumerRestarts(); if (v > lastRestarts) { this.inc(v - lastRestarts); lastRestarts = v; } },
  });

  const hostCounter = (name: string, help: string, key: keyof HostStats): void => {
    let last = 0;
    new Counter({
      name, help, registers,
      collect() {
        const v = runtime.host.stats[key];
        if (v > last) { this.inc(v - last); last = v; }
      },
    });
  };
  hostCounter('agentry_hydrations_total', 'Sessions loaded into memory from their snapshots', 'hydrations');
  hostCounter('agentry_passivations_total', 'Idle sessions evicted from memory', 'passivations');
  hostCounter('agentry_handler_runs_total', 'Handler runs started', 'runs');
  hostCounter('agentry_handler_retries_total', 'Handler runs that were retries', 'retries');
  hostCounter('agentry_turn_timeouts_total', 'Turns failed for running past their turnTimeoutMs (each counts as a failed attempt)', 'turnTimeouts');
  hostCounter('agentry_handler_abort_ignored_total', 'Aborted handler runs still running abortGraceMs after their abort signal (they ignore ctx.signal; their results are discarded)', 'abortIgnored');
  hostCounter('agentry_merges_total', 'Messages that arrived while a handler ran (cancel-and-merge or queued)', 'merges');
  hostCounter('agentry_dead_letters_total', 'Batches and messages dead-lettered', 'deadLetters');
  hostCounter('agentry_duplicates_skipped_total', 'Redelivered inbox messages skipped (already committed)', 'duplicatesSkipped');
  hostCounter('agentry_commits_total', 'Session commits', 'commits');
  new Counter({
    name: 'agentry_retention_deleted_total', help: 'History and transition rows removed by agent types\' retention', labelNames: ['table'], registers,
    collect() { const c = runtime.host.retentionCounts; this.reset(); this.inc({ table: 'history' }, c.history); this.inc({ table: 'transitions' }, c.transitions); },
  });
  new Counter({ name: 'agentry_migrations_total', help: 'Session snapshots migrated to a newer agent version on hydration', registers, collect() { this.reset(); this.inc(runtime.host.blocked.migrated); } });
  new Counter({ name: 'agentry_migration_failures_total', help: 'Hydrations refused because the snapshot cannot be migrated (MIGRATION_FAILED)', registers, collect() { this.reset(); this.inc(runtime.host.blocked.failures); } });
  new Gauge({ name: 'agentry_sessions_blocked', help: 'Sessions waiting for agent code that can take their snapshot (their messages are held unacked)', registers, collect() { this.set(runtime.host.blocked.size); } });
  new Counter({
    name: 'agentry_session_ttl_total', help: 'Sessions stopped or purged by their agent type\'s sessionTtl', labelNames: ['action'], registers,
    collect() { const c = runtime.host.ttlCounts; this.reset(); this.inc({ action: 'stopped' }, c.stopped); this.inc({ action: 'purged' }, c.purged); },
  });

  // Activation time: from entering `active` to leaving it (the handler run, with merges and retries).
  const activeSince = new Map<string, number>();
  const activation = new Histogram({
    name: 'agentry_activation_duration_seconds', help: 'Time a session spends in active per activation on this node: its handler run(s), with merges and retries',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300], registers,
  });
  const unlisten = runtime.host.listen({
    onState(sessionId, from, to, _event, at) {
      const was = from.startsWith('active');
      const is = to.startsWith('active');
      if (!was && is) {
        if (activeSince.size > 100_000) activeSince.clear(); // never grows without bound, whatever happens to sessions
        activeSince.set(sessionId, at);
      } else if (was && !is) {
        const since = activeSince.get(sessionId);
        activeSince.delete(sessionId);
        if (since !== undefined) activation.observe(Math.max(0, at - since) / 1000);
      }
    },
  });
  new Gauge({
    name: 'agentry_wake_lateness_seconds', help: 'How late timers (wakes, wait timeouts, cron firings) fired on this node, over the last 1,000: p50, p99, max',
    labelNames: ['quantile'], registers,
    collect() {
      const recent = runtime.wakeups.scheduler.lateness.slice(-1000).sort((a, b) => a - b);
      this.reset();
      if (recent.length === 0) return;
      const q = (p: number): number => recent[Math.min(recent.length - 1, Math.floor(p * recent.length))]! / 1000;
      this.set({ quantile: '0.5' }, q(0.5));
      this.set({ quantile: '0.99' }, q(0.99));
      this.set({ quantile: 'max' }, recent[recent.length - 1]! / 1000);
    },
  });

  const requests = new Counter({ name: 'agentry_rpc_requests_total', help: 'JSON-RPC requests by method and outcome', labelNames: ['method', 'outcome'], registers });
  const errors = new Counter({ name: 'agentry_rpc_errors_total', help: 'JSON-RPC errors by type', labelNames: ['type'], registers });
  const duration = new Histogram({
    name: 'agentry_rpc_request_duration_seconds', help: 'JSON-RPC request duration by method', labelNames: ['method'], registers,
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });
  const connections = new Gauge({ name: 'agentry_ws_connections', help: 'Open WebSocket connections', registers });
  const disconnects = new Counter({ name: 'agentry_ws_server_disconnects_total', help: 'WebSockets closed by the server, by reason', labelNames: ['reason'], registers });
  const limited = new Counter({ name: 'agentry_rpc_rate_limited_total', help: 'Requests refused by the per-connection rate limit', registers });

  return {
    registry,
    observeRpc(method, seconds, errorType) {
      requests.inc({ method, outcome: errorType === null ? 'ok' : 'error' });
      duration.observe({ method }, seconds);
      if (errorType !== null) errors.inc({ type: errorType });
    },
    connectionOpened() { connections.inc(); },
    connectionClosed(reason) {
      connections.dec();
      if (reason) disconnects.inc({ reason });
    },
    rateLimited() { limited.inc(); },
    close() {
      clearInterval(timer);
      unlisten();
    },
  };
}
