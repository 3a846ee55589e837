/**
 * The PGlite store in a worker thread (issue 12), against real PGlite in a real worker: the
 * same calls give the same answers as the in-thread store, errors arrive as the same classes
 * with the same fields, a worker that dies or hangs fails calls over instead of leaving them
 * waiting, and close() ends the thread so the process can exit. No mocks.
 */
import { execFile } from 'node:child_process';
import { threadId } from 'node:worker_threads';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createPgliteStore, FencedError, openStore, SchemaTooNewError, StaleVersionError, StoreDataError, StoreError,
  StoreUnavailableError,
} from '../../persistence/index.js';
import type { CommitRecord, Store } from '../../persistence/index.js';
import { createPgliteWorkerStore, pgliteWorkerOf } from '../../persistence/pgliteWorkerStore.js';
import { tempDir } from '../helpers.js';

function rec(sessionId: string, version: number, over: Partial<CommitRecord> = {}): CommitRecord {
  return {
    sessionId, type: 'chat', status: 'idle', snapshot: { value: 'idle', context: { n: version } },
    lastSeq: version * 10, version, partition: 0, ownerEpoch: 1, wakeAt: null, wakeEvents: [],
    wakePriority: null, history: [], transitions: [], outbox: [], ...over,
  };
}

/** What a store answers to a script touching every part of the contract, minus its own clock's readings. */
async function exercise(store: Store): Promise<unknown[]> {
  const at = 1_700_000_000_000;
  const out: unknown[] = [];
  const noClock = (v: unknown): unknown => JSON.parse(JSON.stringify(v, (k, x: unknown) => (k === 'createdAt' || k === 'updatedAt' ? 0 : x)));
  out.push(await store.migrate());
  await store.ping();
  await store.commit([
    rec('w-1', 1, {
      history: [{ sessionId: 'w-1', seq: 1, kind: 'message', body: { text: 'hi', u: undefined }, priority: 'normal', from: null, batchId: 'b1', outcome: 'ok', at }],
      transitions: [{ sessionId: 'w-1', at, event: 'create', from: '', to: 'idle' }],
      outbox: [{ id: 'w-1:1:0', sessionId: 'w-1', subject: 'agentry.out.w-1', headers: { 'Agentry-Kind': 'reply' }, body: '"hello"', createdAt: at }],
      subscribe: ['orders.*'],
    }),
    rec('w-2', 1, { status: 'sleeping', wakeAt: at + 1000, wakeEvents: ['orders.created'], wakePriority: 'high' }),
    rec('w-1', 2, {
      // `undefined` inside JSON is dropped, as JSON.stringify does in-thread; null stays.
      snapshot: { value: 'idle', context: { gone: undefined, kept: null, list: [1, undefined, 'x'], nested: { a: [{ b: true }] } } },
      history: [{ sessionId: 'w-1', seq: 2, kind: 'message', body: 2, priority: 'high', from: 'user:1', batchId: 'b2', outcome: 'ok', at: at + 1 }] }),
  ]);
  out.push(noClock(await store.loadSession('w-1')), noClock(await store.loadSession('w-2')), await store.loadSession('nope'));
  out.push(await store.getHistory('w-1'), await store.getHistory('w-1', { limit: 1, before: 2 }), await store.getTransitions('w-1'));
  out.push(noClock(await store.listSessions({ idContains: 'w-' })), await store.countSessionsByStatus());
  out.push(await store.dueWakes(null, at + 2000, 10), await store.dueWakes([1], at + 2000, 10), (await store.eventRecipients('orders.created')).sort());
  out.push(await store.pendingOutbox(10));
  await store.deleteOutbox(['w-1:1:0']);
  out.push(await store.pendingOutbox(10));
  await store.addDeadLetter({ id: 'dl-1', sessionId: 'w-1', reason: 'handler-failed', error: 'boom', attempts: 3, payload: { batch: [1, 2] }, createdAt: at, replayedAt: null });
  await store.addDeadLetter({ id: 'dl-1', sessionId: 'w-1', reason: 'again', error: null, attempts: 1, payload: null, createdAt: at, replayedAt: null });
  await store.markDeadLetterReplayed('dl-1', at + 5);
  out.push(await store.listDeadLetters({ sessionId: 'w-1' }), await store.getDeadLetter('dl-1'), await store.getDeadLetter('none'));
  await store.addSchedule({ id: 'sc-1', sessionId: 'w-1', partition: 0, task: { t: 1 }, cron: '* * * * *', timezone: 'UTC', nextRunAt: at, lastRunAt: null, createdAt: at });
  out.push(await store.fireSchedule('sc-1', at, at + 60_000, at, null), await store.fireSchedule('sc-1', at, at + 60_000, at, null));
  out.push(await store.getSchedule('sc-1'), await store.listSchedules({ sessionId: 'w-1' }), await store.dueSchedules(null, at + 120_000, 10));
  out.push(await store.deleteSchedule('sc-1'), await store.deleteSchedule('sc-1'));
  const log = await store.readLog('w-1', 0, 100);
  out.push(log.map((e) => [e.kind, e.data]), (await store.lastLogId('w-1')) === log.at(-1)!.id, await store.logPrunedThrough('w-1'));
  out.push(await store.claimPartition(0, 1, 'n', 1000));
  return out;
}

