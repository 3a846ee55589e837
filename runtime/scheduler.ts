/**
 * Owns this node's durable timers: sleep deadlines and wait timeouts (`sessions.wake_at`) and
 * cron firings (`schedules.next_run_at`). Postgres holds all of them; memory holds only those
 * due within a horizon (a min-heap with one timer for the earliest), re-read every half
 * horizon, so a million stored timers cost a heap of what is due in the next minute.
 *
 * Timers are never early: a timer callback that runs before its due time re-arms. A timer
 * that fell due while the runtime was down is in the first read and fires right after start.
 * Delays beyond 2^31-1 ms work because nothing is armed further out than the horizon.
 * Entries are verified when they fire (the session may have woken meanwhile), so the heap
 * never needs deletions.
 */
import type { Store } from '../persistence/types.js';
import type { Logger } from './logger.js';
import { MinHeap } from './minHeap.js';
import type { Clock } from './sessionHost.js';

/** A timer key: `wake:<sessionId>` or `cron:<taskId>`. */
export type TimerKey = `wake:${string}` | `cron:${string}`;

interface Entry { readonly at: number; readonly key: TimerKey }

export interface SchedulerDeps {
  readonly store: Store;
  readonly clock: Clock;
  readonly logger: Logger;
  /** How far ahead timers are held in memory. */
  readonly horizonMs: number;
  /** Partitions whose timers this node runs (null: all). */
  readonly partitions: () => readonly number[] | null;
  /** A session's sleep deadline or wait timeout is due. */
  readonly onWakeDue: (sessionId: string, dueAt: number) => void;
  /** A cron task is due. */
  readonly onCronDue: (taskId: string, dueAt: number) => void;
}

const MAX_DELAY = 2 ** 31 - 1;
const PAGE = 50_000;
const FULL_READ_EVERY_MS = 5 * 60_000;
const FIRED_TTL_MS = 30_000;

/** The durable timer wheel of one node. */
export class Scheduler {
  private readonly heap = new MinHeap<Entry>((a, b) => a.at < b.at);
  /** The due time each key currently expects; heap entries that disagree are stale. */
  private readonly expected = new Map<TimerKey, number>();
  private horizonEnd = 0;
  private lastFullRead = 0;
  private reading = false;
  private readonly lateNotes: [TimerKey, number][] = [];
  /**
   * Keys fired at a due time whose change has not reached the store yet (a woken session reads
   * `sleeping` until its wake commits): a re-read must not fire them again. Cleared by the note
   * that follows the commit.
   */
  private readonly fired = new Map<TimerKey, { readonly at: number; readonly firedAt: number }>();
  private timer: unknown;
  private armedFor = Infinity;
  private reloadTimer: unknown;
  private stopped = false;
  /** Firing lateness (ms) of recent timers, for metrics and benchmarks. */
  readonly lateness: number[] = [];

  constructor(private readonly deps: SchedulerDeps) {}

  /** Loads the horizon (firing what is overdue) and starts the periodic re-read. */
  async start(): Promise<void> {
    await this.reload();
  }

  /** Number of timers held in memory. */
  heldCount(): number { return this.expected.size; }

  /** The next due time this node knows of for a key (null: none within the horizon). */
  nextFor(key: TimerKey): number | null { return this.expected.get(key) ?? null; }

  /**
   * Tells the scheduler a key's due time changed (after the commit that stored it), or was
   * cleared (null). Times beyond the horizon are left to the next re-read.
   */
  note(key: TimerKey, at: number | null): void {
    if (this.stopped) return;
    const f = this.fired.get(key);
    if (f && (at === null || f.at !== at || this.deps.clock.now() - f.firedAt > FIRED_TTL_MS)) this.fired.delete(key);
    // Already fired at this time and the store has not caught up. After FIRED_TTL_MS a read may
    // fire it again: a wake whose load failed is retried, and one that did happen is a no-op.
    if (this.fired.has(key)) return;
    if (at === null) { this.expected.delete(key); return; }
    if (at >= this.horizonEnd) {
      this.expected.delete(key);
      if (this.reading) this.lateNotes.push([key, at]); // the read in flight may extend the horizon past it
      return;
    }
    if (this.expected.get(key) === at) return;
    this.expected.set(key, at);
    this.heap.push({ at, key });
    if (at < this.armedFor) this.arm();
  }

