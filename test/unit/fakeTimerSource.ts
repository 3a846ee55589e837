// An in-memory timer source for the scheduler's unit tests: the rows a store would hold, and
// reads that a test can make fail, hang until released, or cut into small pages. It answers
// exactly as persistence/wakeQueries.ts does ([from, before), ordered by due time then id,
// LIMIT), taking its snapshot when the read starts, as Postgres does.
import type { TimerSource } from '../../runtime/scheduler.js';
import type { DueWake, ScheduleRecord } from '../../persistence/types.js';

export interface ReadCall {
  readonly kind: 'wakes' | 'crons';
  readonly parts: readonly number[] | null;
  readonly before: number;
  readonly limit: number;
  readonly from: number | undefined;
}

export class FakeTimerSource implements TimerSource {
  readonly wakes = new Map<string, { at: number; part: number }>();
  readonly crons = new Map<string, { at: number; part: number }>();
  readonly calls: ReadCall[] = [];
  /** Reads running now, and the most that ever ran at once. */
  inFlight = 0;
  maxInFlight = 0;
  /** The next N reads reject (as a pg pool that timed out waiting for a connection does). */
  failNext = 0;
  /** After this many more successful reads, one read fails (the second page of a read, say); -1: off. */
  failAfterCalls = -1;
  private gate: Promise<void> | null = null;
  private openGate: (() => void) | null = null;

  /** Reads from now on wait (after taking their snapshot) until `release()`. */
  hold(): void {
    if (this.gate) return;
    this.gate = new Promise<void>((r) => { this.openGate = r; });
  }

  release(): void {
    this.openGate?.();
    this.gate = null;
    this.openGate = null;
  }

  /** A session sleeping until `at` in partition `part` (what a commit stores). */
  sleep(sid: string, at: number, part = 0): void { this.wakes.set(sid, { at, part }); }

  /** A session that woke (its commit cleared wake_at). */
  woke(sid: string): void { this.wakes.delete(sid); }

  dueWakes(parts: readonly number[] | null, before: number, limit: number, from?: number): Promise<DueWake[]> {
    const rows = this.select(this.wakes, parts, before, limit, from)
      .map(([id, w]) => ({ sessionId: id, wakeAt: w.at, status: 'sleeping' as const, partition: w.part }));
    return this.answer({ kind: 'wakes', parts, before, limit, from }, rows);
  }

  dueSchedules(parts: readonly number[] | null, before: number, limit: number, from?: number): Promise<ScheduleRecord[]> {
    const rows = this.select(this.crons, parts, before, limit, from).map(([id, c]) => ({
      id, sessionId: `s-${id}`, partition: c.part, task: null, cron: '* * * * *', timezone: 'UTC', nextRunAt: c.at, lastRunAt: null, createdAt: 0,
    }));
    return this.answer({ kind: 'crons', parts, before, limit, from }, rows);
  }

  private select(m: Map<string, { at: number; part: number }>, parts: readonly number[] | null, before: number, limit: number, from: number | undefined): [string, { at: number; part: number }][] {
    return [...m].filter(([, x]) => x.at < before && (from === undefined || x.at >= from) && (!parts || parts.includes(x.part)))
      .sort((a, b) => a[1].at - b[1].at || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .slice(0, limit);
  }

  private async answer<T>(call: ReadCall, rows: T[]): Promise<T[]> {
    this.calls.push(call);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.failAfterCalls === 0 || this.failNext > 0) {
        if (this.failAfterCalls === 0) this.failAfterCalls = -1;
        else this.failNext--;
        await Promise.resolve();
        throw new Error('timeout exceeded when trying to connect');
      }
      if (this.failAfterCalls > 0) this.failAfterCalls--;
      if (this.gate) await this.gate;
      else await new Promise((r) => setImmediate(r));
      return rows;
    } finally {
      this.inFlight--;
    }
  }
}
