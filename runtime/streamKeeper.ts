/**
 * Owns the existence of the runtime's JetStream streams (`<prefix>_INBOX`, `<prefix>_EVENTS`):
 * it creates or updates them at start-up and re-creates one that disappears while the runtime
 * runs (an operator's `nats stream rm`, a clean-up script, a server whose store was wiped).
 *
 * A stream is found missing by a hint — a partition feed or the event router got "stream not
 * found", a JetStream publish had no responders — by the server's advisory
 * `$JS.EVENT.ADVISORY.STREAM.DELETED.<name>`, or by a periodic `STREAM.INFO` of each stream
 * (every `checkEveryMs`; the backstop for a missed advisory). While one is missing, `ready()`
 * is false (the node's readiness fails); the keeper re-creates it with the config it was
 * ensured with, retrying with backoff until it exists again. Publishes meanwhile are refused
 * (JetStream has no stream to answer them), never acknowledged: a producer retries them.
 *
 * The sequence rule. Sessions remember the highest inbox sequence they applied (`last_seq`) and
 * skip every message at or below it as a redelivery; the event router names each event's copies
 * `evt:<seq>:<session>`. A stream re-created from sequence 1 would have its first messages
 * skipped as "already applied" (or de-duplicated as copies of old events), silently. So a
 * re-created stream starts past every sequence its deleted incarnation can have issued: past
 * the highest this node saw (publish acknowledgements, the periodic info) and, for the inbox,
 * past every session's `last_seq` in the store (a node that starts after the stream was deleted
 * saw nothing), plus `SEQUENCE_GAP` for messages the old stream took after the last look (on
 * other nodes, or before the last info) — old messages still in flight on other nodes may commit
 * after the re-creation, and their sequences must stay below the new ones.
 *
 * How the first sequence is set on every server version (the `first_seq` config needs 2.10; the
 * client refuses it for 2.9): the stream is created on a placeholder subject nobody publishes to
 * (description `agentry: re-creating …`), purged up to the first sequence (on an empty stream
 * that moves it there; checked), and only then updated to its real subjects. Two nodes re-creating at once: the
 * one whose create succeeded finishes; the other waits for the real subjects, and takes over
 * (deletes the placeholder and starts again) only after `STALE_PLACEHOLDER_MS`.
 *
 * A stream is gone from the JetStream API before the server has removed its files: nats-server
 * 2.9 answers "stream not found" (and sends the advisory) while it still deletes the old store's
 * directory, and a stream created under the same name at that moment lost its first message block
 * ("error opening msg block file … no such file"; its consumers then delivered nothing, forever).
 * So a stream found missing is re-created only `DELETE_SETTLE_MS` later, and before it takes real
 * subjects the new store is proven: a probe message is stored, read back and erased.
 *
 * The size rule. A stream's `max_bytes` is never lowered below what it holds: nats-server
 * enforces a lowered limit at once by deleting the oldest messages, whatever the discard policy
 * (a work-queue inbox of 100 messages updated to half their bytes kept the newest 47; nats-server
 * 2.9.10, checked 2026-11-28) — unapplied messages, acknowledged to their producers, gone. A
 * limit that would cut is held back (the stream keeps its old one, logged) and applied by the
 * periodic check once the stream holds at most half of it (the half leaves room for what is
 * published between the check and the update).
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { JetStreamApiCodes, JetStreamApiError, type JetStreamManager, type StreamConfig, type StreamInfo } from '@nats-io/jetstream';
import type { Logger } from './logger.js';

/** How far past the highest known sequence a re-created stream starts (see the module comment). */
export const SEQUENCE_GAP = 1_000_000_000;

/** A placeholder stream older than this is taken over by another node (its creator died). */
const STALE_PLACEHOLDER_MS = 60_000;

/** How long a stream found missing is left before it is re-created (the server may still be removing its files). */
const DELETE_SETTLE_MS = 2_000;

/** Description of a stream being re-created (its subjects are not the real ones yet). */
const PLACEHOLDER = 'agentry: re-creating';