  /** Re-reads the horizon now (this node just took a partition whose timers it must run). */
  refresh(): void {
    if (this.stopped) return;
    if (this.reloadTimer !== undefined) this.deps.clock.clearTimeout(this.reloadTimer);
    this.reloadTimer = undefined;
    this.horizonEnd = 0; // read from the start: the new partition's overdue timers too
    void this.reload();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.deps.clock.clearTimeout(this.timer);
    if (this.reloadTimer !== undefined) this.deps.clock.clearTimeout(this.reloadTimer);
    this.heap.clear();
    this.expected.clear();
  }

  private async reload(): Promise<void> {
    if (this.stopped) return;
    const { store, clock, horizonMs } = this.deps;
    const now = clock.now();
    let end = now + horizonMs;
    let full = false;
    try {
      const parts = this.deps.partitions();
      // Incremental: what lies before horizonEnd is in the heap already (or fired); only a
      // refresh (a partition just taken) reads from the start, overdue timers included.
      // A full read every few minutes is the safety net for anything an incremental one missed.
      const from = this.horizonEnd > 0 && now - this.lastFullRead < FULL_READ_EVERY_MS ? this.horizonEnd : undefined;
      this.reading = true;
      const wakes = await store.dueWakes(parts, end, PAGE, from);
      const crons = await store.dueSchedules(parts, end, PAGE, from);
      // A full page means more is due within the horizon than one read holds: shrink it, and
      // read again soon rather than after half a horizon.
      if (wakes.length === PAGE) end = Math.min(end, wakes.at(-1)!.wakeAt);
      if (crons.length === PAGE) end = Math.min(end, crons.at(-1)!.nextRunAt!);
      full = wakes.length === PAGE || crons.length === PAGE;
      this.horizonEnd = Math.max(this.horizonEnd, end);
      if (from === undefined) this.lastFullRead = now;
      for (const w of wakes) if (w.wakeAt < end) this.note(`wake:${w.sessionId}`, w.wakeAt);
      for (const c of crons) if (c.nextRunAt! < end) this.note(`cron:${c.id}`, c.nextRunAt);
    } catch (err) {
      this.afterRead();
      if (this.stopped) return;
      this.deps.logger.warn({ err }, 'scheduler could not read timers; retrying');
      this.reloadTimer = clock.setTimeout(() => { void this.reload(); }, 1000);
      return;
    }
    this.afterRead();
    if (this.stopped) return; // stop() landed while we read: arm nothing that keeps the process alive
    this.reloadTimer = clock.setTimeout(() => { void this.reload(); }, full ? 1000 : Math.max(1000, horizonMs / 2));
    this.arm();
  }

  /** Applies the notes that arrived while a read was in flight (the read may predate their commits). */
  private afterRead(): void {
    this.reading = false;
    const late = this.lateNotes.splice(0);
    for (const [key, at] of late) this.note(key, at);
  }

  private arm(): void {
    if (this.stopped) return;
    const top = this.heap.peek();
    if (this.timer !== undefined) { this.deps.clock.clearTimeout(this.timer); this.timer = undefined; }
    if (!top) { this.armedFor = Infinity; return; }
    this.armedFor = top.at;
    const delay = Math.min(MAX_DELAY, Math.max(0, top.at - this.deps.clock.now()));
    this.timer = this.deps.clock.setTimeout(() => { this.timer = undefined; this.fire(); }, delay);
  }

  private fire(): void {
    const now = this.deps.clock.now();
    for (let top = this.heap.peek(); top && top.at <= now; top = this.heap.peek()) {
      this.heap.pop();
      if (this.expected.get(top.key) !== top.at) continue; // superseded
      this.expected.delete(top.key);
      this.fired.set(top.key, { at: top.at, firedAt: now });
      if (this.fired.size > 200_000) for (const k of [...this.fired.keys()].slice(0, 100_000)) this.fired.delete(k); // bound it
      this.lateness.push(now - top.at);
      if (this.lateness.length > 100_000) this.lateness.splice(0, 50_000);
      try {
        if (top.key.startsWith('wake:')) this.deps.onWakeDue(top.key.slice(5), top.at);
        else this.deps.onCronDue(top.key.slice(5), top.at);
      } catch (err) {
        this.deps.logger.error({ err, key: top.key }, 'timer handler failed');
      }
    }
    this.arm(); // also covers a callback that ran early: the entry is still at the top
  }
}
