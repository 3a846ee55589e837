/**
 * Owns the PGlite store that runs off the main thread: the same `Store` as `createPgliteStore`,
 * served by a `worker_threads` Worker (`pgliteWorker.ts`) so Postgres-in-WASM, which takes
 * about half of a core at full load, no longer competes with the runtime's event loop.
 *
 * Each `Store` call is one message each way (a `commit` with 500 records is one message and one
 * transaction in the worker). The methods are those of the SQL store, listed from an inert
 * instance, so a method added to the contract is forwarded without a change here. Store errors
 * come back as the same classes with the same fields (`transferableErrors.ts`).
 *
 * Faults it survives, each with a test:
 * - The worker exits or crashes: every pending call rejects with a retryable
 *   `StoreUnavailableError`, and so do calls in the next `restartDelayMs`; the first call after
 *   that starts a new worker on the same data directory (PGlite recovers it like a restarted
 *   Postgres). An in-memory database died with its worker: its calls keep failing.
 * - The worker stops answering (WASM stuck): a call unanswered for `callTimeoutMs` terminates
 *   it, and it is handled as an exit. `migrate` is exempt (it may rewrite a large database).
 * - A value structured clone refuses: a function in a commit's snapshot is dropped (sent as
 *   JSON), as the in-thread store's `JSON.stringify` would; a function as any other argument is
 *   a `TypeError`; a value too deep to clone is a `StoreDataError`, as in-thread.
 * - `close()` waits at most `closeTimeoutMs` for PGlite to close, then terminates the thread.
 *
 * The worker keeps the process alive only while a call is pending, like in-thread I/O would.
 */
import { inspect } from 'node:util';
import { Worker } from 'node:worker_threads';
import { StoreUnavailableError } from './errors.js';
import { normalizePgError } from './normalizePgError.js';
import type { PgliteWorkerData, PgliteWorkerReply, PgliteWorkerRequest } from './pgliteWorker.js';
import type { SqlDb } from './sqlDb.js';
import { createSqlStore } from './sqlStore.js';
import { reviveError } from './transferableErrors.js';
import type { Store } from './types.js';

export interface PgliteWorkerStoreOptions {
  /** Directory holding the database; in memory (lost on close) when undefined. */
  readonly dataDir?: string;
  /** A call unanswered this long (ms) means the worker is stuck: it is terminated. Default 60 s; 0 turns it off. */
  readonly callTimeoutMs?: number;
  /** How long `close()` waits for PGlite to close before terminating the thread. Default 10 s. */
  readonly closeTimeoutMs?: number;
  /** After the worker died, calls fail at once for this long before one starts a new worker. Default 1 s. */
  readonly restartDelayMs?: number;
}