/** What a stream is ensured with: the config without the fields the keeper sets itself. */
export type KeptStreamConfig = Omit<Partial<StreamConfig>, 'first_seq'> & { readonly name: string; readonly subjects: string[] };

export interface StreamKeeperOptions {
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  readonly logger: Logger;
  /**
   * The highest sequence of `stream` recorded outside JetStream (the inbox: the sessions'
   * `last_seq`), or 0: a floor for the first sequence of a re-created stream.
   */
  readonly recordedSeq?: (stream: string) => Promise<number>;
  /** How often each stream's existence is checked (and its last sequence sampled); default 10 s. */
  readonly checkEveryMs?: number;
}

/** Whether the JetStream API said the stream does not exist (10059). */
export function isStreamNotFound(err: unknown): boolean {
  if (err instanceof JetStreamApiError) return err.code === JetStreamApiCodes.StreamNotFound;
  const e = err as { name?: string; api_error?: { err_code?: number } } | null;
  return e?.name === 'StreamNotFoundError' || e?.api_error?.err_code === JetStreamApiCodes.StreamNotFound;
}

/**
 * Whether JetStream refused to store a message for want of room: the stream is at its
 * `max_bytes` / `max_msgs` with discard `new` (10077, "maximum bytes exceeded"), or the server's
 * or account's JetStream storage is exhausted (10023, "insufficient resources"). Retryable: room
 * comes back as consumers drain the inbox or history ages out.
 */
export function isStreamFull(err: unknown): boolean {
  const e = err as { name?: string; code?: unknown; message?: unknown } | null;
  if (e?.name !== 'JetStreamApiError') return false;
  const msg = typeof e.message === 'string' ? e.message : '';
  return e.code === 10023 || (e.code === 10077 && /maximum (bytes|messages)|insufficient|no space/i.test(msg)) || /insufficient resources/i.test(msg);
}

/** Whether a stream create or update was refused because its max_bytes cannot be reserved (10047). */
function isReserveRefused(err: unknown): boolean {
  const e = err as { name?: string; code?: unknown; message?: unknown } | null;
  return e?.code === 10047 || (typeof e?.message === 'string' && /insufficient storage resources/i.test(e.message));
}

/** The smallest `max_bytes` the keeper halves a refused one to (then: no limit of the stream's own). */
const MIN_FITTED_BYTES = 1024 * 1024;

/** Whether a JetStream publish found nobody to store it (no stream over the subject). */
export function isNoStream(err: unknown): boolean {
  return (err as { name?: string } | null)?.name === 'JetStreamNotEnabled';
}

/** Keeps the runtime's streams in existence (see the module comment). */
export class StreamKeeper {
  private readonly configs = new Map<string, KeptStreamConfig>();
  /** Highest sequence seen per stream (acks, infos). */
  private readonly seen = new Map<string, number>();
  /** Streams known to be missing, until re-created. */
  private readonly missingNow = new Set<string>();
  /** A check (and re-creation) of a stream in flight. */
  private readonly checking = new Map<string, Promise<void>>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private advisories: Subscription | undefined;
  private stopped = false;
  /** Streams whose configured `max_bytes` is held back until they hold at most half of it (the size rule). */
  private readonly capHeld = new Set<string>();
  /** Streams at ≥ 90 % of their `max_bytes` at the last check (logged once per crossing). */
  private readonly nearlyFull = new Set<string>();
  /** Streams re-created since start (metrics, tests). */
  recreated = 0;

  constructor(private readonly o: StreamKeeperOptions) {}

  /** Creates the stream (past every sequence known of it) or updates its config; remembers the config. */
  async ensure(config: KeptStreamConfig): Promise<void> {
    this.configs.set(config.name, config);
    await this.createOrUpdate(config);
  }

