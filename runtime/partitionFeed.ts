/**
 * Owns the consumption of one partition of the inbox stream by this node, and the rule that
 * keeps per-session order sound: the host is only ever handed an unbroken run of one
 * consumer's deliveries. Every delivery carries the consumer's delivery sequence (dseq), which
 * grows by exactly one per delivery, first deliveries and redeliveries alike. A dseq that skips
 * means deliveries were lost on the way (a NATS disconnect, a server-side slow-consumer cut):
 * the messages behind it may belong to sessions that already hold older ones. So the feed never
 * hands over a message after a gap; it *restarts*: it stops the consumer, and creates a new one
 * under a new durable name, which delivers every unacked message of the partition again, oldest
 * first (the inbox is a work-queue stream: acked messages are gone). The host de-duplicates
 * what it already holds and skips only what is committed.
 *
 * Faults it survives, each by a restart: a NATS disconnect/reconnect (restarts every feed), a
 * gap in dseq, an idle heartbeat reporting deliveries this node never saw, the consumer deleted
 * or missing (e.g. inactivity clean-up), and the host dropping a session that held unacked
 * messages (`restart()`). A restart whose requests fail is retried with backoff until it works
 * or the feed is stopped. The stream itself deleted (an operator): the restarts fail with
 * "stream not found" and tell `onStreamMissing`, whose re-creation (streamKeeper.ts) lets the
 * next one succeed.
 *
 * Names: `part-<p>-<epoch>-<n>`. A new owner (higher epoch) deletes every other consumer of the
 * partition before creating its own, so a deposed owner's `consume()` can never find the new
 * consumer and pull from it (with one shared durable name it did). Before any restart the feed
 * asks `confirm()` (a lease renewal): a node that lost its lease does not delete the new
 * owner's consumer. Consumers left behind by a dead node are removed by the next owner, or by
 * the server after `inactive_threshold`.
 */