interface Pending {
  readonly method: string;
  readonly at: number;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

/** Methods that may legitimately run longer than `callTimeoutMs`. */
const UNTIMED = new Set(['migrate', 'close']);

const workers = new WeakMap<Store, () => Worker | null>();

/**
 * Creates a PGlite store whose database lives in a worker thread. Like `createPgliteStore`,
 * it returns at once and opens in the background; a failure to open surfaces from the first call.
 * @example
 * const store = createPgliteWorkerStore({ dataDir: '.agentry/db' });
 * await store.migrate();
 * await store.close(); // closes PGlite, then ends the thread
 */
export function createPgliteWorkerStore(opts: PgliteWorkerStoreOptions = {}): Store {
  const callTimeoutMs = opts.callTimeoutMs ?? 60_000;
  const closeTimeoutMs = opts.closeTimeoutMs ?? 10_000;
  const restartDelayMs = opts.restartDelayMs ?? 1_000;
  const pending = new Map<number, Pending>();
  let nextId = 1;
  let worker: Worker | null = null;
  let died: { readonly at: number; readonly error: StoreUnavailableError } | null = null;
  let closing: Promise<void> | null = null;
  let watchdog: NodeJS.Timeout | null = null;

  const start = (): Worker => {
    const w = spawnPgliteWorker({ dataDir: opts.dataDir });
    w.unref();
    let crash: unknown;
    w.on('message', (reply: PgliteWorkerReply) => { settle(w, reply); });
    w.on('error', (err) => { crash = err; });
    w.on('messageerror', (err) => {
      // A reply that cannot be read belongs to no call we can name: give up on this worker.
      lose(w, new StoreUnavailableError(`store unavailable: a reply from the PGlite worker could not be read: ${err.message}`, { cause: err }));
      void w.terminate();
    });
    w.on('exit', (code) => {
      const why = crash instanceof Error ? `: ${crash.message}` : '';
      lose(w, new StoreUnavailableError(`store unavailable: the PGlite worker exited (code ${code})${why}`, crash === undefined ? undefined : { cause: crash }));
    });
    return w;
  };

  /** Forgets `w` (when it is still the current worker) and fails every call waiting on it. */
  const lose = (w: Worker, error: StoreUnavailableError): void => {
    if (worker !== w) return;
    worker = null;
    died = { at: Date.now(), error };
    stopWatchdog();
    const waiting = [...pending.values()];
    pending.clear();
    for (const p of waiting) p.reject(error);
  };

  const settle = (w: Worker, reply: PgliteWorkerReply): void => {
    const p = pending.get(reply.id);
    if (!p) return; // its caller already gave up (timeout, close)
    pending.delete(reply.id);
    if (pending.size === 0) {
      w.unref();
      stopWatchdog();
    }
    if (reply.ok) p.resolve(reply.value);
    else p.reject(reviveError(reply.error));
  };

  const checkTimeouts = (): void => {
    const w = worker;
    if (!w) return;
    for (const p of pending.values()) { // insertion order: oldest first
      if (UNTIMED.has(p.method)) continue;
      if (Date.now() - p.at > callTimeoutMs) {
        lose(w, new StoreUnavailableError(`store unavailable: the PGlite worker did not answer ${p.method} within ${callTimeoutMs} ms and was terminated`));
        void w.terminate();
      }
      return;
    }
  };
  const stopWatchdog = (): void => {
    if (watchdog) clearInterval(watchdog);
    watchdog = null;
  };

  /** The worker to call, started again after a death when that is safe; or why there is none. */
  const current = (): Worker | StoreUnavailableError => {
    if (closing) return new StoreUnavailableError('store unavailable: PGlite is closed');
    if (worker) return worker;
    if (died && (opts.dataDir === undefined || Date.now() - died.at < restartDelayMs)) return died.error;
    died = null;
    worker = start();
    return worker;
  };

  const call = (method: string, args: readonly unknown[]): Promise<unknown> => {
    const w = current();
    if (w instanceof StoreUnavailableError) return Promise.reject(w);
    const id = nextId++;
    try {
      post(w, { id, method, args });
    } catch (err) {
      return Promise.reject(asError(err));
    }
    return new Promise((resolve, reject) => {
      pending.set(id, { method, at: Date.now(), resolve, reject });
      if (pending.size === 1) {
        w.ref();
        if (callTimeoutMs > 0) {
          watchdog = setInterval(checkTimeouts, Math.max(10, Math.min(1000, callTimeoutMs / 4)));
          watchdog.unref();
        }
      }
    });
  };

  const close = (): Promise<void> => {
    closing ??= (async () => {
      const w = worker;
      if (!w) return;
      w.ref();
      let failed: unknown;
      const id = nextId++;
      const answered = new Promise<void>((resolve) => {
        pending.set(id, {
          method: 'close', at: Date.now(),
          resolve: () => { resolve(); },
          reject: (err: unknown) => { failed = err; resolve(); },
        });
      });
      let timer: NodeJS.Timeout | undefined;
      try {
        post(w, { id, method: 'close', args: [] });
        await Promise.race([answered, new Promise<void>((resolve) => { timer = setTimeout(resolve, closeTimeoutMs); })]);
      } finally {
        clearTimeout(timer);
        lose(w, new StoreUnavailableError('store unavailable: PGlite is closed'));
        await w.terminate();
      }
      // An exit or an already closed database is what close wants; anything else is reported.
      if (failed !== undefined && !(failed instanceof StoreUnavailableError)) throw asError(failed);
    })();
    return closing;
  };

  const store: Record<string, unknown> = { kind: 'pglite' };
  for (const method of storeMethods()) store[method] = (...args: unknown[]) => call(method, args);
  store.close = close;
  workers.set(store as unknown as Store, () => worker);
  worker = start();
  return store as unknown as Store;
}

/**
 * The thread serving a store made by `createPgliteWorkerStore` (null while none runs), for
 * tests and diagnostics: e.g. `terminate()` it to see calls fail over.
 */
export function pgliteWorkerOf(store: Store): Worker | null {
  return workers.get(store)?.() ?? null;
}

/**
 * Methods whose arguments carry user data that the store turns into JSON (a handler's state in
 * `commit`'s snapshots), where a function or symbol is dropped in-thread by `JSON.stringify`.
 */
const JSON_DATA_METHODS = new Set(['commit']);

/**
 * Sends a request. For `JSON_DATA_METHODS`, an argument structured clone refuses (a function
 * inside a snapshot) is sent as its JSON round trip instead, which is what the in-thread store
 * would have stored; anywhere else such an argument is a programming error and a `TypeError`
 * (silently dropping an option would change what the call means). A value too deep to send at
 * all is a `StoreDataError` (via `normalizePgError`), as in-thread.
 */
function post(w: Worker, req: PgliteWorkerRequest): void {
  try {
    w.postMessage(req);
    return;
  } catch (err) {
    if (!(err instanceof Error && err.name === 'DataCloneError')) throw normalizePgError(err);
    if (!JSON_DATA_METHODS.has(req.method)) {
      throw new TypeError(`store.${req.method}: an argument cannot be passed to the PGlite worker thread (${err.message}); store methods take data, not functions`, { cause: err });
    }
  }
  const args = req.args.map((a) => {
    try {
      structuredClone(a);
      return a;
    } catch {
      try {
        return JSON.parse(JSON.stringify(a)) as unknown;
      } catch (err) {
        throw normalizePgError(err);
      }
    }
  });
  try {
    w.postMessage({ ...req, args });
  } catch (err) {
    throw normalizePgError(err);
  }
}

/** Errors are what `post` and revived replies give; anything else is wrapped, never lost. */
function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(inspect(err));
}