  /** Starts watching the ensured streams: deletion advisories and a periodic check. */
  start(): void {
    if (this.timer !== undefined || this.stopped) return;
    this.advisories = this.o.nc.subscribe('$JS.EVENT.ADVISORY.STREAM.DELETED.*', {
      callback: (err, m) => {
        if (err) return;
        const name = m.subject.slice(m.subject.lastIndexOf('.') + 1);
        if (this.configs.has(name)) this.suspect(name, 'the server announced its deletion');
      },
    });
    this.timer = setInterval(() => { for (const name of this.configs.keys()) this.suspect(name); }, this.o.checkEveryMs ?? 10_000);
    this.timer.unref();
  }

  /** Stops watching; a re-creation in flight ends at its next step. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.advisories?.unsubscribe();
    await Promise.all([...this.checking.values()]);
  }

  /** False while a kept stream is known to be missing (readiness). */
  ready(): boolean { return this.missingNow.size === 0; }

  /** The kept streams known to be missing now. */
  missing(): string[] { return [...this.missingNow]; }

  /** Notes a sequence the stream issued (a publish acknowledgement): re-creation starts past it. */
  noteSeq(stream: string, seq: number): void {
    if (seq > (this.seen.get(stream) ?? 0)) this.seen.set(stream, seq);
  }

  /**
   * Something suggests `stream` may be gone (a "stream not found", a publish without responders):
   * checks it now (one check at a time per stream) and re-creates it if it is missing. `why` is
   * logged when it is.
   */
  suspect(stream: string, why?: string): void {
    if (this.stopped || !this.configs.has(stream) || this.checking.has(stream)) return;
    const run = this.check(stream, why).catch((err: unknown) => {
      // NATS away or slow: its own readiness check says so; the next check tries again.
      this.o.logger.debug({ err, stream }, 'stream check failed; retried at the next one');
    }).finally(() => { this.checking.delete(stream); });
    this.checking.set(stream, run);
  }

