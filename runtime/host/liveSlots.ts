/**
 * Owns `maxLiveSessions`: which sessions have an actor in memory on this node, in LRU order,
 * and the slots hydrations wait for. A hydration reserves a slot (`admit`) before it reads the
 * store, evicting the least recently used *quiescent* session when the node is full — one with
 * no pin, no commit in flight, no unacked message, no pending mail, not active and nothing
 * unsubmitted — and otherwise waits in FIFO order. Idle sessions are passivated after
 * `idleTimeoutMs` (`passivateIdle`); evicted ones hydrate again from their snapshot when needed.
 *
 * Finding a session to evict looks at EVICT_SCAN sessions at most per attempt, with a hand that
 * goes on from where the last attempt stopped (from the least recently used end, wrapping
 * around): an approximation of LRU (CLOCK). It used to scan from the front on every attempt:
 * with the node full of busy sessions and thousands of hydrations waiting, every commit woke a
 * waiter that walked the same busy sessions — and the holes that `touch` leaves at the front of
 * the Map — again: 54 % of the runtime's CPU in the 100k-sleepers benchmark on a loaded machine
 * (docs/benchmarks-wakeups.md). Moving the busy ones to the back instead (tried) cost as much:
 * each move leaves another hole at the front. Once a full round found every session busy, a
 * change (a commit settled, an unpin) is checked alone (`admitNext(s)`): a waiter is woken only
 * when that session is quiescent (it is evicted first) or there is room; each commit used to wake
 * one to walk to the session it freed (16-18 % of the CPU at 100k sleepers, 2026-11-28 evening).
 *
 * Pins: a caller that hydrated or looked up a session holds it pinned until it has handed it its
 * messages or command, so a hydration waiting for a slot cannot evict it in between.
 *
 * Passivation and LRU order use wall-clock time, not the host's injected Clock: a fake clock
 * that tests freeze must not keep every session in memory (and it is never a correctness
 * matter: an evicted session re-hydrates).
 *
 * Not to be confused with activeSlots.ts (`maxActiveSessions`: handlers running).
 */
import { topState } from '../../actors/sessionMachine.js';
import type { LiveSession } from './liveSession.js';

/**
 * Live sessions one eviction attempt looks at before it gives up for this turn; the next attempt
 * goes on from where it stopped (a clock hand over the LRU order).
 */
export const EVICT_SCAN = 256;

/** What the slots need of the host. */
export interface LiveSlotsDeps {
  readonly maxLiveSessions: () => number;
  readonly idleTimeoutMs: () => number;
  /** Stops an evicted session's actor (aborting a run, fixing the active count). */
  readonly stop: (s: LiveSession) => void;
  /** Counts a passivation (HostStats). */
  readonly evicted: () => void;
}

/** Live-slot admission, LRU and passivation (see the module comment). */
export class LiveSlots {
  /** Live sessions by id; Map order is the LRU order (`touch` re-inserts). */
  readonly live = new Map<string, LiveSession>();
  /**
   * Hydrations waiting for a slot, FIFO from `head`. A woken waiter that finds nothing goes back
   * to the front: the slot `head` just left, so with thousands waiting neither that nor waking
   * the first moves the array (`unshift` and `shift` did: 3 % of the CPU at 100k sleepers).
   */
  private waiters: ((() => void) | undefined)[] = [];
  private head = 0;
  /** Slots reserved by hydrations in progress. */
  private reserved = 0;
  /** Set at shutdown: a waiting hydration gives up. */
  stopping = false;

  constructor(private readonly deps: LiveSlotsDeps) {}

  pin(s: LiveSession): LiveSession {
    s.pins++;
    return s;
  }

  unpin(s: LiveSession): void {
    s.pins--;
    this.admitNext(s); // it may be evictable now
  }

  /** Marks a session used now (LRU order, idle timer). */
  touch(s: LiveSession): void {
    s.lastActivity = Date.now();
    this.live.delete(s.id);
    this.live.set(s.id, s);
  }

  /** Whether a session can be evicted without losing or delaying anything. */
  quiescent(s: LiveSession): boolean {
    const snap = s.actor.getSnapshot();
    return s.pins === 0 && s.inflight === 0 && s.acks.size === 0 && topState(snap.value) !== 'active' && snap.context.pending.length === 0 && s.submittedVersion === snap.context.version;
  }

  evict(s: LiveSession): void {
    this.deps.stop(s);
    this.live.delete(s.id);
    this.deps.evicted();
  }

  /** Evicts the sessions idle longer than `idleTimeoutMs` that are quiescent. */
  passivateIdle(): void {
    const cutoff = Date.now() - this.deps.idleTimeoutMs();
    for (const s of this.live.values()) {
      if (s.lastActivity > cutoff) break; // LRU order: the rest are newer
      if (this.quiescent(s)) this.evict(s);
    }
    this.admitNext();
  }

  /** Waits until a live slot is free, evicting the least recently used quiescent sessions; reserves it. */
  async admit(): Promise<void> {
    let waited = false;
    for (;;) {
      if (this.live.size + this.reserved < this.deps.maxLiveSessions()) { this.reserved++; break; }
      const found = this.evictOne();
      if (this.live.size + this.reserved < this.deps.maxLiveSessions()) { this.reserved++; break; }
      if (this.stopping) throw new Error('runtime is shutting down');
      // Back in line, at the front if it was already waiting: FIFO among hydrations.
      await new Promise<void>((r) => {
        if (!waited) this.waiters.push(r);
        else if (this.head > 0) this.waiters[--this.head] = r;
        else this.waiters.unshift(r);
        // Only part of the sessions was looked at: look further next turn, not only at the next commit.
        if (found === 'partial') this.lookFurther();
      });
      waited = true;
    }
    if (waited) this.admitNext(); // pass the baton: there may be room for the next one too
  }

