/**
 * Owns the runtime's use of NATS: the connection, the streams (`<prefix>_INBOX` over
 * `agentry.part.>`, `<prefix>_EVENTS` over `agentry.events.>`), one durable pull consumer per
 * partition, the start-up probe that proves nats.conf's partition mapping matches ours, and
 * publishing (outputs on core NATS; inbox mail and events through JetStream with a msg id).
 *
 * Replicas: the streams (and the lease bucket's) get `num_replicas` from config `natsReplicas`;
 * their consumers inherit it. On a 3-server cluster with 3 replicas, losing one server loses
 * nothing acknowledged (test/durability/natsClusterLoss.test.ts): publishes wait for a new
 * leader, and this node's connections move to another server (a reconnect, below).
 *
 * Streams deleted while the runtime runs (an operator, a clean-up script) are noticed and
 * re-created by the `StreamKeeper` (streamKeeper.ts): readiness fails meanwhile, and a publish
 * into a missing stream is refused with a retryable `NOT_READY`, never acknowledged.
 *
 * Ordering: each owned partition is a `PartitionFeed` (partitionFeed.ts), which re-creates its
 * consumer from the oldest unacked message whenever order may have broken. A NATS reconnect is
 * such a moment (deliveries in flight on the old connection are lost and would only come back
 * after the ack wait, behind newer ones), so every feed restarts on reconnect.
 *
 * Three connections: deliveries, acks and publishes (`nc`); leases and control (`controlNc`);
 * JetStream's management API (`jsm`: consumers and streams made, listed, deleted). A server runs
 * an API request in the reading loop of the connection that sent it, and on nats-server 2.9 a
 * consumer created or listed over a deep inbox takes seconds (it counts the consumer's pending
 * messages); on the data connection that stalled acks and pings for as long, the client took
 * the connection for dead and reconnected, and the reconnect restarted every feed, each with
 * more such requests: a node in front of a 300k backlog stopped consuming for good (bench
 * backlog, 2026-11-28). Feeds also open their consumers a few at a time (`OPENS_AT_ONCE`).
 */
