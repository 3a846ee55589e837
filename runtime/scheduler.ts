/**
 * Owns this node's durable timers: sleep deadlines and wait timeouts (`sessions.wake_at`) and
 * cron firings (`schedules.next_run_at`). Postgres holds all of them; memory holds only those
 * due within a horizon (a min-heap with one timer for the earliest), re-read every half
 * horizon, so a million stored timers cost a heap of what is due in the next minute.
 *
 * Timers are never early: a timer callback that runs before its due time re-arms; times are
 * the runtime's clock's, which follows Postgres' clock on a `pg` store (runtime/storeClock.ts), so
 * nodes whose wall clocks disagree fire a timer at the same instant: due by the clock's earliest
 * possible now (`earliestNow`), re-armed when that clock is corrected forward. A timer
 * that fell due while the runtime was down is in the first read and fires right after start.
 * Delays beyond 2^31-1 ms work because nothing is armed further out than the horizon.
 * Entries are verified when they fire (the session may have woken meanwhile), so the heap
 * never needs deletions.
 *
 * Reads never skip. The rule: `horizonEnd` only moves past rows that a read has returned, and
 * only for the partitions that read covered (`covered`). Concretely:
 * - one read at a time: refreshes and periodic re-reads requested while a read runs are
 *   coalesced into one more read after it;
 * - a read pages by (due time, key) until its range is exhausted, however many rows are due;
 * - a failed read (an exhausted pool, Postgres gone) changes nothing it covered: the retry
 *   reads the same range again (a partition never read is read in full);
 * - a partition this node takes is read in full (overdue timers included); a partition it
 *   gives up loses its held timers, and a held timer whose partition is no longer owned is
 *   dropped when it falls due rather than fired;
 * - a commit's note that arrives while a read runs is applied again after the read, so a
 *   read that started before the commit cannot leave a stale due time behind.
 *
 * Look-ahead (`leadMs`, `onWakeSoon`): a wake is announced `leadMs` before it is due, so the host
 * can load its session in time; it still fires at its due time, never before. The announcement
 * is a hint: it marks nothing fired and changes nothing a read or a note decides.
 *
 * Firing yields: one timer callback fires at most FIRE_SLICE timers (announcements and due
 * ones) and continues on a fresh timer, so 100,000 timers due at once (a start after downtime)
 * do not hold the event loop for one long synchronous loop.
 *
 * Faults it survives: failing, slow or paged reads; partitions taken and released during a
 * read; many refreshes at once (start-up takes 64 partitions, each asking for a read). A wake
 * whose session load failed is fired again by the next full read once `FIRED_TTL_MS` passed
 * (the host reports no load failure to the scheduler, so a quicker retry would also re-fire
 * wakes that merely wait in the host's admission queue).
 */
import type { DueWake, ScheduleRecord } from '../persistence/types.js';
import type { Logger } from './logger.js';
import { MinHeap } from './minHeap.js';
import type { Clock } from './clock.js';

/** A timer key: `wake:<sessionId>` or `cron:<taskId>`. */
export type TimerKey = `wake:${string}` | `cron:${string}`;

/** Where timers are read from: the store's two range queries (a `Store` is one). */
export interface TimerSource {
  /** Sleeping/waiting sessions due in [`from`, `before`), ordered by due time; `partitions` null means all. */
  dueWakes(partitions: readonly number[] | null, before: number, limit: number, from?: number): Promise<DueWake[]>;
  /** Cron schedules due in [`from`, `before`), ordered by due time; `partitions` null means all. */
  dueSchedules(partitions: readonly number[] | null, before: number, limit: number, from?: number): Promise<ScheduleRecord[]>;
}

interface Entry { readonly at: number; readonly key: TimerKey }
/** What the scheduler holds for a key: its due time and, when known, its partition. */
interface Held { readonly at: number; readonly part: number | undefined }
interface Fired { readonly at: number; readonly firedAt: number; readonly part: number | undefined }

