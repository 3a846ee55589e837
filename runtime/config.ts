/**
 * Owns the runtime configuration: defaults, environment variables and explicit overrides,
 * validated once into a frozen object. A bad value fails start-up with an error naming the key.
 */
import { hostname } from 'node:os';
import { z } from 'zod';
import { AgentryError } from '../actors/errors.js';

const schema = z.object({
  /** NATS server URL; unset: `npm start` runs its own nats-server. */
  natsUrl: z.string().min(1).optional(),
  /** Postgres connection string; unset: PGlite under `dataDir`. */
  databaseUrl: z.string().min(1).optional(),
  /** `auto` (Postgres or PGlite) or `memory` (nothing durable: demos only). */
  store: z.enum(['auto', 'memory']).default('auto'),
  /** Local data (PGlite, the dev nats-server's store). */
  dataDir: z.string().min(1).default('.agentry'),
  /** Postgres schema to use (created if missing); tests give each run its own. */
  databaseSchema: z.string().regex(/^[a-z_][a-z0-9_]*$/).optional(),
  /** Must equal the partition count in nats.conf's mappings. */
  partitions: z.number().int().min(1).max(1024).default(64),
  /**
   * Copies JetStream keeps of the inbox, the event history and the partition lease bucket
   * (`num_replicas`; their consumers inherit it). 1 on a single nats-server; 3 on a 3-server
   * cluster, so that losing one server loses nothing acknowledged and stops nothing for more
   * than a leader election. More than 1 needs a clustered nats-server: the start is refused
   * otherwise (a single server would accept the setting and keep one copy). Changed on
   * existing streams at the next start: JetStream scales them (AGENTRY_NATS_REPLICAS, 2026-11-29).
   */
  natsReplicas: z.number().int().min(1).max(5).default(1),
  /** Prefix of every stream and consumer name (lets several runtimes share one server in tests). */
  streamPrefix: z.string().regex(/^[A-Z0-9_]+$/).default('AGENTRY'),
  /** How long JetStream waits for an ack before redelivering; held messages are kept alive with `working()`. */
  ackWaitMs: z.number().int().min(1000).default(30_000),
  /**
   * How long the inbox and event streams drop a resend with the same `Nats-Msg-Id` (JetStream
   * `duplicate_window`). Re-sent outbox rows and re-routed event copies are de-duplicated only
   * inside it, so it must outlast a redelivery (at least twice `ackWaitMs`); the event router
   * and the outbox stop publishing what another node may have taken over before it runs out.
   * Shorter only in tests (AGENTRY_DUPLICATE_WINDOW_MS).
   */
  duplicateWindowMs: z.number().int().min(1000).default(120_000),
  /** Messages each partition consumer buffers. */
  consumerBuffer: z.number().int().min(1).optional(),
  /**
   * Unacked messages a partition consumer may hold at once (JetStream `max_ack_pending`). It
   * bounds what a node pulls: a backlog stays in the stream, not in the heap, and the heap
   * holds at most partitions owned × this many messages.
   */
  maxAckPendingPerPartition: z.number().int().min(1).default(512),
  /** Live actors above this are passivated, least recently used first. */
  maxLiveSessions: z.number().int().min(1).default(10_000),
  /** At most this many handlers run at once; further activations (messages, due wakes) queue by priority, then time. */
  maxActiveSessions: z.number().int().min(1).default(1000),
  /** Timers due within this window are held in memory; the rest stay in Postgres until it comes closer. */
  timerHorizonMs: z.number().int().min(1000).default(60_000),
  /**
   * How often a node reads Postgres' clock (runtime/storeClock.ts): with a `pg` store, timers are
   * due by the store's clock, not by each node's wall clock. PGlite needs no sync.
   */
  clockSyncEveryMs: z.number().int().min(1000).default(30_000),
  /** A node whose wall clock is off the store's by more than this (either way) logs a warn. */
  clockSkewWarnMs: z.number().int().min(0).default(1000),
  /** A cron firing missed while the runtime was down: run it once at start, or skip to the next instant. */
  cronCatchUp: z.enum(['run-once', 'skip']).default('run-once'),
  /** Partition leases expire this long after their node stops renewing them (failover time). */
  leaseTtlMs: z.number().int().min(1000).default(6_000),
  /** How long a session command routed to another node may take. */
  ctlTimeoutMs: z.number().int().min(100).default(10_000),
  /** A session idle this long is passivated. */
  idleTimeoutMs: z.number().int().min(0).default(60_000),
  /** Agent type given to a session that receives a message before anyone created it; unset: dead-letter. */
  defaultAgentType: z.string().min(1).optional(),
  /** Most session commits grouped into one transaction. */
  groupCommitMaxBatch: z.number().int().min(1).default(500),
  /**
   * Extra wait for company before a transaction starts while another is in flight (0: none).
   * Without it, the records of one event-loop turn go together into a free slot, and records
   * that find every slot busy go together when one frees (runtime/groupCommit.ts). It was 2 ms
   * until 2026-11-28: that wait, plus its timer's lateness, sat on every commit at 1,000 msg/s.
   */
  groupCommitLingerMs: z.number().min(0).default(0),
  /**
   * Publish a core NATS notice on `agentry.state.<id>` for every state change (SSE streams and
   * `subscribe` on other nodes listen to them). Off saves two publishes per message; the
   * timeline in Postgres and the in-process listeners are unaffected.
   */
  stateNotices: z.boolean().default(true),
  /**
   * Keep a copy of the user state with each transition that changed it, so the inspector's time
   * travel shows the state of every past step. It writes a session's user state about twice per
   * turn instead of once: off for agents with large states, where past steps then show their
   * state name, context and event but not their user state (AGENTRY_TIMELINE_USER_STATE).
   */
  timelineUserState: z.boolean().default(true),
  /** Group-commit transactions in flight at once (each takes a pool connection). */
  groupCommitConcurrency: z.number().int().min(1).max(16).default(3),
  /**
   * Longest a turn (one handler call) may run before it is aborted and counted as a failed
   * attempt, for agent types without their own `turnTimeoutMs`; 0: no limit
   * (AGENTRY_TURN_TIMEOUT_MS). A handler awaiting something that never answers (an LLM call
   * without a timeout, a lost socket) otherwise holds its session, and its messages, forever.
   */
  turnTimeoutMs: z.number().int().min(0).default(15 * 60_000),
  /** On SIGTERM, running handlers get this long to finish before they are aborted. */
  shutdownGraceMs: z.number().int().min(0).default(10_000),
  /**
   * An aborted handler (superseded, rolled back, interrupted) still running this long after its
   * signal fired is counted (metric agentry_handler_abort_ignored_total) and logged; its result
   * is discarded whenever it comes (AGENTRY_ABORT_GRACE_MS).
   */
  abortGraceMs: z.number().int().min(0).default(5_000),
  /** A budget `ask` waits this long for a person's answer; then the session pauses (AGENTRY_BUDGET_ASK_TIMEOUT_MS). */
  budgetAskTimeoutMs: z.number().int().min(1).default(24 * 3_600_000),
  /**
   * A session a budget `pause` holds checks its limits again this often (a `day` limit: at the next
   * window at the latest), so a limit raised where the resume did not reach it — another node's
   * limit cache not refreshed yet, a pause committed after the `setBudget` — still lets it go on
   * (AGENTRY_BUDGET_RECHECK_MS).
   */
  budgetRecheckMs: z.number().int().min(100).default(15 * 60_000),
  /**
   * Closed budget ledger rows older than this (never less than the longest rolling window in use
   * plus a day) are folded into one lifetime row per session, so the ledger stops growing with
   * every turn; 0 keeps every row (AGENTRY_BUDGET_LEDGER_KEEP_MS).
   */
  budgetLedgerKeepMs: z.number().int().min(0).default(8 * 86_400_000),
  /** Most sessions of one tenant running handlers at once on this node (0: no bound but maxActiveSessions). */
  maxActivePerTenant: z.number().int().min(0).default(0),
  /**
   * Messages per second one tenant may send through the HTTP and JSON-RPC ingress (0: unlimited);
   * bursts of `tenantBurst`. Over it: HTTP 429 with Retry-After, JSON-RPC RATE_LIMITED.
   */
  tenantRatePerSec: z.number().min(0).default(0),
  tenantBurst: z.number().int().min(1).default(100),
  /**
   * The `tenant` label of metrics: `off` (no per-tenant series), `all`, or `top-<N>` (the N
   * tenants that spent most over the last day; the rest are `other`). Bounds their cardinality.
   */
  metricsTenants: z.string().regex(/^(off|all|top-\d{1,4})$/, 'must be off, all or top-<N>').default('top-20'),
  /** How often the history/transitions retention of agent types that set one runs (0: never). */
  retentionEveryMs: z.number().int().min(0).default(60_000),
  /** Default `sessionTtl.idleMs` for agent types without their own: sessions idle this long are stopped. Unset: off. */
  sessionTtlMs: z.number().int().min(1).optional(),
  /** With `sessionTtlMs`: also delete (purge) the stopped sessions. */
  sessionTtlPurge: z.boolean().default(false),
  /** How often the session-TTL job runs a round (0: never); each visits up to 500 sessions per agent type. */
  sessionTtlEveryMs: z.number().int().min(0).default(60_000),
  /** Payloads above this many bytes are dead-lettered (the server's max_payload caps them first). */
  maxPayloadBytes: z.number().int().min(1).default(1024 * 1024),
  /**
   * Most bytes the inbox stream (`<prefix>_INBOX`: messages not processed yet) may hold; 0: no
   * limit of its own. Full, it refuses new messages (producers get a retryable error) instead of
   * filling JetStream's storage: with the storage exhausted nats-server refuses every write,
   * partition lease renewals too, and a node that cannot renew stops consuming — the only thing
   * that would make room (2026-11-29). Keep it and `eventsMaxBytes` together well below the
   * server's `max_file_store` (10 GB in nats.conf) or the account's storage limit
   * (AGENTRY_INBOX_MAX_BYTES). Lowered on a stream that holds more than half of the new value,
   * it is applied only once the stream has drained (see runtime/streamKeeper.ts).
   */
  inboxMaxBytes: z.number().int().min(0).default(6 * 1024 ** 3),
  /**
   * Most bytes the events stream (`<prefix>_EVENTS`: the event history, 7 days) may hold; 0: no
   * limit of its own. Routed events are trimmed, oldest first, once it passes 80 % of this; an
   * event is refused (retryable) only when the events not routed yet fill it (AGENTRY_EVENTS_MAX_BYTES).
   */
  eventsMaxBytes: z.number().int().min(0).default(2 * 1024 ** 3),
  /**
   * Deepest JSON nesting accepted in a payload (a message body, mail, event data, a task, user
   * state); deeper input is refused at the door (HTTP 400 / JSON-RPC -32602 UNSTORABLE_INPUT) or
   * dead-lettered (`unstorable`) for NATS producers, long before Postgres (54001 at a few
   * thousand levels) or Node's own recursion (JSON.stringify) could overflow.
   */
  maxJsonDepth: z.number().int().min(1).max(1000).default(64),
  /**
   * A promise rejection nothing handles (an agent handler that did not await or catch one):
   * `log` (error line, metric; the node runs on) or `crash` (Node's default: the process ends,
   * for an application that owns that policy). See runtime/unhandledRejections.ts.
   */
  unhandledRejections: z.enum(['log', 'crash']).default('log'),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /**
   * This node's name in logs and leases. Keep it stable across restarts (the default is the host
   * name): a restarted node reclaims its own partition leases at once instead of waiting for them
   * to expire. Two nodes on one host need different ids.
   */
  nodeId: z.string().min(1).default(hostname()),
  /** HTTP control plane. */
  host: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(0).max(65535).default(7070),
  /** Bearer token for /rpc, /metrics and the UI; required when `host` is not loopback. */
  token: z.string().min(16, 'must be at least 16 characters').optional(),
  /** Browser origins allowed on /rpc (e.g. `https://ops.example.com`); default: the server's own origins. */
  allowedOrigins: z.array(z.url()).optional(),
  /** Per-connection JSON-RPC rate limit: sustained requests per second (token bucket refill). */
  rpcRatePerSec: z.number().positive().default(200),
  /** Per-connection JSON-RPC burst (token bucket size). */
  rpcBurst: z.number().int().min(1).default(400),
}).refine((c) => c.duplicateWindowMs >= 2 * c.ackWaitMs, {
  path: ['duplicateWindowMs'],
  message: 'must be at least twice ackWaitMs (AGENTRY_ACK_WAIT_MS): a redelivered copy must still meet its original inside the window',
});

