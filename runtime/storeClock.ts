/**
 * Owns the runtime's time when several nodes share one Postgres: a `Clock` that keeps the store's
 * time, so that nodes whose wall clocks disagree still agree on when a timer is due.
 *
 * Due times are absolute epoch milliseconds in Postgres, set by whichever node runs a session and
 * fired by whichever node owns its partition then. On wall clocks a node 20 s ahead fired every
 * timer it owned 20 s early (and cron firings too), one 20 s behind fired them late and set due
 * times 20 s short for the others, and a sleep set on one node and fired by another after a
 * failover was early or late by their difference. Here the store's clock is the one authority:
 *
 * - Each sync reads `clock_timestamp()` a few times (`SAMPLES`) and keeps the reading with the
 *   shortest round trip. The server read its clock after the question went and before the answer
 *   came, so at the answer its clock reads between that reading and the reading plus the round
 *   trip: bounds, `earliest` and `latest`, a round trip apart (under a millisecond on a LAN).
 * - Between syncs the bounds run on the monotonic clock (`performance.now()`), never on the wall
 *   clock (a wall clock that steps, NTP or a VM resumed with a stale clock, moves nothing here),
 *   widening by `DRIFT` (100 ppm, more than a crystal drifts) so that they stay bounds.
 * - `now()` is the wall clock kept within the bounds: where the node's clock agrees with the
 *   store's (NTP works) it is `Date.now()` exactly, as before; one ahead reads `latest`, one behind
 *   `earliest`. Due times set from a duration (`now() + ms`) are then never short by more than the
 *   round trip, and never short at all on a node that is ahead.
 * - The scheduler fires by `earliestNow()`, the lower bound: a timer fires only once the store's
 *   clock has certainly reached its due time, so none fires early, and late by at most the round
 *   trip plus the drift allowance since the last sync (a few ms).
 * - It never goes backwards: a sync that finds it ahead (the store's clock stepped back) holds it
 *   until the store's time catches up, if by at most `HOLD_MAX_MS`; further back it steps back
 *   with a warn (holding the clock for minutes would stop every timer for as long).
 * - A sync that moves the lower bound forward tells `onAdjust` listeners (the scheduler re-arms its
 *   timer, which would otherwise fire late by the correction); a held clock needs nothing (a timer
 *   that runs while it is held finds nothing due and re-arms).
 * - The store away (an outage, a timeout): the last anchor stays and the clock runs on; the next
 *   sync retries. A node that could not sync at start runs on its wall clock until a sync works.
 *
 * The offset (store minus this node's wall clock) is reported (`status()`: the
 * `agentry_clock_offset_seconds` metric, `listNodes`) and logged as a warn past `warnMs`. PGlite
 * needs none of this (its clock is this process's): the runtime uses it only for a store with
 * `serverNow` of kind `pg`.
 */
import type { Clock } from './clock.js';
import type { Logger } from './logger.js';

/** Readings per sync: the one with the shortest round trip is kept. */
const SAMPLES = 5;
/** How much the bounds widen per monotonic ms (100 ppm), so that a drifting monotonic clock keeps them bounds between syncs. */
const DRIFT = 1e-4;
const SLOW = 1 - DRIFT;
const FAST = 1 + DRIFT;
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
  /** This node's wall clock: `now()` where it agrees with the store's, and the offset reported; default `Date.now()`. */
  readonly wall?: () => number;
}

/** An anchor: the store's clock read `storeMs`, answered at monotonic time `mono`, `rtt` after it was asked. */
interface Anchor { readonly storeMs: number; readonly mono: number; readonly rtt: number }

/**
 * The store-synchronised clock of one node (see the module comment). `start()` syncs once before
 * it resolves, then every `everyMs`; `stop()` ends the syncs.
 *
 * @example
 * const clock = new StoreClock({ read: () => store.serverNow!(), logger, everyMs: 30_000, warnMs: 1000 });
 * await clock.start();
 * clock.now();         // this node's wall clock, kept within a round trip of the store's
 * clock.earliestNow(); // the store's time, never ahead of it: what timers fire by
 */