export interface SchedulerDeps {
  readonly store: TimerSource;
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
  /**
   * A session's sleep deadline or wait timeout falls due within `leadMs` (a hint to load it now;
   * `onWakeDue` still follows at the due time). Called at most once per held due time.
   */
  readonly onWakeSoon?: (sessionId: string, dueAt: number) => void;
  /** How long before its due time a wake is announced to `onWakeSoon`; default 0 (off). */
  readonly leadMs?: number;
  /** Rows per read query; default 10,000 (a read pages until its range is exhausted). */
  readonly pageSize?: number;
  /** How often every partition is read in full, as a safety net; default 5 minutes. */
  readonly fullReadEveryMs?: number;
}

const MAX_DELAY = 2 ** 31 - 1;
const PAGE = 10_000;
const FULL_READ_EVERY_MS = 5 * 60_000;
/** A fired timer whose commit has not been noted after this long may be fired again by a read. */
const FIRED_TTL_MS = 30_000;
const RETRY_MIN_MS = 1000;
/**
 * Most timers one timer callback fires (announcements included) before it yields to the event
 * loop: a guard against one huge burst (100,000 overdue wakes at a start after downtime; ~10 µs
 * each, so a slice holds the loop ~0.1 s). Large, because a due batch should go out in one tick
 * (the loader then reads it in one query), and because a slice costs a whole event-loop turn:
 * on a saturated loop (turns of 0.7-2.7 s, measured) slices of 256 and 4,096 fired fewer wakes
 * per second than fell due (3,333/s), and the scheduler itself became the bottleneck.
 */
export const FIRE_SLICE = 10_000;
const RETRY_MAX_MS = 10_000;

/** What one read pass reads: partitions (null: all) from `from` (undefined: from the start). */
interface ReadSpec { readonly parts: readonly number[] | null; readonly from: number | undefined }

/** The durable timer wheel of one node. */
export class Scheduler {
  private readonly heap = new MinHeap<Entry>((a, b) => a.at < b.at);
  /** Wake entries not announced yet (`onWakeSoon`), by due time; stale ones are skipped as in `heap`. */
  private readonly soon = new MinHeap<Entry>((a, b) => a.at < b.at);
  /** The due time each key currently expects; heap entries that disagree are stale. */
  private readonly expected = new Map<TimerKey, Held>();
  /** Every timer of a covered partition due before this is held (or fired); 0: nothing read yet. */
  private horizonEnd = 0;
  /** Partitions read up to `horizonEnd` (`all`: the whole store, when `partitions()` is null). */
  private covered = new Set<number>();
  private coveredAll = false;
  /** Partitions seen by the last `refresh()`: a new one there is read in full. */
  private known = new Set<number>();
  private lastFullRead = 0;
  /** Requests for the next pass: read everything in full, or these partitions in full. */
  private wantFull = false;
  private readonly wantParts = new Set<number>();
  private dirty = false;
  private running = false;
  private waiters: (() => void)[] = [];
  private failures = 0;
  /** Notes that arrived while a read ran (null: no read running); applied again after it. */
  private notesDuringRead: [TimerKey, number | null, number | undefined][] | null = null;
  /**
   * Keys fired at a due time whose change has not reached the store yet (a woken session reads
   * `sleeping` until its wake commits): a re-read must not fire them again. Cleared by the note
   * that follows the commit; a read after `FIRED_TTL_MS` may fire it again (a load that failed).
   */
  private readonly fired = new Map<TimerKey, Fired>();
  private timer: unknown;
  private armedFor = Infinity;
  private reloadTimer: unknown;
  private stopped = false;
  private readonly pageSize: number;
  private readonly fullReadEveryMs: number;
  private readonly leadMs: number;
  /** Firing lateness (ms) of recent timers, for metrics and benchmarks. */
  readonly lateness: number[] = [];
  private readonly unadjust: (() => void) | undefined;