export type RuntimeConfig = Readonly<z.infer<typeof schema>>;
export type RuntimeConfigInput = z.input<typeof schema>;

const ENV: Readonly<Record<string, { key: keyof RuntimeConfigInput; number?: boolean; list?: boolean; boolean?: boolean }>> = {
  NATS_URL: { key: 'natsUrl' },
  DATABASE_URL: { key: 'databaseUrl' },
  AGENTRY_STORE: { key: 'store' },
  AGENTRY_DATA_DIR: { key: 'dataDir' },
  AGENTRY_DB_SCHEMA: { key: 'databaseSchema' },
  AGENTRY_PARTITIONS: { key: 'partitions', number: true },
  AGENTRY_STREAM_PREFIX: { key: 'streamPrefix' },
  AGENTRY_NATS_REPLICAS: { key: 'natsReplicas', number: true },
  AGENTRY_ACK_WAIT_MS: { key: 'ackWaitMs', number: true },
  AGENTRY_DUPLICATE_WINDOW_MS: { key: 'duplicateWindowMs', number: true },
  AGENTRY_MAX_ACK_PENDING: { key: 'maxAckPendingPerPartition', number: true },
  AGENTRY_COMMIT_CONCURRENCY: { key: 'groupCommitConcurrency', number: true },
  AGENTRY_COMMIT_LINGER_MS: { key: 'groupCommitLingerMs', number: true },
  AGENTRY_STATE_NOTICES: { key: 'stateNotices', boolean: true },
  AGENTRY_TIMELINE_USER_STATE: { key: 'timelineUserState', boolean: true },
  AGENTRY_ABORT_GRACE_MS: { key: 'abortGraceMs', number: true },
  AGENTRY_BUDGET_ASK_TIMEOUT_MS: { key: 'budgetAskTimeoutMs', number: true },
  AGENTRY_BUDGET_RECHECK_MS: { key: 'budgetRecheckMs', number: true },
  AGENTRY_BUDGET_LEDGER_KEEP_MS: { key: 'budgetLedgerKeepMs', number: true },
  AGENTRY_MAX_ACTIVE_PER_TENANT: { key: 'maxActivePerTenant', number: true },
  AGENTRY_TENANT_RATE: { key: 'tenantRatePerSec', number: true },
  AGENTRY_TENANT_BURST: { key: 'tenantBurst', number: true },
  AGENTRY_METRICS_TENANTS: { key: 'metricsTenants' },
  AGENTRY_RETENTION_EVERY_MS: { key: 'retentionEveryMs', number: true },
  AGENTRY_SESSION_TTL_MS: { key: 'sessionTtlMs', number: true },
  AGENTRY_SESSION_TTL_PURGE: { key: 'sessionTtlPurge', boolean: true },
  AGENTRY_SESSION_TTL_EVERY_MS: { key: 'sessionTtlEveryMs', number: true },
  AGENTRY_MAX_LIVE_SESSIONS: { key: 'maxLiveSessions', number: true },
  AGENTRY_IDLE_TIMEOUT_MS: { key: 'idleTimeoutMs', number: true },
  AGENTRY_MAX_ACTIVE_SESSIONS: { key: 'maxActiveSessions', number: true },
  AGENTRY_LEASE_TTL_MS: { key: 'leaseTtlMs', number: true },
  AGENTRY_INBOX_MAX_BYTES: { key: 'inboxMaxBytes', number: true },
  AGENTRY_EVENTS_MAX_BYTES: { key: 'eventsMaxBytes', number: true },
  AGENTRY_TIMER_HORIZON_MS: { key: 'timerHorizonMs', number: true },
  AGENTRY_CRON_CATCH_UP: { key: 'cronCatchUp' },
  AGENTRY_CLOCK_SYNC_MS: { key: 'clockSyncEveryMs', number: true },
  AGENTRY_CLOCK_SKEW_WARN_MS: { key: 'clockSkewWarnMs', number: true },
  AGENTRY_UNHANDLED_REJECTIONS: { key: 'unhandledRejections' },
  AGENTRY_DEFAULT_AGENT: { key: 'defaultAgentType' },
  AGENTRY_SHUTDOWN_GRACE_MS: { key: 'shutdownGraceMs', number: true },
  AGENTRY_TURN_TIMEOUT_MS: { key: 'turnTimeoutMs', number: true },
  AGENTRY_MAX_JSON_DEPTH: { key: 'maxJsonDepth', number: true },
  AGENTRY_LOG_LEVEL: { key: 'logLevel' },
  AGENTRY_NODE_ID: { key: 'nodeId' },
  HOST: { key: 'host' },
  PORT: { key: 'port', number: true },
  AGENTRY_TOKEN: { key: 'token' },
  AGENTRY_ALLOWED_ORIGINS: { key: 'allowedOrigins', list: true },
  AGENTRY_RPC_RATE: { key: 'rpcRatePerSec', number: true },
  AGENTRY_RPC_BURST: { key: 'rpcBurst', number: true },
};