import {
  AckPolicy, DeliverPolicy, JetStreamApiError,
  type ConsumerMessages, type JetStreamClient, type JetStreamManager, type JsMsg,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { settleWithin } from './deadline.js';
import type { Logger } from './logger.js';
import { isStreamNotFound } from './streamKeeper.js';

/** The subject filter of partition p's consumer. */
export const partitionFilter = (p: number): string => `agentry.part.${p}.>`;

/** Durable consumers of partition p start with this. */
export const consumerPrefix = (p: number): string => `part-${p}-`;

/** A server removes a consumer nobody pulled from for this long (left by a dead node). */
const INACTIVE_THRESHOLD_MS = 10 * 60_000;

/** Pull requests expire after this; idle heartbeats come every half of it (tail-gap check). */
const PULL_EXPIRES_MS = 5_000;

export interface PartitionFeedOptions {
  /** The connection `jsm` uses: consumer names are asked for with a plain API request (see `consumerNames`). */
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  readonly js: JetStreamClient;
  /**
   * Runs an open (list, delete, create) when the node's other opens leave room for it: the
   * server's API is not flooded by every feed at once after a reconnect. Absent: at once.
   */
  readonly admit?: <T>(fn: () => Promise<T>) => Promise<T>;
  readonly stream: string;
  readonly partition: number;
  /** Fencing epoch of this node's lease: part of the consumer name. */
  readonly epoch: number;
  readonly ackWaitMs: number;
  /** Unacked deliveries the server lets this consumer hold (-1: no bound). */
  readonly maxAckPending: number;
  readonly buffer: number;
  readonly logger: Logger;
  /** Receives every message of an unbroken run of deliveries; must not throw. */
  readonly onMessage: (partition: number, m: JsMsg) => void;
  /**
   * Asked before a restart; false: this node lost the partition (the feed stops; the lease
   * manager has released it already); null: no answer yet (retried).
   */
  readonly confirm?: () => Promise<boolean | null>;
  /** Called for every restart (metrics). */
  readonly onRestart?: (reason: string) => void;
  /** The stream was not found (deleted?): its keeper should look (the restarts go on meanwhile). */
  readonly onStreamMissing?: (why: string) => void;
}

/** One partition's consumer on this node, restarted from the ack floor whenever order may have broken. */
export class PartitionFeed {
  /** Generation of the current consumer; callbacks of older ones are ignored. */
  private gen = 0;
  private lastDseq = 0;
  private messages: ConsumerMessages | null = null;
  private name: string | null = null;
  private created = 0;
  private restarting: Promise<void> | null = null;
  private restartWanted = false;
  private stopped = false;
  /** Paused while the lease is suspended: no consumer runs until `restart()`. */
  private paused = false;
  /** Restarts done (metrics, tests). */
  restarts = 0;

  constructor(private readonly o: PartitionFeedOptions) {}

  /** The durable name in use (null before the first start). */
  consumerName(): string | null { return this.name; }

  /**
   * Messages of the partition not delivered yet, as the last delivery of the current consumer
   * said (`info.pending`), null before its first delivery. Free: asking the server
   * (`consumers.info`) scans the inbox, ~30 ms per partition over 100k messages.
   */
  pendingAtLastDelivery(): number | null { return this.pending; }
  private pending: number | null = null;

  /** Creates this node's consumer (removing every other one of the partition) and starts delivering. */
  async start(): Promise<void> {
    await this.open();
  }

  /**
   * Stops handing over messages at once (synchronously: nothing of the current consumer
   * reaches the host after this call) and re-creates the consumer in the background.
   */
  restart(reason: string): void {
    if (this.stopped) return;
    this.gen++;
    this.paused = false;
    this.restartWanted = true;
    this.o.onRestart?.(reason);
    this.o.logger.warn({ partition: this.o.partition, reason }, 'restarting the partition consumer from its oldest unacked message');
    if (this.restarting) return;
    this.restarting = this.restartLoop().finally(() => { this.restarting = null; });
  }

  /** Stops delivering until `restart()` (the lease is suspended); nothing more reaches the host meanwhile. */
  pause(): void {
    if (this.stopped) return;
    this.gen++;
    this.paused = true;
    this.restartWanted = false;
    const m = this.messages;
    this.messages = null;
    void settleWithin(m?.close(), 2_000);
  }

  /** Stops delivering (nothing more reaches the host); the consumer is left for the next owner to remove. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.gen++;
    const m = this.messages;
    this.messages = null;
    await settleWithin(m?.close(), 2_000);
  }

  private async restartLoop(): Promise<void> {
    let delay = 100;
    while (this.restartWanted && !this.stopped && !this.paused) {
      this.restartWanted = false;
      try {
        const m = this.messages;
        this.messages = null;
        await settleWithin(m?.close(), 2_000);
        const owned = this.o.confirm ? await this.o.confirm() : true;
        if (owned === null) throw new Error('could not confirm the partition lease (NATS did not answer)');
        if (!owned) {
          this.o.logger.warn({ partition: this.o.partition }, 'partition lease lost while restarting its consumer');
          this.stopped = true;
          return;
        }
        if (this.stopped) return;
        await this.open();
        this.restarts++;
        delay = 100;
      } catch (err) {
        if (this.stopped) return;
        if (isStreamNotFound(err)) this.o.onStreamMissing?.(`partition ${this.o.partition}: stream not found`);
        this.o.logger.warn({ err, partition: this.o.partition }, 'partition consumer restart failed; retrying');
        this.restartWanted = true;
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 5_000);
      }
    }
  }

  private open(): Promise<void> {
    return this.o.admit ? this.o.admit(() => this.openNow()) : this.openNow();
  }

  private async openNow(): Promise<void> {
    if (this.stopped) return;
    const { jsm, js, stream, partition: p } = this.o;
    // Every other consumer of this partition goes first: a work-queue stream refuses two
    // consumers with overlapping filters, and a deposed owner must not keep pulling.
    // By name: the runtime names every consumer it makes `part-<p>-…` (`part-<p>` before epochs).
    const names = await consumerNames(this.o.nc, jsm, stream);
    await this.deleteAll(names.filter((n) => n.startsWith(consumerPrefix(p)) || n === `part-${p}`));
    const name = `${consumerPrefix(p)}${this.o.epoch}-${++this.created}`;
    const config = {
      durable_name: name,
      filter_subject: partitionFilter(p),
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: this.o.ackWaitMs * 1_000_000,
      max_ack_pending: this.o.maxAckPending,
      max_deliver: -1,
      inactive_threshold: INACTIVE_THRESHOLD_MS * 1_000_000,
    };
    let ci;
    try {
      ci = await jsm.consumers.add(stream, config);
    } catch (err) {
      if (!isFilterNotUnique(err)) throw err;
      // Someone else's consumer filters this partition under another name: find it by filter
      // (the slow listing, only here), remove it, and try once more.
      const other: string[] = [];
      for await (const ci of jsm.consumers.list(stream)) {
        // A consumer deleted while the server builds the list comes back as null (seen under churn).
        if (ci?.config?.filter_subject === partitionFilter(p)) other.push(ci.name);
      }
      await this.deleteAll(other);
      ci = await jsm.consumers.add(stream, config);
    }
    this.name = name;
    this.pending = null;
    if (this.stopped || this.paused) return;
    const gen = ++this.gen;
    this.lastDseq = 0;
    // From the create's answer: `consumers.get` would ask the server for the consumer's info,
    // one more scan of the inbox on nats-server 2.9.
    const consumer = js.consumers.getConsumerFromInfo(ci);
    const messages = await consumer.consume({
      max_messages: this.o.maxAckPending > 0 ? Math.min(this.o.buffer, this.o.maxAckPending) : this.o.buffer,
      expires: PULL_EXPIRES_MS,
      callback: (m) => { this.deliver(gen, m); },
    });
    if (gen !== this.gen) { void settleWithin(messages.close(), 2_000); return; }
    this.messages = messages;
    void this.watch(gen, messages);
  }

  private async deleteAll(names: readonly string[]): Promise<void> {
    for (const name of names) {
      try { await this.o.jsm.consumers.delete(this.o.stream, name); } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
  }

  private deliver(gen: number, m: JsMsg): void {
    if (gen !== this.gen) return; // a superseded consumer: its messages come again from the new one
    const dseq = m.info.deliverySequence;
    if (dseq !== this.lastDseq + 1) {
      this.restart(`delivery sequence jumped from ${this.lastDseq} to ${dseq}: deliveries were lost`);
      return;
    }
    this.lastDseq = dseq;
    this.pending = m.info.pending;
    this.o.onMessage(this.o.partition, m);
  }

  /** Consumer notifications that mean deliveries were lost or the consumer is gone. */
  private async watch(gen: number, messages: ConsumerMessages): Promise<void> {
    try {
      for await (const s of messages.status()) {
        if (gen !== this.gen) return;
        if (s.type === 'heartbeat' && s.lastConsumerSequence > this.lastDseq) {
          this.restart(`the server delivered up to ${s.lastConsumerSequence}, this node saw ${this.lastDseq}`);
          return;
        }
        if (s.type === 'consumer_deleted' || s.type === 'consumer_not_found' || s.type === 'stream_not_found') {
          if (s.type === 'stream_not_found') this.o.onStreamMissing?.(`partition ${this.o.partition}: stream not found`);
          this.restart(`consumer ${this.name ?? ''}: ${s.type}`);
          return;
        }
      }
    } catch { /* closed */ }
    // consume() ended by itself (not by us): nothing would deliver any more.
    if (gen === this.gen && !this.stopped && this.messages === messages) this.restart('the consumer stopped delivering');
  }
}

/**
 * The names of a stream's consumers, page by page, without their state. `consumers.list()`
 * (`CONSUMER.LIST`) makes the server count every consumer's pending messages, a scan of the
 * stream each: 1.9 s for 64 consumers over a 100k-message inbox on nats-server 2.9, against
 * 1 ms for the names (bench/tmp measurement of 2026-11-28). Every partition start and restart
 * listed them, so a node starting or reconnecting in front of a backlog kept the JetStream API
 * busy for minutes: its other requests timed out and the node gave up starting.
 */
export async function consumerNames(nc: NatsConnection, jsm: JetStreamManager, stream: string): Promise<string[]> {
  const opts = jsm.getOptions();
  const prefix = opts.apiPrefix ?? '$JS.API';
  const names: string[] = [];
  for (;;) {
    const r = await nc.request(`${prefix}.CONSUMER.NAMES.${stream}`, JSON.stringify({ offset: names.length }), { timeout: opts.timeout ?? 5_000 });
    const body = r.json<{ error?: { code?: number; err_code?: number; description?: string }; total?: number; consumers?: string[] | null }>();
    if (body.error) {
      throw Object.assign(new Error(`consumer names of stream ${stream}: ${body.error.description ?? 'error'}`), { code: body.error.code, api_error: body.error });
    }
    const page = body.consumers ?? [];
    names.push(...page);
    if (page.length === 0 || names.length >= (body.total ?? 0)) return names;
  }
}

/** The server refused a second consumer whose filter overlaps another's on a work-queue stream. */
function isFilterNotUnique(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === 10100; // JSConsumerWQConsumerNotUniqueErr
}

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; code?: number; api_error?: { err_code?: number } };
  return e.name === 'ConsumerNotFoundError' || e.api_error?.err_code === 10014 || e.code === 404;
}