export class StoreClock implements Clock {
  private anchor: Anchor | null = null;
  /** The latest value `now()` returned: it never returns less (a hold). */
  private floor = Number.NEGATIVE_INFINITY;
  /** The latest value `earliestNow()` returned, likewise. */
  private earliestFloor = Number.NEGATIVE_INFINITY;
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
    this.wall = o.wall ?? (() => Date.now()); // looked up at each call: a test may replace Date
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

  /**
   * This node's wall clock, kept within what the store's clock can read now (`bounds`): where the
   * two agree (NTP works) it is `Date.now()` exactly; a wall clock ahead reads the latest the
   * store's can be, one behind the earliest. Whole milliseconds (due times are stored as bigint),
   * never less than it returned before.
   */
  now(): number {
    const b = this.bounds();
    const w = this.wall();
    const v = Math.floor(b ? Math.min(b.latest, Math.max(b.earliest, w)) : w);
    if (v <= this.floor) return this.floor;
    this.floor = v;
    return v;
  }

  /**
   * The earliest the store's clock can read now (the lower bound), never above `now()`: a timer due
   * by it is due by the store's clock, so the scheduler fires by it and none fires early.
   */
  earliestNow(): number {
    const b = this.bounds();
    const now = this.now();
    const v = b ? Math.min(now, Math.floor(b.earliest)) : now;
    if (v <= this.earliestFloor) return this.earliestFloor;
    this.earliestFloor = v;
    return v;
  }

  /** Node's timers, the delay stretched by this clock's slowest rate so that `earliestNow()` has advanced by `ms` when it runs. */
  setTimeout(fn: (...args: unknown[]) => void, ms: number): unknown {
    return setTimeout(fn, Math.ceil(Math.max(0, ms) / SLOW));
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
   * What the store's clock can read now, from the last sync: at least its reading (it was taken
   * before the answer came), at most that plus the round trip (it was taken after the question
   * went), each side run on the monotonic clock with `DRIFT` to spare. Null before a sync.
   */
  private bounds(): { earliest: number; latest: number } | null {
    const a = this.anchor;
    if (!a) return null;
    const since = this.mono() - a.mono;
    return { earliest: a.storeMs + since * SLOW, latest: a.storeMs + a.rtt + since * FAST };
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
    const used = wasSynced || this.floor > Number.NEGATIVE_INFINITY;
    const before = used ? this.now() : Number.NEGATIVE_INFINITY;
    const beforeEarliest = used ? this.earliestNow() : Number.NEGATIVE_INFINITY;
    this.anchor = { storeMs: s.storeMs, mono: s.mono, rtt: s.rtt };
    this.syncedAtMono = s.mono;
    // Reported as the midpoint estimate: the store read its clock somewhere within the round trip.
    this.offsetMs = Math.round((s.storeMs + s.rtt / 2 - s.wall) * 10) / 10;
    this.uncertaintyMs = Math.round(s.rtt * 5) / 10;
    const b = this.bounds()!;
    const fresh = Math.floor(Math.min(b.latest, Math.max(b.earliest, this.wall())));
    const freshEarliest = Math.min(fresh, Math.floor(b.earliest));
    const ahead = Math.max(before - fresh, beforeEarliest - freshEarliest);
    if (ahead > HOLD_MAX_MS) {
      // The store's clock went back (or this node ran on a wall clock far ahead before its first
      // sync): step back rather than stop every timer for that long.
      this.o.logger.warn({ stepMs: Math.round(ahead) }, 'the runtime clock was ahead of the store\'s by more than it holds; stepped back');
      this.floor = fresh;
      this.earliestFloor = freshEarliest;
    } else if (ahead > 100 && wasSynced) {
      // Held (the floors stay) until the store's time catches up.
      this.o.logger.info({ holdMs: Math.round(ahead) }, 'the runtime clock is ahead of the store\'s; holding it until the store\'s catches up');
    }
    if (freshEarliest > beforeEarliest) {
      // Timers armed by the earlier bound would fire late by the correction: their owners re-arm.
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