import { connect, createInbox, headers as natsHeaders, nuid, type Msg, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import {
  DiscardPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager,
  type JetStreamClient, type JetStreamManager, type JsMsg,
} from '@nats-io/jetstream';
import { AgentryError } from '../actors/errors.js';
import type { Logger } from './logger.js';
import { natsConnectOptions } from './natsUrl.js';
import { ackCostGrowsWithBacklog, allowsDirectGet, natsServerWarnings, type NatsServerWarning } from './natsVersion.js';
import { partitionOf } from './partition.js';
import { settleWithin, within } from './deadline.js';
import { createLimiter } from './keyedSerial.js';
import { followConnection } from './connectionUp.js';
import { PartitionFeed, type FeedState } from './partitionFeed.js';
import { StreamKeeper, isNoStream, isStreamFull, isStreamNotFound, type KeptStreamConfig } from './streamKeeper.js';

export const INBOX_SUBJECT = (sessionId: string): string => `agentry.in.${sessionId}`;
export const OUT_SUBJECT = (sessionId: string): string => `agentry.out.${sessionId}`;
export const EVENT_SUBJECT = (type: string): string => `agentry.events.${type}`;
/** Core-NATS notices of state changes, for subscribers on any node (not durable: the store has the transitions). */
export const STATE_SUBJECT = (sessionId: string): string => `agentry.state.${sessionId}`;
export const DLQ_SUBJECT = (sessionId: string): string => `agentry.dlq.${sessionId}`;
/** Header names of the wire format (documented in docs/api.md). */
export const H = {
  kind: 'Agentry-Kind',
  priority: 'Agentry-Priority',
  from: 'Agentry-From',
  eventType: 'Agentry-Event-Type',
  /** On an event's copies: `<event seq>.<event's stream time, base 36>`, which a session remembers (see `rememberEvents`). */
  eventId: 'Agentry-Event-Id',
  /**
   * On mail, cron firings and waitpoint results (outbox rows to an inbox): `r<hash of the row id>.<row's
   * creation time, base 36>`, which the recipient remembers like an event id (see `rememberEvents`).
   */
  deliveryId: 'Agentry-Delivery-Id',
  run: 'Agentry-Run',
  /** The sender's tenant: sets the tenant of the session the message creates; any other tenant than the session's is dead-lettered. */
  tenant: 'Agentry-Tenant',
  msgId: 'Nats-Msg-Id',
} as const;

export interface TransportOptions {
  readonly url: string;
  readonly partitions: number;
  readonly streamPrefix: string;
  readonly ackWaitMs: number;
  /** The streams' `duplicate_window` (config `duplicateWindowMs`); default 2 minutes. */
  readonly duplicateWindowMs?: number;
  /** Unacked messages one partition consumer may hold (JetStream max_ack_pending); unset: no bound. */
  readonly maxAckPending?: number;
  readonly consumerBuffer: number;
  readonly maxPayloadBytes: number;
  /** The inbox stream's `max_bytes` (config `inboxMaxBytes`; 0 or unset: none of its own). */
  readonly inboxMaxBytes?: number;
  /** The events stream's `max_bytes` (config `eventsMaxBytes`; 0 or unset: none of its own). */
  readonly eventsMaxBytes?: number;
  /**
   * `num_replicas` of the inbox, events and lease-bucket streams (config `natsReplicas`; default 1).
   * Their consumers inherit it (nats-server: a consumer without its own replica count has its
   * stream's, and one on a work-queue stream must). More than 1 needs a clustered server.
   */
  readonly replicas?: number;
  readonly logger: Logger;
  readonly name: string;
  /**
   * The highest inbox sequence recorded in the store (every session's `last_seq`): an inbox
   * stream the runtime has to (re-)create starts past it. Unset: only what this node saw.
   */
  readonly recordedInboxSeq?: () => Promise<number>;
  /**
   * The partition lease bucket (a KV bucket: stream `KV_<name>`), kept like the streams: made
   * here before the leases bind to it, and re-created when it disappears, its revisions — the
   * partitions' fencing epochs — starting past `recordedEpoch()` (the highest epoch claimed in
   * the store). Made from 1 instead (a bucket deleted, a nats-server whose store was wiped),
   * every new lease's epoch would be older than the one Postgres holds, and refused: no node
   * could serve any partition until the revisions caught up, hours later.
   */
  readonly leaseBucket?: { readonly name: string; readonly ttlMs: number; readonly recordedEpoch: () => Promise<number> };
}

/** Called for every inbox message of an owned partition; must not throw. */
export type InboxHandler = (partition: number, msg: JsMsg) => void;

/** Lease hook of a partition feed: `confirm` renews the lease before a restart (false: lost, null: no answer). */
export interface FeedHooks {
  confirm(): Promise<boolean | null>;
}

/** A connected transport; `isConnected()` is false while the connection is down. */
export interface Transport {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly inboxStream: string;
  readonly eventStream: string;
  isConnected(): boolean;
  /**
   * Creates or updates streams; idempotent. From then on a stream deleted while the runtime runs
   * is re-created (streamKeeper.ts), past every sequence its deleted incarnation issued.
   */
  ensureStreams(): Promise<void>;
  /** False while one of the runtime's streams is missing (deleted, not re-created yet): readiness. */
  streamsReady(): boolean;
  /** Streams re-created since start because they had disappeared (metrics, tests). */
  streamsRecreated(): number;
  /** Proves the server maps `agentry.in.*` / `agentry.ctl.*` into our partition count. */
  probePartitions(): Promise<void>;
  /**
   * Creates partition p's consumer for this owner (epoch), removing any other, and starts
   * delivering from its oldest unacked message.
   */
  startPartition(p: number, epoch: number, onMessage: InboxHandler, hooks?: FeedHooks): Promise<void>;
  /**
   * Order of partition p may have broken (a session dropped unacked messages): deliver nothing
   * more from the current consumer, and re-deliver every unacked message from the oldest.
   */
  restartPartition(p: number, reason: string): void;
  /** Stops delivering partition p until `restartPartition` (its lease is suspended). */
  pausePartition(p: number): void;
  /** Durable consumer name partition p uses now (null when not consuming it). */
  consumerName(p: number): string | null;
  /** Partition p's messages not delivered yet, as its consumer's last delivery said (null: none yet, or not consuming it). */
  pendingAtLastDelivery(p: number): number | null;
  /** Partition consumers restarted because order may have broken, since start (metrics). */
  consumerRestarts(): number;
  /**
   * What is known to be wrong with the nats-server this node started on, for operators (readiness
   * details, metrics); empty when nothing is. Never makes the node unready: it works, at a risk.
   */
  serverWarnings(): readonly NatsServerWarning[];
  /** What each partition feed of this node is doing (diagnostics: a partition owned and not consuming shows here). */
  feedStates(): FeedState[];
  /**
   * A second connection for control traffic (leases): on the data connection a lease renewal
   * would queue behind thousands of inbox deliveries under load and arrive too late.
   */
  readonly controlNc: NatsConnection;
  /** Stops fetching partition p (when its lease moves to another node). */
  stopPartition(p: number): Promise<void>;
  /** Stops fetching on every partition (already-delivered messages stay unacked until acked). */
  stopConsuming(): Promise<void>;
  /** Publishes into a session's inbox through JetStream; resolves to the stream sequence. */
  publishInbox(sessionId: string, body: string | Uint8Array, hdrs: Record<string, string>, msgId?: string): Promise<number>;
  /**
   * `publishInbox` with JetStream's whole answer: `duplicate` is true when the stream dropped
   * the message because one with the same `msgId` was stored within its duplicate window
   * (`seq` is then the earlier message's).
   */
  publishInboxAck(sessionId: string, body: string | Uint8Array, hdrs: Record<string, string>, msgId?: string): Promise<{ seq: number; duplicate: boolean }>;
  /**
   * Publishes one body into many inboxes through JetStream (one message each, `Nats-Msg-Id`
   * `msgIds[i]`) and resolves once the stream acknowledged every one (a duplicate counts: it is
   * stored already). Rejects on the first refusal, or if not every acknowledgement came within
   * `timeoutMs`; messages stored before that stay stored (a retry with the same ids is
   * de-duplicated). Cheaper than `publishInbox` per message: one reply subscription and one timer
   * for the whole batch instead of a request, a timer and two pre-built errors per message.
   */
  publishInboxMany(sessionIds: readonly string[], msgIds: readonly string[], body: string | Uint8Array, hdrs: Record<string, string>, timeoutMs: number): Promise<void>;
  publishEvent(type: string, body: string, hdrs: Record<string, string>, msgId?: string): Promise<number>;
  /** As `publishEvent`, with whether the stream dropped it as a repeat of `msgId` (then `seq` is the original's). */
  publishEventAck(type: string, body: string, hdrs: Record<string, string>, msgId?: string): Promise<{ seq: number; duplicate: boolean }>;
  /** Fire-and-forget core publish (outputs, streamed chunks, dead-letter notices). */
  publishCore(subject: string, body: string, hdrs?: Record<string, string>): void;
  /**
   * Resolves once the server has everything published on the data connection before it (a
   * PING's PONG), within `timeoutMs`; rejects when the connection drops first. nats.js clears a
   * connection's outbound buffer at every reconnect attempt, so a core publish is known to have
   * reached the server only after this.
   */
  flushCore(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

/** Why a JetStream publish acknowledgement is a refusal (no stream: 503 status; a stream error), or null. */
function pubAckProblem(m: Msg): string | null {
  if (m.headers && m.headers.code >= 400) return `${m.headers.code} ${m.headers.description}`;
  if (m.data.length === 0) return 'empty acknowledgement';
  try {
    const ack = m.json<{ error?: { code?: number; description?: string }; seq?: number }>();
    if (ack.error) return `${ack.error.code ?? ''} ${ack.error.description ?? 'error'}`;
    return typeof ack.seq === 'number' ? null : 'acknowledgement without a sequence';
  } catch {
    return 'acknowledgement is not JSON';
  }
}

function toHeaders(h: Record<string, string>): MsgHdrs {
  const out = natsHeaders();
  for (const [k, v] of Object.entries(h)) out.set(k, v);
  return out;
}

/** Connects to NATS and returns the transport. Reconnects forever; status changes are logged once each. */
export async function createTransport(opts: TransportOptions): Promise<Transport> {
  const log = opts.logger;
  // Credentials in the URL (nats://user:pass@host) become connect options: nats.js does not read them itself.
  const nc = await connect({ ...natsConnectOptions(opts.url), name: opts.name, maxReconnectAttempts: -1, reconnectTimeWait: 500, pingInterval: 10_000 });
  const controlNc = await connect({ ...natsConnectOptions(opts.url), name: `${opts.name}-control`, maxReconnectAttempts: -1, reconnectTimeWait: 500, pingInterval: 10_000 });
  const adminNc = await connect({ ...natsConnectOptions(opts.url), name: `${opts.name}-admin`, maxReconnectAttempts: -1, reconnectTimeWait: 500, pingInterval: 10_000 });
  let connected = true;
  const feeds = new Map<number, PartitionFeed>();
  let restarts = 0;
  // Made once the JetStream manager is: a reconnect before that has no streams to look at yet.
  let keeper = null as StreamKeeper | null;
  const inboxStream = `${opts.streamPrefix}_INBOX`;
  const eventStream = `${opts.streamPrefix}_EVENTS`;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') { connected = false; log.warn({ server: natsConnectOptions(opts.url).servers.join(',') }, 'NATS connection lost; reconnecting'); }
      if (s.type === 'reconnect') {
        connected = true;
        log.info('NATS connection restored');
        // Deliveries in flight on the lost connection are gone: re-deliver in order.
        for (const f of feeds.values()) f.restart('NATS reconnected');
        // A server restarted with an empty store has no streams: find out now, not at the next check.
        keeper?.suspect(inboxStream);
        keeper?.suspect(eventStream);
      }
    }
  })();
  const jsm = await jetstreamManager(adminNc);
  const js = jetstream(nc);
  const opens = createLimiter(OPENS_AT_ONCE);
  // Whether the admin connection is up. nats.js (3.4) clears its outbound buffer at every
  // (re)connect attempt, so a request sent while a connection is down is never sent and waits out
  // its whole deadline. A reconnect of the data connection restarts every feed at once, and the
  // admin connection, reconnecting on its own, was often still down then: each feed's first API
  // request was lost, and 4 of them held the open slots for 15 s (FEED_API_TIMEOUT_MS) before
  // any feed opened (natsCut with a 6 s lease, 2026-11-29: recovery 17 s after the cut). An open
  // now waits for the admin connection first (at most FEED_API_TIMEOUT_MS, then it tries anyway).
  const adminUp = followConnection(adminNc);
  const admit = <T>(fn: () => Promise<T>): Promise<T> => opens(async () => {
    await adminUp.whenUp(FEED_API_TIMEOUT_MS);
    return fn();
  });
  // The feeds' own manager: a consumer create the server is still working on when the client
  // gives up is made anyway, then deleted and made again by the retry (more of the same work).
  const feedJsm = await jetstreamManager(adminNc, { timeout: FEED_API_TIMEOUT_MS, checkAPI: false });
  const serverVersion = nc.info?.version;
  if (ackCostGrowsWithBacklog(serverVersion)) {
    // Once per node: behind a backlog every ack costs this server a scan of the inbox (natsVersion.ts).
    log.warn({ serverVersion }, 'nats-server before 2.10: each ack costs the server more the deeper the inbox backlog (hundreds of µs per message with ~1,000 sessions queued; throughput only, nothing is lost); use 2.10 or later in production');
  }

  const duplicateWindowNs = (opts.duplicateWindowMs ?? 120_000) * 1_000_000;
  const replicas = opts.replicas ?? 1;
  const serverWarnings = natsServerWarnings(nc.info, replicas);
  // Once per node, at error level: a loss there is the server's, and the node cannot see it happen.
  for (const w of serverWarnings) log.error({ code: w.code, serverVersion: w.serverVersion, natsReplicas: replicas, cluster: nc.info?.cluster }, w.message);

  const leaseStream = opts.leaseBucket ? `KV_${opts.leaseBucket.name}` : null;
  const streams = new StreamKeeper({
    nc, jsm, logger: log,
    recordedSeq: (stream) => (stream === inboxStream && opts.recordedInboxSeq ? opts.recordedInboxSeq()
      : stream === leaseStream && opts.leaseBucket ? opts.leaseBucket.recordedEpoch() : Promise.resolve(0)),
  });
  keeper = streams;
  async function upsertStream(config: KeptStreamConfig): Promise<void> {
    try {
      await streams.ensure({ ...config, num_replicas: replicas });
    } catch (err) {
      throw replicasProblem(err, replicas, config.name) ?? err;
    }
  }
  /**
   * A JetStream publish `p` to `stream`: its sequence is noted (a re-created stream starts past
   * it); no stream to answer it is a retryable refusal, and makes the keeper look at the stream.
   */
  async function published<T extends { seq: number }>(stream: string, p: Promise<T>): Promise<T> {
    try {
      const ack = await p;
      streams.noteSeq(stream, ack.seq);
      return ack;
    } catch (err) {
      if (isStreamFull(err)) {
        streams.suspect(stream); // its size look logs how full it is
        throw new AgentryError('NOT_READY', `stream ${stream} is full (${(err as Error).message}): nothing was stored; publish again once the runtime has drained it`, { retryable: true, cause: err, details: { reason: 'stream-full', stream } });
      }
      if (!isNoStream(err) && !isStreamNotFound(err)) throw err;
      streams.suspect(stream, 'a publish found no stream');
      throw new AgentryError('NOT_READY', `stream ${stream} is not available (deleted? it is being re-created): publish again`, { retryable: true, cause: err });
    }
  }

  async function stopConsuming(): Promise<void> {
    const all = [...feeds.values()];
    feeds.clear();
    await Promise.all(all.map((f) => f.stop()));
  }

  const publishEventAck: Transport['publishEventAck'] = async (type, body, hdrs, msgId) => {
    const ack = await published(eventStream, js.publish(EVENT_SUBJECT(type), body, { headers: toHeaders(hdrs), ...(msgId ? { msgID: msgId } : {}) }));
    return { seq: ack.seq, duplicate: ack.duplicate };
  };
  const publishInboxAck: Transport['publishInboxAck'] = async (sessionId, body, hdrs, msgId) => {
    const ack = await published(inboxStream, js.publish(INBOX_SUBJECT(sessionId), body, { headers: toHeaders(hdrs), ...(msgId ? { msgID: msgId } : {}) }));
    return { seq: ack.seq, duplicate: ack.duplicate };
  };
  const inboxPrefix = natsConnectOptions(opts.url).inboxPrefix;
  const publishInboxMany: Transport['publishInboxMany'] = (sessionIds, msgIds, body, hdrs, timeoutMs) => {
    if (sessionIds.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const reply = createInbox(inboxPrefix);
      let left = sessionIds.length;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const settle = (err: Error | null): void => {
        if (timer === undefined) return;
        clearTimeout(timer);
        timer = undefined;
        sub.unsubscribe();
        if (err) reject(err); else resolve();
      };
      const sub = nc.subscribe(`${reply}.*`, {
        callback: (err: Error | null, m: Msg) => {
          if (err) { settle(err); return; } // e.g. a permissions violation on the reply subject
          const problem = pubAckProblem(m);
          if (problem) {
            // 503: no stream over the subject (deleted?): the keeper looks at it.
            if (m.headers?.code === 503) streams.suspect(inboxStream, 'a publish found no stream');
            settle(new AgentryError('NOT_READY', `inbox publish refused: ${problem}`, { retryable: true }));
            return;
          }
          if (--left === 0) settle(null);
        },
      });
      timer = setTimeout(() => { settle(new AgentryError('TIMEOUT', `inbox publish: ${left} of ${sessionIds.length} not acknowledged within ${timeoutMs} ms`, { retryable: true })); }, timeoutMs);
      try {
        // The headers are encoded at each publish: one object serves every message.
        const h = toHeaders(hdrs);
        const data = typeof body === 'string' ? new TextEncoder().encode(body) : body;
        for (let i = 0; i < sessionIds.length; i++) {
          h.set(H.msgId, msgIds[i]!);
          nc.publish(INBOX_SUBJECT(sessionIds[i]!), data, { headers: h, reply: `${reply}.${i}` });
        }
      } catch (err) {
        settle(err as Error);
      }
    });
  };
  // The feeds' safety net (partitionFeed.ts, `watchdog`), while the data connection is up: a
  // reconnect restarts every feed anyway, and a restart meanwhile would only retry.
  const watchdog = setInterval(() => {
    if (!connected || nc.isClosed()) return;
    for (const f of feeds.values()) f.watchdog();
  }, FEED_WATCHDOG_EVERY_MS);
  watchdog.unref();
  return {
    nc, controlNc, js, jsm, inboxStream, eventStream, stopConsuming, publishInboxMany,
    async stopPartition(p) {
      const f = feeds.get(p);
      feeds.delete(p);
      await f?.stop();
    },
    restartPartition(p, reason) { feeds.get(p)?.restart(reason); },
    pausePartition(p) { feeds.get(p)?.pause(); },
    consumerName: (p) => feeds.get(p)?.consumerName() ?? null,
    pendingAtLastDelivery: (p) => feeds.get(p)?.pendingAtLastDelivery() ?? null,
    consumerRestarts: () => restarts,
    serverWarnings: () => serverWarnings,
    feedStates: () => [...feeds.values()].map((f) => f.state()).sort((a, b) => a.partition - b.partition),
    isConnected: () => connected && !nc.isClosed(),
    streamsReady: () => streams.ready(),
    streamsRecreated: () => streams.recreated,
    async ensureStreams() {
      // A server outside any cluster takes an update to R3 without a word (and keeps one copy:
      // nats-server 2.9.10, checked 2026-11-29); only a create says "not supported". Asked first.
      if (replicas > 1 && !nc.info?.cluster) {
        throw new AgentryError('CONFIG_INVALID', `AGENTRY_NATS_REPLICAS (natsReplicas) is ${replicas}, but the NATS server${nc.info?.server_name ? ` ${nc.info.server_name}` : ''} is not part of a cluster, where JetStream keeps one copy of each stream: set it to 1, or connect to a nats-server cluster of at least ${replicas} servers`, { details: { natsReplicas: replicas } });
      }
      await upsertStream({
        name: inboxStream,
        subjects: ['agentry.part.>'],
        retention: RetentionPolicy.Workqueue,
        storage: StorageType.File,
        discard: DiscardPolicy.New,
        max_msg_size: opts.maxPayloadBytes,
        // Full: publishes are refused (never an acknowledged message dropped), and the rest of
        // JetStream — the lease bucket above all — keeps room (see docs/operations.md).
        max_bytes: capOf(opts.inboxMaxBytes),
        duplicate_window: duplicateWindowNs, // resends with the same Nats-Msg-Id are dropped
      });
      await upsertStream({
        name: eventStream,
        subjects: ['agentry.events.>'],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        // New, not Old: at its max_bytes an event is refused rather than the oldest dropped,
        // which could be one not routed yet. Routed history is trimmed before it gets there
        // (wakeups.ts, `trimEventHistory`). Discard Old until 2026-11-29, with no max_bytes.
        discard: DiscardPolicy.New,
        max_age: 7 * 24 * 3600 * 1_000_000_000, // event history: 7 days
        max_bytes: capOf(opts.eventsMaxBytes),
        max_msg_size: opts.maxPayloadBytes,
        duplicate_window: duplicateWindowNs,
      });
      if (opts.leaseBucket && leaseStream) {
        // The stream a KV bucket is (as @nats-io/kv makes one with history 1 and a TTL): the
        // leases' `Kvm.create` then binds to it.
        await upsertStream({
          name: leaseStream,
          subjects: [`$KV.${opts.leaseBucket.name}.>`],
          retention: RetentionPolicy.Limits,
          storage: StorageType.File,
          discard: DiscardPolicy.New,
          max_msgs_per_subject: 1,
          max_age: opts.leaseBucket.ttlMs * 1_000_000,
          // Set, not left to the server: it made the window the TTL at create (at most 2 min), and
          // an update sends the stream's whole old config back with the new max_age, so a lower
          // AGENTRY_LEASE_TTL_MS than the bucket was made with failed the start ("duplicates
          // window can not be larger then max age"; found 2026-11-29).
          duplicate_window: Math.min(opts.leaseBucket.ttlMs, 120_000) * 1_000_000,
          allow_rollup_hdrs: true,
          allow_direct: allowsDirectGet(nc.info?.version),
        });
      }
      streams.start();
    },
    async probePartitions() {
      const token = `_agentry-probe-${nuid.next()}`;
      const ids = Array.from({ length: 16 }, (_, i) => `${token}-${i}`);
      for (const [from, to] of [['agentry.ctl', 'agentry.ctlpart'], ['agentry.in', 'agentry.part']] as const) {
        const seen = new Map<string, number>();
        const sub = nc.subscribe(`${to}.*.*`);
        const done = (async () => {
          for await (const m of sub) {
            const parts = m.subject.split('.');
            if (!parts[3]?.startsWith(token)) continue;
            seen.set(parts[3], Number(parts[2]));
            if (seen.size === ids.length) break;
          }
        })();
        for (const id of ids) nc.publish(`${from}.${id}`, '');
        await nc.flush();
        await Promise.race([done, new Promise((r) => setTimeout(r, 2000))]);
        sub.unsubscribe();
        const wrong = ids.filter((id) => seen.get(id) !== partitionOf(id, opts.partitions));
        if (wrong.length > 0) {
          const missing = ids.filter((id) => !seen.has(id)).length;
          throw new AgentryError('PARTITION_MISMATCH', missing === ids.length
            ? `the NATS server does not map ${from}.* to ${to}.<partition>.*: start nats-server with the project's nats.conf`
            : `the NATS server's ${from}.* mapping does not use ${opts.partitions} partitions: make AGENTRY_PARTITIONS equal the partition(N,1) count in nats.conf`);
        }
      }
    },
    async startPartition(p, epoch, onMessage, hooks) {
      await feeds.get(p)?.stop();
      const feed = new PartitionFeed({
        nc: adminNc, jsm: feedJsm, js, admit, stream: inboxStream, partition: p, epoch, ackWaitMs: opts.ackWaitMs, maxAckPending: opts.maxAckPending ?? -1, buffer: opts.consumerBuffer,
        logger: log, onMessage, onRestart: () => { restarts++; }, ...(hooks ? { confirm: () => hooks.confirm() } : {}),
        onStreamMissing: (why) => { streams.suspect(inboxStream, why); },
      });
      feeds.set(p, feed);
      try {
        await feed.start();
      } catch (e) {
        if (feeds.get(p) === feed) feeds.delete(p);
        await feed.stop();
        if (isStreamNotFound(e)) streams.suspect(inboxStream, `partition ${p}: stream not found`);
        throw e;
      }
    },
    async publishInbox(sessionId, body, hdrs, msgId) {
      return (await publishInboxAck(sessionId, body, hdrs, msgId)).seq;
    },
    publishInboxAck,
    async publishEvent(type, body, hdrs, msgId) {
      return (await publishEventAck(type, body, hdrs, msgId)).seq;
    },
    publishEventAck,
    publishCore(subject, body, hdrs) {
      nc.publish(subject, body, hdrs ? { headers: toHeaders(hdrs) } : undefined);
    },
    async flushCore(timeoutMs) {
      await within(nc.flush(), timeoutMs, 'NATS flush');
    },
    async close() {
      clearInterval(watchdog);
      await streams.stop();
      await stopConsuming();
      // Drain flushes what was published, but with the server gone it would wait for a
      // reconnect that may never come: a short deadline, then a plain close.
      if (!nc.isClosed()) await settleWithin(nc.drain(), 2_000);
      if (!nc.isClosed()) await settleWithin(nc.close(), 1_000);
      if (!controlNc.isClosed()) await settleWithin(controlNc.close(), 1_000);
      if (!adminNc.isClosed()) await settleWithin(adminNc.close(), 1_000);
    },
  };
}