/**
 * Builds the configuration from defaults < environment < overrides. Throws an `AgentryError`
 * with code CONFIG_INVALID naming every bad key (with its environment variable where it has one).
 */
export function loadConfig(overrides: RuntimeConfigInput = {}, env: NodeJS.ProcessEnv = process.env): RuntimeConfig {
  const fromEnv: Record<string, unknown> = {};
  for (const [name, { key, number, list, boolean }] of Object.entries(ENV)) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    fromEnv[key] = number ? Number(raw) : list ? raw.split(',').map((x) => x.trim()).filter(Boolean)
      : boolean ? (/^(1|true|yes|on)$/i.test(raw) ? true : /^(0|false|no|off)$/i.test(raw) ? false : raw) : raw;
  }
  const merged = { ...fromEnv, ...Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)) };
  const parsed = schema.safeParse(merged);
  if (!parsed.success) {
    const envOf = (k: string) => Object.entries(ENV).find(([, v]) => v.key === k)?.[0];
    const problems = parsed.error.issues.map((i) => {
      const key = i.path.join('.');
      const envName = envOf(key);
      return `${key}${envName ? ` (${envName})` : ''}: ${i.message}`;
    });
    throw new AgentryError('CONFIG_INVALID', `invalid configuration: ${problems.join('; ')}`, { details: { problems } });
  }
  return Object.freeze(parsed.data);
}
