/**
 * Owns readiness: whether this node can do its work now. It pings the store (`store.ping()`)
 * and NATS (`nc.flush()`: a PING answered by a PONG) on its own timer, each ping with a
 * deadline, and reports `{ ok, checks: { nats, store, migrations } }` for `/readyz`.
 *
 * Faults it sees: a server that refuses or resets (the ping rejects) and a blackholed one (TCP
 * accepts and never answers, so the ping never settles): a ping still outstanding at its
 * deadline counts as failed. No second ping of a check is started while one is outstanding, so
 * a blackhole costs one stuck request, not one per interval; the check turns healthy again when
 * the outstanding ping settles successfully (a healed connection) or when it fails and a later
 * one succeeds (a reset one). A NATS connection closed for good is not ready. Each check logs
 * once when it turns bad and once when it recovers, never once per ping.
 */
import type { Logger } from './logger.js';
import { realClock, type Clock } from './clock.js';

/** What readiness reports (the `/readyz` body). */
export interface Readiness {
  readonly ok: boolean;
  /** `streams` (set by the runtime): false while one of its JetStream streams is missing (runtime/streamKeeper.ts). */
  readonly checks: { readonly nats: boolean; readonly store: boolean; readonly migrations: boolean; readonly streams?: boolean };
  /**
   * Set (by the runtime) only when something is known to be wrong that does not stop the node
   * from working: it never makes `ok` false. Today: a nats-server cluster of a version known to
   * lose acknowledged messages (`NATS_SERVER_CLUSTER_FAULTS`, runtime/transport.ts).
   */
  readonly warnings?: readonly { readonly code: string; readonly message: string }[];
}

export interface HealthOptions {
  /** The store: a cheap round trip (`SELECT 1`). */
  readonly store: { ping(): Promise<void> };
  /** The NATS connection: `flush()` round-trips a PING; `isClosed()` is true once it gave up. */
  readonly nc: { flush(): Promise<void>; isClosed?(): boolean };
  /** Whether the group committer can commit (false while it is failing). Default: always. */
  readonly committerHealthy?: () => boolean;
  /** Whether the schema is current. Default: always (the runtime migrates before it starts). */
  readonly migrations?: () => boolean;
  /** Time between pings of each check; default 1000 ms. */
  readonly intervalMs?: number;
  /** A ping outstanding this long counts as failed; default 2000 ms. */
  readonly timeoutMs?: number;
  readonly logger: Logger;
  /**
   * Timers for the pings and their deadlines; default the real clock. Deadlines are about wall
   * time: do not pass a runtime's fake clock (a test that advances it by an hour would fire
   * 3,600 ping rounds); only this module's own tests inject one.
   */
  readonly clock?: Clock;
}

/** A running set of readiness checks. */
export interface Health {
  /** The current readiness, from the latest pings (never waits for one). */
  readiness(): Readiness;
  /** Stops pinging (a ping still outstanding is ignored). */
  stop(): void;
}

/** One pinged dependency: its last verdict and the ping outstanding, if any. */
class Probe {
  ok = true;
  private outstanding: number | null = null; // attempt number of the ping in flight
  private attempt = 0;
  private deadline: unknown;

  constructor(
    private readonly name: 'store' | 'nats',
    private readonly ping: () => Promise<void>,
    private readonly timeoutMs: number,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  /** Starts a ping unless one is outstanding. */
  tick(): void {
    if (this.outstanding !== null) return;
    const id = ++this.attempt;
    this.outstanding = id;
    this.deadline = this.clock.setTimeout(() => {
      if (this.outstanding === id) this.verdict(false, { timeoutMs: this.timeoutMs }, `no answer within ${this.timeoutMs} ms`);
    }, this.timeoutMs);
    (this.deadline as { unref?: () => void } | undefined)?.unref?.();
    let p: Promise<void>;
    try { p = this.ping(); } catch (err) { p = Promise.reject(err instanceof Error ? err : new Error(String(err))); }
    p.then(
      () => { if (this.settle(id)) this.verdict(true); },
      (err: unknown) => { if (this.settle(id)) this.verdict(false, { err }, 'ping failed'); },
    );
  }

  stop(): void {
    this.outstanding = -1; // nothing settles any more, and no new ping starts
    if (this.deadline !== undefined) this.clock.clearTimeout(this.deadline);
  }

  /** Marks attempt `id` settled; false when it is not the one outstanding (stopped). */
  private settle(id: number): boolean {
    if (this.outstanding !== id) return false;
    this.outstanding = null;
    if (this.deadline !== undefined) this.clock.clearTimeout(this.deadline);
    this.deadline = undefined;
    return true;
  }

  private verdict(ok: boolean, fields: Record<string, unknown> = {}, why = ''): void {
    if (ok === this.ok) return;
    this.ok = ok;
    if (ok) this.logger.info({ check: this.name }, `${this.name} reachable again: ready`);
    else this.logger.warn({ check: this.name, ...fields }, `${this.name} ${why}: not ready`);
  }
}

/**
 * Starts pinging the store and NATS (now, then every `intervalMs`) and answers readiness from
 * the results.
 *
 * @example
 * const health = createHealth({ store, nc: transport.nc, committerHealthy: () => committer.healthy(), logger });
 * app.get('/readyz', () => health.readiness());
 * // on shutdown: health.stop();
 */
export function createHealth(opts: HealthOptions): Health {
  const clock = opts.clock ?? realClock;
  const intervalMs = opts.intervalMs ?? 1000;
  const timeoutMs = opts.timeoutMs ?? 2000;
  const store = new Probe('store', () => opts.store.ping(), timeoutMs, clock, opts.logger);
  const nats = new Probe('nats', () => opts.nc.flush(), timeoutMs, clock, opts.logger);
  let timer: unknown;
  let stopped = false;

  const loop = (): void => {
    if (stopped) return;
    store.tick();
    nats.tick();
    timer = clock.setTimeout(loop, intervalMs);
    // The real clock's timer must not keep a stopping process alive.
    (timer as { unref?: () => void } | undefined)?.unref?.();
  };
  loop();

  return {
    readiness() {
      const checks = {
        nats: nats.ok && !(opts.nc.isClosed?.() ?? false),
        store: store.ok && (opts.committerHealthy?.() ?? true),
        migrations: opts.migrations?.() ?? true,
      };
      return { ok: checks.nats && checks.store && checks.migrations, checks };
    },
    stop() {
      stopped = true;
      if (timer !== undefined) clock.clearTimeout(timer);
      store.stop();
      nats.stop();
    },
  };
}