/**
 * Partition consumers opened at once by one node. A reconnect restarts every feed together; each
 * open lists, deletes and creates consumers, and on nats-server 2.9 a create over a deep inbox
 * costs the server a scan: 64 at once kept its API busy past every request's deadline, so none
 * finished. A few at a time, each finishes within its deadline and the rest follow.
 */
const OPENS_AT_ONCE = 4;

/** How often the feeds' watchdog looks (a feed idle for `IDLE_RESTART_MS` is restarted at the next look). */
const FEED_WATCHDOG_EVERY_MS = 5_000;

/** Deadline of a feed's API requests (names, delete, create): longer than the default 5 s, see `feedJsm`. */
const FEED_API_TIMEOUT_MS = 15_000;


/**
 * A stream create or update refused because of its replica count, as an error naming
 * AGENTRY_NATS_REPLICAS (null: another error): 10074, replicas on a server outside a cluster
 * (CONFIG_INVALID); 10005, no placement (NOT_READY: fewer JetStream servers up than replicas).
 */
function replicasProblem(err: unknown, replicas: number, stream: string): AgentryError | null {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 10074) {
    return new AgentryError('CONFIG_INVALID', `AGENTRY_NATS_REPLICAS (natsReplicas) is ${replicas}, but the NATS server is not clustered (${(err as Error).message}): set it to 1, or use a nats-server cluster`, { cause: err, details: { natsReplicas: replicas, stream } });
  }
  if (code === 10005 && replicas > 1) {
    // Retryable: a cluster that has just started does not know all its peers yet (seen on 2.9.10).
    return new AgentryError('NOT_READY', `stream ${stream}: JetStream cannot place ${replicas} replicas (${(err as Error).message}): fewer JetStream servers are up (or known yet, just after the cluster started) than AGENTRY_NATS_REPLICAS (natsReplicas), or it exceeds the cluster's size`, { retryable: true, cause: err, details: { natsReplicas: replicas, stream } });
  }
  return null;
}

/** A configured stream size as JetStream's `max_bytes` (-1: no limit of the stream's own). */
function capOf(bytes: number | undefined): number {
  return bytes !== undefined && bytes > 0 ? bytes : -1;
}