  /**
   * Evicts the first quiescent session among the next EVICT_SCAN the hand reaches. `partial`:
   * none found, but not every session was looked at since something last changed.
   */
  private evictOne(): 'evicted' | 'none' | 'partial' {
    // After a full pass found nothing, only the sessions changed since can have become quiescent.
    while (this.changed.length > 0) {
      const c = this.changed.pop()!;
      if (this.live.get(c.id) === c && this.quiescent(c)) { this.evict(c); return 'evicted'; }
    }
    let restarted = false;
    for (let looked = 0; looked < EVICT_SCAN;) {
      if (!this.hand) {
        if (restarted) break; // every session looked at in this attempt
        this.hand = this.live.values();
        restarted = true;
      }
      const next = this.hand.next();
      if (next.done) { this.hand = null; continue; }
      looked++;
      if (this.quiescent(next.value)) { this.evict(next.value); this.passedSinceEvict = 0; return 'evicted'; }
      this.passedSinceEvict++;
    }
    // Every session was looked at since the last change: wait for a commit or an unpin to free one.
    return this.passedSinceEvict < this.live.size ? 'partial' : 'none';
  }

  /** Where the next eviction attempt looks (null: from the least recently used end). */
  private hand: Iterator<LiveSession> | null = null;

  /** Busy sessions passed by eviction attempts since the last eviction or `admitNext`. */
  private passedSinceEvict = 0;
  /**
   * Sessions that changed (a commit settled, an unpin) after a full pass of the hand found none
   * quiescent: the only ones that can be evicted now, so an attempt looks at them first (see
   * `admitNext`). Never more entries than changes made while hydrations wait, and emptied by the
   * next eviction attempts or a full reset.
   */
  private changed: LiveSession[] = [];
  private lookingFurther = false;

  /** Lets the first waiter try again next turn (one such retry at a time). */
  private lookFurther(): void {
    if (this.lookingFurther) return;
    this.lookingFurther = true;
    setImmediate(() => { this.lookingFurther = false; this.wakeFirst(); });
  }

  /**
   * Reserves a live slot only if one is free now, or a quiescent session can make room (it is
   * evicted), and no hydration is waiting for one: never waits and never jumps the line. For work
   * that may be skipped (loading a session ahead of its wake). Give the slot back with `release`.
   */
  tryAdmit(): boolean {
    if (this.stopping || this.waiting() > 0) return false;
    if (this.live.size + this.reserved < this.deps.maxLiveSessions()) { this.reserved++; return true; }
    this.evictOne();
    if (this.live.size + this.reserved < this.deps.maxLiveSessions()) { this.reserved++; return true; }
    return false;
  }

  /** Gives back a slot `admit` or `tryAdmit` reserved (the session is live now, or was not made). */
  release(): void {
    this.reserved--;
    // Room, not a session that became quiescent (a session made here is pinned; its unpin says so).
    this.wakeFirst();
  }

  /**
   * Lets the first waiting hydration re-check for a slot (after a release, an eviction or a
   * commit); if it gets one, it wakes the next. Waking all of them made every commit cost
   * waiters × live-sessions quiescence checks: with thousands of hydrations queued that
   * quadratic scan took most of the CPU and starved the event loop (pool connect timeouts).
   */
  admitNext(s?: LiveSession): void {
    if (s !== undefined && this.waiting() > 0 && this.passedSinceEvict >= this.live.size) {
      // Every session was looked at since the last eviction and none was quiescent: `s` is the
      // only one this change can have freed. Checking it alone, not walking the hand over the
      // node again, is the same choice at O(1): with 10,000 busy live sessions and hydrations
      // waiting (100k sleepers), each commit's walk to the session it freed, up to a full round
      // of quiescence checks, was 16 % of the runtime's CPU (docs/benchmarks-wakeups.md).
      // A session still busy frees nothing: no waiter is woken to find that out again (unless
      // there is room, e.g. `s` was dropped). One that becomes quiescent without a settled commit
      // or an unpin (an ack let go by a partition release) is found by `passivateIdle`, which the
      // host's sweeper runs at least every second: it resets the scan and wakes a waiter.
      if (this.live.get(s.id) === s && this.quiescent(s)) { if (this.changed.length < this.live.size) this.changed.push(s); }
      else if (this.live.size + this.reserved >= this.deps.maxLiveSessions()) return;
    } else {
      this.passedSinceEvict = 0; // something changed: every session may be looked at again
      this.changed.length = 0;
    }
    this.wakeFirst();
  }

  /** Hydrations waiting for a slot. */
  private waiting(): number {
    return this.waiters.length - this.head;
  }

  private wakeFirst(): void {
    if (this.head >= this.waiters.length) return;
    const w = this.waiters[this.head]!;
    this.waiters[this.head++] = undefined;
    if (this.head === this.waiters.length) { this.waiters = []; this.head = 0; }
    else if (this.head > 1024 && this.head * 2 > this.waiters.length) { this.waiters = this.waiters.slice(this.head); this.head = 0; }
    w();
  }

  /** Wakes every waiting hydration (shutdown: they see `stopping` and give up). */
  wakeAll(): void {
    const all = this.waiters.slice(this.head);
    this.waiters = [];
    this.head = 0;
    for (const w of all) w!();
  }
}
