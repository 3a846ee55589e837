/**
 * The PGlite worker thread: owns one PGlite-backed `Store` and serves its methods to the
 * thread that started it (`pgliteWorkerStore.ts`), so Postgres-in-WASM runs on a core of its
 * own instead of the runtime's event loop.
 *
 * One message per `Store` call, never per statement: a `commit` runs its whole transaction
 * here. Calls are forwarded by method name to whatever the store has, so a method added to
 * the `Store` contract needs no change in this file. Errors go back as data
 * (`transferableErrors.ts`) and are revived as the same classes on the other side.
 *
 * Faults it handles: a method that throws or rejects (the error is the reply); a reply that
 * cannot be cloned (the reply is a `StoreDataError`); an unknown method (a `TypeError`).
 * Anything else that kills this thread is seen by the other side as the worker's exit.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { StoreDataError } from './errors.js';
import { createPgliteStore } from './pgliteStore.js';
import { serializeError } from './transferableErrors.js';
import type { SerializedError } from './transferableErrors.js';

/** What the starting thread passes as `workerData`. */
export interface PgliteWorkerData {
  /** PGlite data directory; in memory when undefined. */
  readonly dataDir: string | undefined;
}

/** One call: `method` names a `Store` method; `close` also ends the thread's work. */
export interface PgliteWorkerRequest {
  readonly id: number;
  readonly method: string;
  readonly args: readonly unknown[];
}

/** The answer to the request with the same `id`. */
export type PgliteWorkerReply =
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly id: number; readonly ok: false; readonly error: SerializedError };

if (!parentPort) throw new Error('pgliteWorker.js runs as a worker thread (see pgliteWorkerStore.ts), not on its own');
const port = parentPort;
const { dataDir } = workerData as PgliteWorkerData;
const store = createPgliteStore({ dataDir });
const methods = store as unknown as Record<string, unknown>; // forwarded by name: see the header

port.on('message', (req: PgliteWorkerRequest) => {
  void serve(req);
});

async function serve(req: PgliteWorkerRequest): Promise<void> {
  let reply: PgliteWorkerReply;
  try {
    const fn = methods[req.method];
    if (typeof fn !== 'function') throw new TypeError(`the PGlite store has no method ${JSON.stringify(req.method)}`);
    const value: unknown = await (fn as (...a: unknown[]) => unknown).apply(store, req.args as unknown[]);
    reply = { id: req.id, ok: true, value };
  } catch (err) {
    reply = { id: req.id, ok: false, error: serializeError(err) };
  }
  try {
    port.postMessage(reply);
  } catch (err) {
    // A value read back that structured clone refuses: deterministic, so about the data.
    const refused = new StoreDataError(`a value read from the store cannot be passed between threads: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    port.postMessage({ id: req.id, ok: false, error: serializeError(refused) } satisfies PgliteWorkerReply);
  }
  if (req.method === 'close') port.close(); // nothing more to serve: let the thread end on its own
}