  constructor(private readonly deps: SchedulerDeps) {
    this.pageSize = Math.max(1, deps.pageSize ?? PAGE);
    this.fullReadEveryMs = deps.fullReadEveryMs ?? FULL_READ_EVERY_MS;
    this.leadMs = deps.onWakeSoon ? Math.max(0, deps.leadMs ?? 0) : 0;
    // A clock corrected forward (synchronised with the store's: runtime/storeClock.ts) makes the
    // armed delay too long by the correction: re-arm from the corrected now.
    this.unadjust = deps.clock.onAdjust?.(() => { this.arm(); });
  }

  /**
   * Loads the horizon (firing what is overdue) and starts the periodic re-read. Resolves after
   * the first read, whether it succeeded or not (a failed one is retried on a timer).
   */
  async start(): Promise<void> {
    await this.request();
  }

  /** Number of timers held in memory. */
  heldCount(): number { return this.expected.size; }

  /** The next due time this node knows of for a key (null: none within the horizon). */
  nextFor(key: TimerKey): number | null { return this.expected.get(key)?.at ?? null; }

  /** Resolves when no read is running or requested (tests and benchmarks). */
  async settled(): Promise<void> {
    while ((this.running || this.dirty) && !this.stopped) await new Promise<void>((r) => { this.waiters.push(r); });
  }

  /**
   * Tells the scheduler a key's due time changed (after the commit that stored it), or was
   * cleared (null). `partition` is the key's partition, when the caller knows it. Times beyond
   * the horizon are left to the next read.
   */
  note(key: TimerKey, at: number | null, partition?: number): void {
    if (this.stopped) return;
    this.notesDuringRead?.push([key, at, partition]);
    this.applyNote(key, at, partition);
  }

  /**
   * Clears the fired mark of `key` and holds it again at `at`: for a firing whose effect did not
   * happen (the host could not deliver a wake; a dropped session took it along), which the mark
   * would otherwise hold back until a full read after FIRED_TTL_MS (30 s to 5 min). The same as
   * noting the key cleared and then due at `at`, as one call.
   *
   * @example scheduler.rearm(`wake:${sid}`, dueAt, partition); // fires again now if dueAt passed
   */
  rearm(key: TimerKey, at: number, partition?: number): void {
    this.note(key, null, partition);
    this.note(key, at, partition);
  }

  /**
   * Asks for a read now because the partitions this node owns changed (call it after taking
   * or releasing a partition; without arguments it compares `partitions()` with what it saw
   * last). A partition that is new is read in full; one that is gone is forgotten. When nothing
   * seems to have changed (a partition released and taken back), everything is read in full.
   * Calls made while a read runs are coalesced into one read after it. Never rejects.
   */
  refresh(partitions?: readonly number[]): Promise<void> {
    if (this.stopped) return Promise.resolve();
    const now = this.deps.partitions();
    if (partitions) {
      for (const p of partitions) { this.wantParts.add(p); this.covered.delete(p); }
      if (now) this.forget(this.known, new Set(now));
    } else if (now === null) {
      this.wantFull = true;
    } else {
      const set = new Set(now);
      let changed = false;
      for (const p of set) if (!this.known.has(p)) { changed = true; this.wantParts.add(p); this.covered.delete(p); }
      if (this.forget(this.known, set)) changed = true;
      if (!changed) this.wantFull = true;
    }
    if (now) this.known = new Set(now);
    return this.request();
  }

  /**
   * Partition `p` is let go (its release): its held timers and fired marks are forgotten now,
   * whatever `partitions()` still says. When this node takes `p` again it reads it in full and
   * fires its overdue timers — also one it fired before it let go, whose wake may have been
   * dropped with the partition's sessions. (A release used to only `refresh()`, and a graceful one
   * runs while its lease is still held: the fired mark stayed, and the taken-back partition's
   * overdue wake was held back until the next full read, up to 5 minutes.)
   */
  released(p: number): void {
    if (this.stopped) return;
    this.known.delete(p);
    this.covered.delete(p);
    for (const [k, h] of this.expected) if (h.part === p) this.expected.delete(k);
    for (const [k, f] of this.fired) if (f.part === p) this.fired.delete(k);
  }