describe('PGlite store in a worker thread', () => {
  const t = tempDir('agentry-pglite-worker-');
  const dataDir = join(t.dir, 'pglite');
  let store: Store;
  beforeAll(() => {
    store = createPgliteWorkerStore({ dataDir });
  });
  afterAll(async () => {
    await store.close();
    t.cleanup();
  });

  it('runs PGlite in another thread and answers every call as the in-thread store does', async () => {
    const worker = pgliteWorkerOf(store);
    expect(worker).not.toBeNull();
    expect(worker!.threadId).not.toBe(threadId);
    expect(store.kind).toBe('pglite');
    const inThread = createPgliteStore();
    try {
      // Every method of the contract is there (forwarded by name, so new ones need no change).
      expect(Object.keys(store).sort()).toEqual(Object.keys(inThread).sort());
      const expected = await exercise(inThread);
      expect(await exercise(store)).toEqual(expected);
      expect(expected[1]).toMatchObject({ snapshot: { value: 'idle', context: { kept: null, list: [1, null, 'x'] } } });
    } finally {
      await inThread.close();
    }
  });

  it('returns store errors as the same classes with the same code, retryable flag and fields', async () => {
    await store.migrate();
    await store.commit([rec('e-1', 1)]);
    const stale = await store.commit([rec('e-1', 1)]).then(() => null, (e: unknown) => e);
    expect(stale).toBeInstanceOf(StaleVersionError);
    expect(stale).toBeInstanceOf(StoreError);
    expect(stale).toMatchObject({ name: 'StaleVersionError', code: 'STALE_VERSION', retryable: false, sessionId: 'e-1', expected: 0 });
    expect((stale as Error).message).toContain('session e-1');
    expect((stale as Error).stack).toContain('StaleVersionError');

    expect(await store.claimPartition(4, 7, 'node-b', 1000)).toBe(true);
    const fenced = await store.commit([rec('e-2', 1, { partition: 4, ownerEpoch: 6 })]).then(() => null, (e: unknown) => e);
    expect(fenced).toBeInstanceOf(FencedError);
    expect(fenced).toMatchObject({ code: 'FENCED', retryable: false, sessionId: 'e-2', epoch: 6 });

    // Postgres refuses a NUL in jsonb (SQLSTATE 22P05): a StoreDataError with its cause.
    const nul = await store.commit([rec('e-3', 1, { snapshot: { text: 'a\u0000b' } })]).then(() => null, (e: unknown) => e);
    expect(nul).toBeInstanceOf(StoreDataError);
    expect(nul).toMatchObject({ code: 'STORE_DATA', retryable: false, sqlState: '22P05' });
    expect((nul as Error).cause).toMatchObject({ code: '22P05' });
    expect(await store.loadSession('e-3')).toBeNull();

    // A value nested too deep for structured clone never leaves this thread: StoreDataError, as in-thread.
    let deep: unknown = 'leaf';
    for (let i = 0; i < 200_000; i++) deep = [deep];
    const tooDeep = await store.commit([rec('e-4', 1, { snapshot: deep })]).then(() => null, (e: unknown) => e);
    expect(tooDeep).toBeInstanceOf(StoreDataError);

    // Not a store error (a duplicate schedule id: unique violation): the driver's code still arrives.
    const sched = { id: 'dup', sessionId: 'e-1', partition: 0, task: null, cron: '* * * * *', timezone: 'UTC', nextRunAt: null, lastRunAt: null, createdAt: 1 };
    await store.addSchedule(sched);
    const dup = await store.addSchedule(sched).then(() => null, (e: unknown) => e);
    expect(dup).toBeInstanceOf(Error);
    expect(dup).not.toBeInstanceOf(StoreError);
    expect(dup).toMatchObject({ code: '23505' });

    // The store still works after all of that.
    expect((await store.loadSession('e-1'))?.version).toBe(1);
  });

  it('stores a snapshot holding a function the way the in-thread store does (the function is dropped); refuses a function as an argument', async () => {
    await store.migrate();
    await store.commit([rec('f-1', 1, { snapshot: { a: 1, fn: () => 1, list: [() => 2] } })]);
    expect((await store.loadSession('f-1'))?.snapshot).toEqual({ a: 1, list: [null] });
    // As a call's argument, a function is not data: refused loudly rather than dropped.
    const fn = await store.listSessions({ limit: (() => 1) as unknown as number }).then(() => null, (e: unknown) => e);
    expect(fn).toBeInstanceOf(TypeError);
    expect((fn as Error).message).toMatch(/store\.listSessions/);
  });

  it('refuses a database migrated by a newer release with SchemaTooNewError and its numbers', async () => {
    const t2 = tempDir('agentry-pglite-worker-new-');
    const dir = join(t2.dir, 'db');
    try {
      const first = createPgliteWorkerStore({ dataDir: dir });
      const { current } = await first.migrate();
      await first.close();
      const db = await PGlite.create({ dataDir: dir });
      await db.query(`INSERT INTO agentry_migrations (version, name, applied_at) VALUES (9999, 'future', 0)`);
      await db.close();
      const again = createPgliteWorkerStore({ dataDir: dir });
      try {
        const err = await again.migrate().then(() => null, (e: unknown) => e);
        expect(err).toBeInstanceOf(SchemaTooNewError);
        expect(err).toMatchObject({ code: 'SCHEMA_TOO_NEW', retryable: false, found: 9999, supported: current });
      } finally {
        await again.close();
      }
    } finally {
      t2.cleanup();
    }
  });

  it('a worker that dies fails pending calls with a retryable StoreUnavailableError, then restarts on the same data', async () => {
    const t3 = tempDir('agentry-pglite-worker-kill-');
    const s = createPgliteWorkerStore({ dataDir: join(t3.dir, 'db'), restartDelayMs: 0 });
    try {
      await s.migrate();
      await s.commit([rec('k-1', 1)]);
      const w = pgliteWorkerOf(s)!;
      const big = Array.from({ length: 500 }, (_, i) => rec(`k-big-${i}`, 1, { snapshot: { pad: 'x'.repeat(1000) } }));
      const inFlight = s.commit(big).then(() => null, (e: unknown) => e);
      await w.terminate();
      const err = await inFlight;
      expect(err).toBeInstanceOf(StoreUnavailableError);
      expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE', retryable: true });
      expect((err as Error).message).toMatch(/PGlite worker exited/);
      // The next call starts a new worker on the same directory: what was committed is there.
      expect((await s.loadSession('k-1'))?.version).toBe(1);
      expect(pgliteWorkerOf(s)).not.toBe(w);
      await s.commit([rec('k-1', 2)]);
      expect((await s.loadSession('k-1'))?.version).toBe(2);
    } finally {
      await s.close();
      t3.cleanup();
    }
  });

  it('an in-memory database dies with its worker: calls keep failing instead of finding an empty database', async () => {
    const s = createPgliteWorkerStore({ restartDelayMs: 0 });
    try {
      await s.migrate();
      await pgliteWorkerOf(s)!.terminate();
      for (let i = 0; i < 2; i++) await expect(s.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
      expect(pgliteWorkerOf(s)).toBeNull();
    } finally {
      await s.close();
    }
  });

  it('a worker that does not answer in time is terminated and its calls fail over', async () => {
    // The first call waits for PGlite to open in the thread, far longer than 1 ms.
    const s = createPgliteWorkerStore({ callTimeoutMs: 1, restartDelayMs: 60_000 });
    try {
      const err = await s.ping().then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(StoreUnavailableError);
      expect((err as Error).message).toMatch(/did not answer ping/);
      expect(pgliteWorkerOf(s)).toBeNull();
    } finally {
      await s.close();
    }
  });

  it('close() closes PGlite and ends the thread; later calls fail as on a closed in-thread store', async () => {
    const s = createPgliteWorkerStore();
    await s.migrate();
    const w = pgliteWorkerOf(s)!;
    const exited = new Promise<number>((resolve) => w.once('exit', resolve));
    await Promise.all([s.close(), s.close()]);
    await exited;
    expect(pgliteWorkerOf(s)).toBeNull();
    await expect(s.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
    await s.close();
  });

  it('openStore runs PGlite in a worker by default, in this thread when asked', async () => {
    const def = openStore({});
    const inThread = openStore({ pgliteInWorker: false });
    try {
      expect(pgliteWorkerOf(def)).not.toBeNull();
      expect(pgliteWorkerOf(inThread)).toBeNull();
      for (const s of [def, inThread]) {
        await s.migrate();
        await s.commit([rec('o-1', 1)]);
        expect((await s.loadSession('o-1'))?.version).toBe(1);
      }
    } finally {
      await def.close();
      await inThread.close();
    }
  });
});

describe('the worker and the process', () => {
  // A child Node process runs the sources through the same TypeScript hooks the worker uses.
  const root = join(import.meta.dirname, '..', '..');
  const run = (body: string): Promise<{ code: number | null; stdout: string; stderr: string }> => {
    const script = `
      import { register } from 'node:module';
      register(${JSON.stringify(new URL('ops/ts-source-hooks.mjs', `file://${root}/`).href)}, { data: { base: ${JSON.stringify(`file://${root}/package.json`)} } });
      const { createPgliteWorkerStore } = await import(${JSON.stringify(`file://${root}/persistence/pgliteWorkerStore.ts`)});
      ${body}`;
    return new Promise((resolve) => {
      execFile(process.execPath, ['--input-type=module', '-e', script], { cwd: root }, (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      });
    });
  };

  it('a process exits on its own after close(), and when idle without it', async () => {
    const closed = await run(`const s = createPgliteWorkerStore(); await s.migrate(); await s.close(); console.log('closed');`);
    expect(closed).toMatchObject({ code: 0, stdout: 'closed\n' });
    const idle = await run(`const s = createPgliteWorkerStore(); await s.migrate(); await s.ping(); console.log('idle');`);
    expect(idle).toMatchObject({ code: 0, stdout: 'idle\n' });
  }, 240_000); // two child processes that load the sources through TypeScript: minutes on a loaded box
});
