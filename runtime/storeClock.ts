/**
 * Owns the runtime's time when several nodes share one Postgres: a `Clock` whose `now()` is the
 * store's clock, so that nodes whose wall clocks disagree still agree on when a timer is due.
 *
 * Due times are absolute epoch milliseconds in Postgres, set by whichever node runs a session and
 * fired by whichever node owns its partition then. On wall clocks a node 30 s ahead fired every
 * timer it owned 30 s early (and cron firings too), one 30 s behind fired them late and set due
 * times 30 s short for the others, and a sleep set on one node and fired by another after a
 * failover was early or late by their difference. Here the store's clock is the one authority:
 *
 * - Each sync reads `clock_timestamp()` a few times (`SAMPLES`) and keeps the reading with the
 *   shortest round trip. The server read its clock between send and reply, so at the reply the
 *   server's clock reads at least that value: the clock is anchored there, a LOWER bound of the
 *   store's time (behind it by at most the round trip, never ahead).
 * - Between syncs it runs on the monotonic clock (`performance.now()`), not on the wall clock: a
 *   wall clock that steps (NTP, a VM resumed with a stale clock) moves nothing here. It runs
 *   `DRIFT` (100 ppm) slower than the monotonic clock, more than a crystal drifts, so that it
 *   stays a lower bound between syncs; each sync then moves it forward by a few ms at most.
 * - It never goes backwards: a sync that finds it ahead (the store's clock stepped back) holds it
 *   until the store's time catches up, if by at most `HOLD_MAX_MS`; further back it steps back
 *   with a warn (holding the clock for minutes would stop every timer for as long).
 * - A correction forward tells `onAdjust` listeners (the scheduler re-arms its timer, which would
 *   otherwise fire late by the correction); a held clock needs nothing (a timer that runs while it
 *   is held finds nothing due and re-arms).
 * - The store away (an outage, a timeout): the last anchor stays and the clock runs on; the next
 *   sync retries. A node that could not sync at start runs on its wall clock until a sync works.
 *
 * So a timer fires no earlier than its due time by the store's clock, and late by at most the
 * round trip of the best sample plus what the monotonic clock drifted since the last sync. The
 * offset (store minus this node's wall clock) is reported (`status()`: the `agentry_clock_offset_seconds`
 * metric, `listNodes`) and logged as a warn past `warnMs`. PGlite needs none of this (its clock
 * is this process's): the runtime uses it only for a store with `serverNow` of kind `pg`.
 */
import type { Clock } from './clock.js';
import type { Logger } from './logger.js';

/** Readings per sync: the one with the shortest round trip is kept. */
const SAMPLES = 5;
/** How much slower than the monotonic clock this clock runs (100 ppm): it must not run ahead between syncs. */
const DRIFT = 1e-4;
const RATE = 1 - DRIFT;
/** The furthest a sync holds the clock (instead of stepping it back) when it finds it ahead of the store's. */
export const HOLD_MAX_MS = 5_000;
/** While the offset stays past the warn threshold, the warn is repeated this often. */
const WARN_AGAIN_MS = 10 * 60_000;

/** What a node reports of its clock (`Runtime.clockStatus()`, metrics, `listNodes`). */
export interface ClockStatus {
  /** `store`: synchronised with the store's clock; `local`: this node's wall clock (PGlite, an injected clock, no sync yet). */
  readonly source: 'store' | 'local';
  /** The store's clock minus this node's wall clock at the last sync (ms); null before one. */
  readonly offsetMs: number | null;
  /** Half the round trip of the sample the offset is from: the offset is right within this. */
  readonly uncertaintyMs: number | null;
  /** How long ago the last sync succeeded (ms); null: never. */
  readonly syncAgeMs: number | null;
}

export interface StoreClockOptions {
  /** One reading of the store's clock, epoch ms (`Store.serverNow`). */
  readonly read: () => Promise<number>;
  readonly logger: Logger;
  /** Time between syncs. */
  readonly everyMs: number;
  /** A measured offset larger than this (either way) is logged as a warn. */
  readonly warnMs: number;
  /** Monotonic milliseconds; default `performance.now` (injectable for the unit tests). */
  readonly monotonic?: () => number;
  /** This node's wall clock, only for the offset it reports; default `Date.now`. */
  readonly wall?: () => number;
}

/** An anchor: the store's time `storeMs` (a lower bound) at monotonic time `mono`. */
interface Anchor { readonly storeMs: number; readonly mono: number }

/**
 * The store-synchronised clock of one node (see the module comment). `start()` syncs once before
 * it resolves, then every `everyMs`; `stop()` ends the syncs.
 *
 * @example
 * const clock = new StoreClock({ read: () => store.serverNow!(), logger, everyMs: 30_000, warnMs: 1000 });
 * await clock.start();
 * clock.now(); // the store's time, never ahead of it
 */
export class StoreClock implements Clock {
  private anchor: Anchor | null = null;
  /** The latest value `now()` returned: it never returns less (a hold). */
  private floor = Number.NEGATIVE_INFINITY;
  private offsetMs: number | null = null;
  private uncertaintyMs: number | null = null;
  private syncedAtMono: number | null = null;
  private readonly listeners = new Set<() => void>();
  private timer: NodeJS.Timeout | undefined;
  private syncing: Promise<boolean> | null = null;
  private failing = false;
  private warnedAt: number | null = null;
  private stopped = false;
  private readonly mono: () => number;
  private readonly wall: () => number;

  constructor(private readonly o: StoreClockOptions) {
    this.mono = o.monotonic ?? (() => performance.now());
    this.wall = o.wall ?? Date.now;
  }