  private async check(stream: string, why?: string): Promise<void> {
    const info = await this.infoOrNull(stream);
    if (info && !isPlaceholder(info)) {
      this.noteSeq(stream, info.state.last_seq);
      await this.checkSize(info);
      return;
    }
    this.missingNow.add(stream);
    this.o.logger.error({ stream, reason: why ?? (info ? 'half re-created' : 'stream info: not found') },
      'JetStream stream is missing (deleted by an operator?): not ready; re-creating it. What it held is gone; what is published from now on is kept');
    const config = this.configs.get(stream)!;
    for (let delay = 250; !this.stopped; delay = Math.min(delay * 2, 5_000)) {
      await new Promise((r) => setTimeout(r, DELETE_SETTLE_MS));
      if (this.stopped) return;
      try {
        await this.createOrUpdate(config, true);
        this.missingNow.delete(stream);
        this.recreated++;
        return;
      } catch (err) {
        this.o.logger.warn({ err, stream }, 'could not re-create the stream yet; retrying');
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /**
   * `config` as it may be applied to the stream `info` describes: its `max_bytes` replaced by the
   * stream's current one when the new limit is lower and the stream holds more than half of it
   * (the size rule of the module comment); the periodic check applies it later.
   */
  private withSafeCap(config: KeptStreamConfig, info: StreamInfo): KeptStreamConfig {
    const want = config.max_bytes ?? -1;
    const have = info.config.max_bytes ?? -1;
    const lowers = want > 0 && (have <= 0 || want < have);
    if (!lowers || info.state.bytes <= want / 2) {
      this.capHeld.delete(config.name);
      return config;
    }
    if (!this.capHeld.has(config.name)) {
      this.o.logger.warn({ stream: config.name, holds: info.state.bytes, maxBytes: want, keeps: have },
        'stream max_bytes not lowered yet: the stream holds more than half of the new limit, and nats-server would delete its oldest messages to fit; applied once it has drained');
    }
    this.capHeld.add(config.name);
    return { ...config, max_bytes: have };
  }

  /**
   * Runs a create or update with `config`, halving its `max_bytes` while the server refuses it
   * for want of storage to reserve (10047: a stream's max_bytes is reserved against the server's
   * `max_file_store` or the account's limit; a server with less room than the defaults, or other
   * streams' reservations). The first size that fits can be nearly all the room left, and the
   * lease bucket needs some: so it is halved once more (when the stream, holding `holds` bytes,
   * keeps at least half of that free). Below 1 MiB it gives up the limit (logged as an error: the
   * stream can then fill JetStream's storage). The limit it settles on is logged.
   */
  private async fitted<T>(config: KeptStreamConfig, op: (c: KeptStreamConfig) => Promise<T>, holds = 0): Promise<T> {
    let c = config;
    for (;;) {
      try {
        const r = await op(c);
        const fit = c.max_bytes ?? -1;
        // A config without a limit (the lease bucket) had nothing cut: until 2026-11-29 every
        // start warned of a limit it "could not reserve".
        if (fit === (config.max_bytes ?? -1)) return r;
        let set = fit;
        if (fit > 0 && Math.floor(fit / 2) >= MIN_FITTED_BYTES && holds <= fit / 4) {
          set = Math.floor(fit / 2);
          await this.o.jsm.streams.update(c.name, { max_bytes: set });
        }
        this.o.logger.warn({ stream: c.name, maxBytes: set, configured: config.max_bytes }, 'JetStream could not reserve the configured max_bytes for the stream (its storage limit is smaller, or other streams reserved it): a smaller limit was set; set AGENTRY_INBOX_MAX_BYTES / AGENTRY_EVENTS_MAX_BYTES well below the server\'s storage');
        return r;
      } catch (err) {
        const max = c.max_bytes ?? -1;
        if (!isReserveRefused(err) || max <= 0) throw err;
        if (max / 2 < MIN_FITTED_BYTES) {
          this.o.logger.error({ stream: c.name, configured: config.max_bytes }, 'JetStream could not reserve even 1 MiB for the stream: created without a limit of its own, so it can fill JetStream\'s storage (where lease renewals fail too); give the server more storage (max_file_store)');
          c = { ...c, max_bytes: -1 };
        } else {
          c = { ...c, max_bytes: Math.floor(max / 2) };
        }
      }
    }
  }

  /** The periodic size look: applies a held-back limit once it is safe, and says when a stream is nearly full. */
  private async checkSize(info: StreamInfo): Promise<void> {
    const name = info.config.name;
    const config = this.configs.get(name);
    if (config && this.capHeld.has(name)) {
      const next = this.withSafeCap(config, info);
      if (!this.capHeld.has(name)) {
        await this.fitted(next, (c) => this.o.jsm.streams.update(name, c), info.state.bytes);
        this.o.logger.info({ stream: name, maxBytes: next.max_bytes }, 'stream max_bytes lowered now that the stream has drained');
        return;
      }
    }
    const max = info.config.max_bytes ?? -1;
    const full = max > 0 && info.state.bytes >= 0.9 * max;
    if (full && !this.nearlyFull.has(name)) {
      this.o.logger.warn({ stream: name, bytes: info.state.bytes, maxBytes: max },
        'stream nearly full (≥ 90 % of its max_bytes): new messages are refused once it is (producers get a retryable error); the runtime keeps draining it');
    }
    if (full) this.nearlyFull.add(name); else this.nearlyFull.delete(name);
  }

  private async infoOrNull(stream: string): Promise<StreamInfo | null> {
    try {
      return await this.o.jsm.streams.info(stream);
    } catch (err) {
      if (isStreamNotFound(err)) return null;
      throw err;
    }
  }

  /** The stream as `config` says: updated when it exists, created (past every known sequence) when not. */
  private async createOrUpdate(config: KeptStreamConfig, prove = false): Promise<void> {
    for (;;) {
      if (this.stopped) throw new Error('stream keeper stopped');
      const info = await this.infoOrNull(config.name);
      if (info && !isPlaceholder(info)) {
        this.noteSeq(config.name, info.state.last_seq);
        await this.fitted(this.withSafeCap(config, info), (c) => this.o.jsm.streams.update(c.name, c), info.state.bytes);
        return;
      }
      if (info) {
        // Another node is re-creating it: wait for it to finish, or take over a stale one.
        if (Date.now() - Date.parse(info.created) < STALE_PLACEHOLDER_MS) {
          await new Promise((r) => setTimeout(r, 200));
          continue;
        }
        this.o.logger.warn({ stream: config.name }, 'taking over a stream another node left half re-created');
        await this.o.jsm.streams.delete(config.name).catch((err: unknown) => { if (!isStreamNotFound(err)) throw err; });
        continue;
      }
      if (await this.recreate(config, prove)) return;
    }
  }

  /** The placeholder dance of the module comment; false when another node's create came first. */
  private async recreate(config: KeptStreamConfig, prove: boolean): Promise<boolean> {
    const name = config.name;
    const first = await this.firstSeqFor(name);
    const placeholder = { ...config, subjects: [`_agentry.recreating.${name}`], description: `${PLACEHOLDER} ${name} from ${first}` };
    try {
      await this.fitted(placeholder, (c) => this.o.jsm.streams.add(c));
    } catch (err) {
      if (await this.infoOrNull(name)) return false; // someone else's create came first
      throw err;
    }
    // Nobody can publish into it yet (its subject is the placeholder): a purge up to `first` moves
    // its first sequence there. (A node whose identical placeholder add came second does the same.)
    if (first > 1) {
      await seenAfterCreate(() => this.o.jsm.streams.purge(name, { seq: first }));
      const purged = await this.o.jsm.streams.info(name);
      if (purged.state.last_seq < first - 1) throw new Error(`stream ${name}: the purge did not move its first sequence to ${first}`);
    }
    if (prove) await this.prove(name, placeholder.subjects[0]!);
    await seenAfterCreate(() => this.fitted({ ...config, description: config.description ?? '' }, (c) => this.o.jsm.streams.update(name, c)));
    this.noteSeq(name, first - 1);
    this.o.logger.warn({ stream: name, firstSeq: first }, 'JetStream stream created; its sequences start past every one its deleted incarnation can have issued');
    return true;
  }

  /**
   * Stores a probe message on the placeholder subject, reads it back and erases it: a store whose
   * files an unfinished deletion removed fails here (the stream is deleted, and the caller retries).
   */
  private async prove(name: string, subject: string): Promise<void> {
    try {
      const ack = await this.o.jsm.jetstream().publish(subject, 'probe');
      const m = await this.o.jsm.streams.getMessage(name, { seq: ack.seq });
      if (!m) throw new Error('the probe message was not found');
      await this.o.jsm.streams.deleteMessage(name, ack.seq, true);
    } catch (err) {
      this.o.logger.warn({ err, stream: name }, 'the re-created stream cannot store or read (the old one\'s files were still being removed?): deleting it and trying again');
      await this.o.jsm.streams.delete(name).catch(() => undefined);
      throw err;
    }
  }

  /** Past the highest sequence this node saw of `stream` and the one recorded in the store, plus the gap. */
  private async firstSeqFor(stream: string): Promise<number> {
    const recorded = (await this.o.recordedSeq?.(stream)) ?? 0;
    const known = Math.max(recorded, this.seen.get(stream) ?? 0);
    // A stream never seen anywhere (a fresh install) starts at 1.
    return known === 0 ? 1 : known + SEQUENCE_GAP + 1;
  }
}

/** How long a stream just created may still be "not found" (a NATS cluster electing its leader). */
const CREATED_VISIBLE_MS = 15_000;

/**
 * Runs `op` on a stream this node has just created, again while it answers "stream not found":
 * on a NATS cluster the create is answered before the stream's replicas have elected a leader,
 * and the next request about it (the update to its real subjects) was refused as "stream not
 * found" — the first start against a fresh cluster failed (nats-server 2.9.10, 3 servers,
 * 2026-11-29, about one start in six on the shared 2-core machine).
 */
async function seenAfterCreate<T>(op: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + CREATED_VISIBLE_MS;
  for (let delay = 50; ; delay = Math.min(delay * 2, 1_000)) {
    try {
      return await op();
    } catch (err) {
      if (!isStreamNotFound(err) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

function isPlaceholder(info: StreamInfo): boolean {
  return (info.config.description ?? '').startsWith(PLACEHOLDER);
}