  stop(): void {
    this.stopped = true;
    this.unadjust?.();
    if (this.timer !== undefined) this.deps.clock.clearTimeout(this.timer);
    if (this.reloadTimer !== undefined) this.deps.clock.clearTimeout(this.reloadTimer);
    this.timer = undefined;
    this.reloadTimer = undefined;
    this.heap.clear();
    this.soon.clear();
    this.expected.clear();
    for (const w of this.waiters.splice(0)) w();
  }

  // ---- reads -----------------------------------------------------------------------------

  /** Requests a read pass; resolves when a pass that started after this call has ended. */
  private request(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.dirty = true;
    const done = new Promise<void>((r) => { this.waiters.push(r); });
    if (!this.running) void this.runPasses();
    return done;
  }

  /** The only reader: runs passes one at a time while some are requested. */
  private async runPasses(): Promise<void> {
    this.running = true;
    let ok = true;
    try {
      while (this.dirty && !this.stopped) {
        this.dirty = false;
        if (this.reloadTimer !== undefined) { this.deps.clock.clearTimeout(this.reloadTimer); this.reloadTimer = undefined; }
        const waiting = this.waiters.splice(0);
        ok = await this.pass();
        for (const w of waiting) w();
        if (!ok) break; // retried on a timer below: the store is failing, do not spin on it
      }
    } finally {
      this.running = false;
    }
    if (this.stopped || ok) for (const w of this.waiters.splice(0)) w();
    if (this.stopped) return;
    if (ok) {
      this.failures = 0;
      this.later(Math.max(1000, this.deps.horizonMs / 2));
    } else {
      this.failures++;
      this.later(Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** (this.failures - 1)));
    }
    // After a failure, waiters that arrived during the failed pass are answered by the retry.
  }

  /** Arms the next pass after `ms`. */
  private later(ms: number): void {
    if (this.reloadTimer !== undefined) this.deps.clock.clearTimeout(this.reloadTimer);
    this.reloadTimer = this.deps.clock.setTimeout(() => { this.reloadTimer = undefined; void this.request(); }, ms);
  }

  /** One read pass: true when every read in it succeeded. */
  private async pass(): Promise<boolean> {
    const { clock, horizonMs } = this.deps;
    const now = clock.now();
    const end = now + horizonMs;
    const parts = this.deps.partitions();
    const full = this.wantFull || this.horizonEnd === 0 || now - this.lastFullRead >= this.fullReadEveryMs;
    const wantParts = [...this.wantParts];
    this.wantFull = false;
    this.wantParts.clear();

    const specs: ReadSpec[] = [];
    let coverAfter: Set<number> | null = null;
    if (parts === null) {
      specs.push({ parts: null, from: full || !this.coveredAll || wantParts.length > 0 ? undefined : this.horizonEnd });
    } else {
      const owned = new Set(parts);
      this.forget(this.covered, owned);
      if (full) {
        if (parts.length > 0) specs.push({ parts: [...parts], from: undefined });
      } else {
        const stale = new Set(wantParts);
        const kept = parts.filter((p) => this.covered.has(p) && !stale.has(p));
        const added = parts.filter((p) => !this.covered.has(p) || stale.has(p));
        if (kept.length > 0) specs.push({ parts: kept, from: this.horizonEnd });
        if (added.length > 0) specs.push({ parts: added, from: undefined });
      }
      coverAfter = owned;
    }

    this.notesDuringRead = [];
    try {
      for (const s of specs) {
        await this.readAll(s, end);
        if (this.stopped) return true;
      }
    } catch (err) {
      // Nothing this pass read counts as covered: horizonEnd and `covered` are unchanged, so
      // the retry reads every range of this pass again; the requests it consumed stand.
      if (full) this.wantFull = true;
      for (const p of wantParts) this.wantParts.add(p);
      this.replayNotes();
      if (!this.stopped) this.deps.logger.warn({ err }, 'scheduler could not read timers; retrying the whole read');
      return false;
    }
    this.horizonEnd = Math.max(this.horizonEnd, end);
    if (full) this.lastFullRead = now;
    if (coverAfter) {
      // A partition asked for in full while this pass ran (taken again, say) is not covered by it.
      for (const p of this.wantParts) coverAfter.delete(p);
      this.covered = coverAfter;
    } else if (!this.wantFull) {
      this.coveredAll = true;
    }
    this.replayNotes();
    this.arm();
    return true;
  }

  /** Reads one spec's wakes and crons due before `end`, every page of them. */
  private async readAll(s: ReadSpec, end: number): Promise<void> {
    const { store } = this.deps;
    await this.pageThrough(
      (limit, from) => store.dueWakes(s.parts, end, limit, from),
      (r) => r.wakeAt,
      (r) => `wake:${r.sessionId}` as const,
      (r) => r.partition,
      s.from,
    );
    await this.pageThrough(
      (limit, from) => store.dueSchedules(s.parts, end, limit, from),
      (r) => r.nextRunAt ?? Number.NEGATIVE_INFINITY,
      (r) => `cron:${r.id}` as const,
      (r) => r.partition,
      s.from,
    );
  }

  /**
   * Keyset paging by (due time, key) over a query that only takes an inclusive lower bound:
   * the next page starts at the last due time read, and the keys already read at exactly that
   * time are skipped. A page made only of one due time that holds more rows than the page is
   * read again with a larger limit, so equal due times never stall the read.
   */
  private async pageThrough<R>(
    fetch: (limit: number, from: number | undefined) => Promise<readonly R[]>,
    atOf: (r: R) => number, keyOf: (r: R) => TimerKey, partOf: (r: R) => number, from: number | undefined,
  ): Promise<void> {
    let cursor = from;
    let seenAtCursor = new Set<TimerKey>();
    let limit = this.pageSize;
    for (;;) {
      const rows = await fetch(limit, cursor);
      if (this.stopped) return;
      for (const r of rows) {
        const at = atOf(r);
        if (!Number.isFinite(at)) continue;
        const key = keyOf(r);
        if (at === cursor && seenAtCursor.has(key)) continue;
        this.hold(key, at, partOf(r));
      }
      if (rows.length < limit) return;
      const last = atOf(rows[rows.length - 1]!);
      if (last === cursor) {
        limit *= 2; // every row of the page has the cursor's due time: read more of them at once
      } else {
        cursor = last;
        seenAtCursor = new Set();
        limit = this.pageSize;
      }
      for (const r of rows) if (atOf(r) === cursor) seenAtCursor.add(keyOf(r));
    }
  }

  /** Applies again the notes that arrived during a read (it may predate their commits). */
  private replayNotes(): void {
    const notes = this.notesDuringRead ?? [];
    this.notesDuringRead = null;
    for (const [key, at, part] of notes) this.applyNote(key, at, part);
  }

  /**
   * Removes from `set` the partitions not in `owned`, with their held and fired timers; true
   * when any was removed.
   */
  private forget(set: Set<number>, owned: ReadonlySet<number>): boolean {
    const gone = [...set].filter((p) => !owned.has(p));
    if (gone.length === 0) return false;
    for (const p of gone) { set.delete(p); this.covered.delete(p); }
    const lost = new Set(gone);
    for (const [k, h] of this.expected) if (h.part !== undefined && lost.has(h.part)) this.expected.delete(k);
    for (const [k, f] of this.fired) if (f.part !== undefined && lost.has(f.part)) this.fired.delete(k);
    return true;
  }

  // ---- holding and firing ----------------------------------------------------------------

  private applyNote(key: TimerKey, at: number | null, part: number | undefined): void {
    const f = this.fired.get(key);
    if (f && (at === null || f.at !== at)) this.fired.delete(key);
    if (at === null) { this.expected.delete(key); return; }
    if (at >= this.horizonEnd) { this.expected.delete(key); return; } // the next read covers it
    this.hold(key, at, part);
  }

  /** Holds a key due at `at` (read from the store, or noted within the horizon). */
  private hold(key: TimerKey, at: number, part: number | undefined): void {
    const f = this.fired.get(key);
    if (f) {
      // Fired at this time and the store has not caught up (the wake's commit is on its way).
      // After FIRED_TTL_MS a read fires it again: a wake whose load failed is retried, and one
      // that did happen is a no-op (the host checks the session's state).
      if (f.at === at && this.deps.clock.now() - f.firedAt <= FIRED_TTL_MS) return;
      this.fired.delete(key);
    }
    const cur = this.expected.get(key);
    if (cur?.at === at) {
      if (cur.part === undefined && part !== undefined) this.expected.set(key, { at, part });
      return;
    }
    this.expected.set(key, { at, part: part ?? cur?.part });
    const e = { at, key };
    this.heap.push(e);
    if (this.leadMs > 0 && key.startsWith('wake:')) {
      this.soon.push(e);
      if (at - this.leadMs < this.armedFor) this.arm();
    } else if (at < this.armedFor) {
      this.arm();
    }
  }

  /**
   * The time timers are due by: the clock's earliest possible now (a clock synchronised with the
   * store's is only known within a round trip; firing by the lower bound keeps every timer from
   * firing early), or its now.
   */
  private dueNow(): number {
    const c = this.deps.clock;
    return c.earliestNow ? c.earliestNow() : c.now();
  }

  /** When the timer must next run: the earliest due time, or the earliest announcement. */
  private nextRun(): number {
    const due = this.heap.peek()?.at ?? Infinity;
    const soon = this.soon.peek();
    return soon ? Math.min(due, soon.at - this.leadMs) : due;
  }

  private arm(): void {
    if (this.stopped) return;
    const next = this.nextRun();
    if (this.timer !== undefined) { this.deps.clock.clearTimeout(this.timer); this.timer = undefined; }
    if (next === Infinity) { this.armedFor = Infinity; return; }
    this.armedFor = next;
    const delay = Math.min(MAX_DELAY, Math.max(0, next - this.dueNow()));
    this.timer = this.deps.clock.setTimeout(() => { this.timer = undefined; this.fire(); }, delay);
  }

  /**
   * Fires what is due and announces what falls due within `leadMs`, at most FIRE_SLICE of them
   * per call; the rest continue on a timer armed for now (see the module comment).
   */
  private fire(): void {
    const now = this.dueNow();
    let budget = FIRE_SLICE;
    let owned: ReadonlySet<number> | null | undefined;
    const ownedParts = (): ReadonlySet<number> | null => {
      if (owned === undefined) { const p = this.deps.partitions(); owned = p ? new Set(p) : null; }
      return owned;
    };
    for (let top = this.heap.peek(); top && top.at <= now && budget > 0; top = this.heap.peek()) {
      this.heap.pop();
      const held = this.expected.get(top.key);
      if (held?.at !== top.at) continue; // superseded
      this.expected.delete(top.key);
      const parts = ownedParts();
      if (parts && held.part !== undefined && !parts.has(held.part)) continue; // its partition moved away
      budget--;
      this.fired.set(top.key, { at: top.at, firedAt: now, part: held.part });
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
    // Then announcements, with what is left of the slice (due timers go first).
    for (let top = this.soon.peek(); top && top.at - this.leadMs <= now && budget > 0; top = this.soon.peek()) {
      this.soon.pop();
      if (top.at <= now) continue; // due already: it fired above (or fires in the next slice); no time left to load ahead
      const held = this.expected.get(top.key);
      if (held?.at !== top.at) continue; // superseded
      const parts = ownedParts();
      if (parts && held.part !== undefined && !parts.has(held.part)) continue; // its partition moved away
      budget--;
      try {
        this.deps.onWakeSoon?.(top.key.slice(5), top.at);
      } catch (err) {
        this.deps.logger.error({ err, key: top.key }, 'timer look-ahead handler failed');
      }
    }
    this.arm(); // also covers a callback that ran early: the entry is still at the top
  }
}