/** A database that is never called: only there to list the SQL store's methods. */
const INERT_DB: SqlDb = {
  query: () => Promise.reject(new Error('inert')),
  exec: () => Promise.reject(new Error('inert')),
  transaction: () => Promise.reject(new Error('inert')),
  close: () => Promise.resolve(),
};

let methodNames: readonly string[] | null = null;

/** The `Store` methods to forward (all but `close`, which the proxy handles itself). */
function storeMethods(): readonly string[] {
  methodNames ??= Object.entries(createSqlStore(INERT_DB, 'pglite', { logPruneEveryMs: 0 }))
    .filter(([name, value]) => typeof value === 'function' && name !== 'close')
    .map(([name]) => name);
  return methodNames;
}

/**
 * Starts the worker script next to this module: `pgliteWorker.js` in the build. Run from the
 * TypeScript sources (vitest), Node 20 cannot load `.ts` in a thread, so the thread first
 * registers `ops/ts-source-hooks.mjs` (TypeScript's own transpiler, a devDependency) and then
 * imports `pgliteWorker.ts`: tests exercise these sources, not a possibly stale build.
 */
function spawnPgliteWorker(data: PgliteWorkerData): Worker {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return new Worker(new URL('./pgliteWorker.js', here), { workerData: data });
  const boot = {
    hooks: new URL('../ops/ts-source-hooks.mjs', here).href,
    base: new URL('../package.json', here).href,
    entry: new URL('./pgliteWorker.ts', here).href,
  };
  return new Worker(SOURCE_BOOT, { eval: true, workerData: { ...data, boot } });
}

/**
 * Registers the TypeScript hooks, then loads the worker. Only dynamic `import()`: an `eval`
 * worker runs as CommonJS, or as ESM when the process was started with `--input-type=module`.
 */
const SOURCE_BOOT = `
Promise.all([import('node:module'), import('node:worker_threads')]).then(([{ register }, { workerData }]) => {
  register(workerData.boot.hooks, { data: { base: workerData.boot.base } });
  return import(workerData.boot.entry);
}).catch((err) => { setImmediate(() => { throw err; }); });
`;
