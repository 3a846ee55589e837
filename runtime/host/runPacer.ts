/**
 * Owns when handler runs start, so that handlers that never await cannot starve the event loop.
 *
 * A run starts in a microtask after the transition that started it. A handler that does all its
 * work synchronously (CPU-bound code, a stub) finishes in that microtask, its RUN_DONE starts the
 * next batch in another microtask, and so on: a node with a thousand such sessions queued ran
 * them all back to back without ever returning to the event loop. Measured: 6–35 s without
 * I/O, during which lease renewals, NATS pings and Postgres answers all waited; every lease
 * lapsed and the partitions moved while their owner was merely busy.
 *
 * So runs start at once while the current event-loop turn has used less than `budgetMs` of
 * starting them; after that, further runs queue (FIFO) and start in later turns (setImmediate
 * callbacks, each with the same budget), between which Node polls for I/O. A handler that
 * awaits is unaffected: its run yields by itself.
 */
export class RunPacer {
  /** When the current turn's first run started (null: no run started since the last turn). */
  private turnStart: number | null = null;
  private queue: (() => void)[] = [];
  private head = 0;
  /** Runs that waited for a later turn (metrics, tests). */
  deferred = 0;

  constructor(private readonly budgetMs = 20, private readonly now: () => number = () => performance.now()) {}

  /** Starts `fn` in a microtask, or in a later turn of the event loop when this turn's budget is spent. */
  start(fn: () => void): void {
    if (this.head < this.queue.length) { this.defer(fn); return; } // keep FIFO behind the queued ones
    const now = this.now();
    if (this.turnStart === null) {
      this.turnStart = now;
      setImmediate(this.nextTurn);
    } else if (now - this.turnStart >= this.budgetMs) {
      this.defer(fn);
      return;
    }
    queueMicrotask(fn);
  }

  /** Runs waiting for a later turn. */
  waiting(): number {
    return this.queue.length - this.head;
  }

  private defer(fn: () => void): void {
    this.deferred++;
    this.queue.push(fn);
  }

  private readonly nextTurn = (): void => {
    this.turnStart = null;
    if (this.head >= this.queue.length) return;
    this.turnStart = this.now();
    setImmediate(this.nextTurn);
    // Each run's synchronous part executes here; its continuation (RUN_DONE, the next run) comes
    // in microtasks after this loop and counts against the same turn.
    while (this.head < this.queue.length && this.now() - this.turnStart < this.budgetMs) {
      const fn = this.queue[this.head]!;
      this.queue[this.head++] = undefined as never;
      try { fn(); } catch { /* a run start reports its own failures */ }
    }
    if (this.head >= this.queue.length) { this.queue = []; this.head = 0; }
    else if (this.head > 1024 && this.head * 2 > this.queue.length) { this.queue = this.queue.slice(this.head); this.head = 0; }
  };
}
