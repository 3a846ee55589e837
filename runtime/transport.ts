/**
 * Owns the runtime's use of NATS: the connection, the streams (`<prefix>_INBOX` over
 * `agentry.part.>`, `<prefix>_EVENTS` over `agentry.events.>`), one durable pull consumer per
 * partition, the start-up probe that proves nats.conf's partition mapping matches ours, and
 * publishing (outputs on core NATS; inbox mail and events through JetStream with a msg id).
 *
 * Ordering across restarts: the inbox stream uses work-queue retention (acked messages are
 * deleted), and a partition's consumer is re-created each time this node takes the partition.
 * A new consumer delivers every unacked message again from the oldest, in stream order, so a
 * session never sees a newer message before an older redelivered one.
 */
import { connect, headers as natsHeaders, nuid, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import {
  AckPolicy, DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager,
  type ConsumerMessages, type JetStreamClient, type JetStreamManager, type JsMsg,
} from '@nats-io/jetstream';
import { AgentryError } from '../actors/errors.js';
import type { Logger } from './logger.js';
import { natsConnectOptions } from './natsUrl.js';
import { partitionOf } from './partition.js';

export const INBOX_SUBJECT = (sessionId: string): string => `agentry.in.${sessionId}`;
export const OUT_SUBJECT = (sessionId: string): string => `agentry.out.${sessionId}`;
export const EVENT_SUBJECT = (type: string): string => `agentry.events.${type}`;
/** Core-NATS notices of state changes, for subscribers on any node (not durable: the store has the transitions). */
export const STATE_SUBJECT = (sessionId: string): string => `agentry.state.${sessionId}`;
export const DLQ_SUBJECT = (sessionId: string): string => `agentry.dlq.${sessionId}`;
export const PARTITION_FILTER = (p: number): string => `agentry.part.${p}.>`;

/** Header names of the wire format (documented in docs/protocol.md). */
export const H = {
  kind: 'Agentry-Kind',
  priority: 'Agentry-Priority',
  from: 'Agentry-From',
  eventType: 'Agentry-Event-Type',
  run: 'Agentry-Run',
  msgId: 'Nats-Msg-Id',
} as const;

export interface TransportOptions {
  readonly url: string;
  readonly partitions: number;
  readonly streamPrefix: string;
  readonly ackWaitMs: number;
  readonly consumerBuffer: number;
  readonly maxPayloadBytes: number;
  readonly logger: Logger;
  readonly name: string;
}

/** Called for every inbox message of an owned partition; must not throw. */
export type InboxHandler = (partition: number, msg: JsMsg) => void;

/** A connected transport; `ready` is false while the connection is down. */
export interface Transport {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly inboxStream: string;
  readonly eventStream: string;
  isConnected(): boolean;
  /** Creates or updates streams; idempotent. */
  ensureStreams(): Promise<void>;
  /** Proves the server maps `agentry.in.*` / `agentry.ctl.*` into our partition count. */
  probePartitions(): Promise<void>;
  /** (Re)creates partition p's consumer from its oldest unacked message and starts delivering. */
  startPartition(p: number, onMessage: InboxHandler): Promise<void>;
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
  publishEvent(type: string, body: string, hdrs: Record<string, string>, msgId?: string): Promise<number>;
  /** Fire-and-forget core publish (outputs, streamed chunks, dead-letter notices). */
  publishCore(subject: string, body: string, hdrs?: Record<string, string>): void;
  close(): Promise<void>;
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
  let connected = true;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') { connected = false; log.warn({ server: natsConnectOptions(opts.url).servers.join(',') }, 'NATS connection lost; reconnecting'); }
      if (s.type === 'reconnect') { connected = true; log.info('NATS connection restored'); }
    }
  })();
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const inboxStream = `${opts.streamPrefix}_INBOX`;
  const eventStream = `${opts.streamPrefix}_EVENTS`;
  const consumers = new Map<number, ConsumerMessages>();

  async function upsertStream(config: Parameters<JetStreamManager['streams']['add']>[0]): Promise<void> {
    try {
      await jsm.streams.info(config.name);
      await jsm.streams.update(config.name, config);
    } catch (e) {
      if ((e as { name?: string }).name === 'StreamNotFoundError' || /not found/i.test((e as Error).message)) {
        await jsm.streams.add(config);
      } else throw e;
    }
  }

  async function stopConsuming(): Promise<void> {
    const all = [...consumers.values()];
    consumers.clear();
    await Promise.all(all.map(async (c) => { await c.close(); }));
  }

  return {
    nc, controlNc, js, jsm, inboxStream, eventStream, stopConsuming,
    async stopPartition(p) {
      const c = consumers.get(p);
      consumers.delete(p);
      await c?.close();
    },
    isConnected: () => connected && !nc.isClosed(),
    async ensureStreams() {
      await upsertStream({
        name: inboxStream,
        subjects: ['agentry.part.>'],
        retention: RetentionPolicy.Workqueue,
        storage: StorageType.File,
        discard: DiscardPolicy.New,
        max_msg_size: opts.maxPayloadBytes,
        duplicate_window: 120_000_000_000, // 2 min, in ns: resends with the same Nats-Msg-Id are dropped
      });
      await upsertStream({
        name: eventStream,
        subjects: ['agentry.events.>'],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        discard: DiscardPolicy.Old,
        max_age: 7 * 24 * 3600 * 1_000_000_000, // event history: 7 days
        max_msg_size: opts.maxPayloadBytes,
        duplicate_window: 120_000_000_000,
      });
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
    async startPartition(p, onMessage) {
      const durable = `part-${p}`;
      // Re-create so delivery restarts at the oldest unacked message (see the module comment).
      try { await jsm.consumers.delete(inboxStream, durable); } catch { /* did not exist */ }
      await jsm.consumers.add(inboxStream, {
        durable_name: durable,
        filter_subject: `agentry.part.${p}.>`,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        ack_wait: opts.ackWaitMs * 1_000_000,
        max_ack_pending: -1,
        max_deliver: -1,
      });
      const consumer = await js.consumers.get(inboxStream, durable);
      const messages = await consumer.consume({
        max_messages: opts.consumerBuffer,
        callback: (m) => { onMessage(p, m); },
      });
      consumers.set(p, messages);
    },
    async publishInbox(sessionId, body, hdrs, msgId) {
      const ack = await js.publish(INBOX_SUBJECT(sessionId), body, { headers: toHeaders(hdrs), ...(msgId ? { msgID: msgId } : {}) });
      return ack.seq;
    },
    async publishEvent(type, body, hdrs, msgId) {
      const ack = await js.publish(EVENT_SUBJECT(type), body, { headers: toHeaders(hdrs), ...(msgId ? { msgID: msgId } : {}) });
      return ack.seq;
    },
    publishCore(subject, body, hdrs) {
      nc.publish(subject, body, hdrs ? { headers: toHeaders(hdrs) } : undefined);
    },
    async close() {
      await stopConsuming();
      if (!nc.isClosed()) await nc.drain().catch(() => nc.close());
      if (!controlNc.isClosed()) await controlNc.close();
    },
  };
}