  /** Syncs once (a failure is logged, and the clock runs on the wall clock until a sync works), then every `everyMs`. */
  async start(): Promise<void> {
    await this.sync();
    if (this.stopped) return;
    this.timer = setInterval(() => { void this.sync(); }, this.o.everyMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.listeners.clear();
  }

  /** Whole milliseconds like `Date.now()` (due times are stored as bigint), rounded down: never ahead. */
  now(): number {
    const v = Math.floor(this.anchor ? this.anchor.storeMs + (this.mono() - this.anchor.mono) * RATE : this.wall());
    if (v <= this.floor) return this.floor;
    this.floor = v;
    return v;
  }

  /** Node's timers, the delay stretched by this clock's rate so that `now()` has advanced by `ms` when it runs. */
  setTimeout(fn: (...args: unknown[]) => void, ms: number): unknown {
    return setTimeout(fn, Math.ceil(Math.max(0, ms) / RATE));
  }

  clearTimeout(id: unknown): void {
    clearTimeout(id as NodeJS.Timeout);
  }

  onAdjust(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => { this.listeners.delete(fn); };
  }

  status(): ClockStatus {
    return {
      source: this.anchor ? 'store' : 'local',
      offsetMs: this.offsetMs,
      uncertaintyMs: this.uncertaintyMs,
      syncAgeMs: this.syncedAtMono === null ? null : Math.max(0, this.mono() - this.syncedAtMono),
    };
  }

  /**
   * Reads the store's clock and corrects this one (see the module comment); true when it could.
   * Concurrent calls share one sync. Never rejects: a failure keeps the last anchor.
   */
  sync(): Promise<boolean> {
    this.syncing ??= this.syncOnce().finally(() => { this.syncing = null; });
    return this.syncing;
  }

  private async syncOnce(): Promise<boolean> {
    let best: { storeMs: number; mono: number; rtt: number; wall: number } | null = null;
    try {
      for (let i = 0; i < SAMPLES && !this.stopped; i++) {
        const sent = this.mono();
        const storeMs = await this.o.read();
        const got = this.mono();
        const wall = this.wall();
        if (!Number.isFinite(storeMs)) throw new TypeError(`the store's clock read ${String(storeMs)}`);
        const rtt = Math.max(0, got - sent);
        if (!best || rtt < best.rtt) best = { storeMs, mono: got, rtt, wall };
      }
    } catch (err) {
      // Keep what the samples before the failure gave; with none, the last anchor stays.
      if (!best) {
        if (!this.failing && !this.stopped) this.o.logger.warn({ err }, 'could not read the store\'s clock; the runtime clock runs on from its last sync');
        this.failing = true;
        return false;
      }
    }
    if (!best || this.stopped) return false;
    if (this.failing) this.o.logger.info('the store\'s clock can be read again');
    this.failing = false;
    this.apply(best);
    return true;
  }

  private apply(s: { storeMs: number; mono: number; rtt: number; wall: number }): void {
    const wasSynced = this.anchor !== null;
    // Before the first sync nothing may have read the clock yet (the runtime syncs before it
    // starts): then there is nothing to keep monotonic with.
    const before = wasSynced || this.floor > Number.NEGATIVE_INFINITY ? this.now() : Number.NEGATIVE_INFINITY;
    this.anchor = { storeMs: s.storeMs, mono: s.mono };
    this.syncedAtMono = s.mono;
    // Reported as the midpoint estimate: the store read its clock somewhere within the round trip.
    this.offsetMs = Math.round((s.storeMs + s.rtt / 2 - s.wall) * 10) / 10;
    this.uncertaintyMs = Math.round(s.rtt * 5) / 10;
    const fresh = Math.floor(this.anchor.storeMs + (this.mono() - this.anchor.mono) * RATE);
    const ahead = before - fresh;
    if (ahead > HOLD_MAX_MS) {
      // The store's clock went back (or this node ran on a wall clock far ahead before its first
      // sync): step back rather than stop every timer for that long.
      this.o.logger.warn({ stepMs: Math.round(ahead) }, 'the runtime clock was ahead of the store\'s by more than it holds; stepped back');
      this.floor = fresh;
    } else if (ahead > 0) {
      if (wasSynced && ahead > 100) this.o.logger.info({ holdMs: Math.round(ahead) }, 'the runtime clock is ahead of the store\'s; holding it until the store\'s catches up');
    } else if (ahead < 0) {
      for (const fn of [...this.listeners]) {
        try { fn(); } catch (err) { this.o.logger.error({ err }, 'a clock adjustment listener failed'); }
      }
    }
    this.warnSkew();
  }

  /** Warns when the offset passes `warnMs` (again every `WARN_AGAIN_MS` while it stays there); says when it is back. */
  private warnSkew(): void {
    const off = this.offsetMs ?? 0;
    const now = this.mono();
    if (Math.abs(off) > this.o.warnMs) {
      if (this.warnedAt !== null && now - this.warnedAt < WARN_AGAIN_MS) return;
      this.warnedAt = now;
      this.o.logger.warn(
        { offsetMs: Math.round(off), uncertaintyMs: Math.round(this.uncertaintyMs ?? 0), warnMs: this.o.warnMs },
        `this node's wall clock is ${Math.abs(Math.round(off))} ms ${off > 0 ? 'behind' : 'ahead of'} the store's: the runtime keeps time by the store's clock, but fix NTP on this host (logs and anything else that reads the wall clock are off)`,
      );
    } else if (this.warnedAt !== null) {
      this.warnedAt = null;
      this.o.logger.info({ offsetMs: Math.round(off) }, 'this node\'s wall clock agrees with the store\'s again');
    }
  }
}
