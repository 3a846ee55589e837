// Group commit (runtime/groupCommit.ts) over a fake store whose commit() calls the test settles
// by hand: how records are grouped into transactions, how many run at once, and that a failing
// store neither loses nor reorders anything. No timing assertions: every step waits for the
// event-loop turn (or the commit) it is about, never for a wall-clock duration.
import { describe, expect, it } from 'vitest';
import { StoreDataError, StoreUnavailableError } from '../../persistence/errors.js';
import type { CommitRecord, Store } from '../../persistence/types.js';
import { createGroupCommitter } from '../../runtime/groupCommit.js';
import { loadConfig } from '../../runtime/config.js';
import { createLogger } from '../../runtime/logger.js';

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

function rec(sessionId: string, version = 1): CommitRecord {
  return {
    sessionId, type: 't', status: 'idle', snapshot: {}, lastSeq: version, version, partition: 0, ownerEpoch: 1,
    wakeAt: null, wakeEvents: [], wakePriority: null, history: [], transitions: [], outbox: [],
  };
}

/** A store whose commits wait until the test settles them; `calls` lists each call's session ids. */
function fakeStore() {
  const calls: { ids: string[]; settle: (err?: Error) => void }[] = [];
  const store = {
    kind: 'memory',
    commit(records: readonly CommitRecord[]) {
      return new Promise<void>((resolve, reject) => {
        calls.push({ ids: records.map((r) => r.sessionId), settle: (err?: Error) => { if (err) reject(err); else resolve(); } });
      });
    },
  } as unknown as Store;
  return { store, calls };
}

const logger = createLogger('silent');

describe('group commit', () => {
  it('records submitted in one event-loop turn share one transaction, even with nothing in flight', async () => {
    const { store, calls } = fakeStore();
    const gc = createGroupCommitter({ store, logger, maxBatch: 500, concurrency: 3 });
    const done = ['a', 'b', 'c', 'd'].map((id) => gc.submit(rec(id)));
    expect(calls).toHaveLength(0); // never inside the submitter's own step
    await turn();
    // Before 2026-11-28 the first record went alone and the other three waited for the linger timer.
    expect(calls.map((c) => c.ids)).toEqual([['a', 'b', 'c', 'd']]);
    calls[0]!.settle();
    await Promise.all(done);
    await gc.drain();
  });

  it('a record that finds a slot free starts in the next turn, not after a linger, while another transaction is in flight', async () => {
    const { store, calls } = fakeStore();
    // The runtime's default: no linger (it was 2 ms: a timer on nearly every commit at 1,000 msg/s).
    const { groupCommitLingerMs } = loadConfig({}, {});
    expect(groupCommitLingerMs).toBe(0);
    expect(loadConfig({}, { AGENTRY_COMMIT_LINGER_MS: '2' }).groupCommitLingerMs).toBe(2); // the opt-in
    const gc = createGroupCommitter({ store, logger, maxBatch: 500, concurrency: 3, lingerMs: groupCommitLingerMs });
    const first = gc.submit(rec('a'));
    await turn();
    expect(calls).toHaveLength(1);
    const second = gc.submit(rec('b'));
    await turn();
    expect(calls.map((c) => c.ids)).toEqual([['a'], ['b']]); // two transactions in flight at once
    calls[1]!.settle();
    await second;
    calls[0]!.settle();
    await first;
  });

  it('with a linger configured, a transaction that ends lets the gathering records go at once', async () => {
    const { store, calls } = fakeStore();
    const gc = createGroupCommitter({ store, logger, maxBatch: 500, concurrency: 3, lingerMs: 60_000 });
    const first = gc.submit(rec('a'));
    await turn();
    const second = gc.submit(rec('b'));
    await turn();
    expect(calls).toHaveLength(1); // gathering for company: another transaction is in flight
    calls[0]!.settle();
    await first;
    await turn();
    // Before 2026-11-28 the free slot sat out the whole linger (here a minute).
    expect(calls.map((c) => c.ids)).toEqual([['a'], ['b']]);
    calls[1]!.settle();
    await second;
    gc.close();
  });

  it('records that find every slot busy wait, and the first slot to free takes them all', async () => {
    const { store, calls } = fakeStore();
    const gc = createGroupCommitter({ store, logger, maxBatch: 500, concurrency: 2 });
    const all: Promise<void>[] = [];
    all.push(gc.submit(rec('a')));
    await turn();
    all.push(gc.submit(rec('b')));
    await turn();
    expect(calls).toHaveLength(2);
    for (const id of ['c', 'd', 'e']) { all.push(gc.submit(rec(id))); await turn(); }
    expect(calls).toHaveLength(2); // no third transaction: both slots are busy
    calls[0]!.settle();
    await all[0];
    await turn();
    expect(calls.map((c) => c.ids)).toEqual([['a'], ['b'], ['c', 'd', 'e']]);
    calls[1]!.settle();
    calls[2]!.settle();
    await Promise.all(all);
    await gc.drain();
  });

  it('a backlog that finds several slots free is spread over them (batches of at least 32), in order', async () => {
    const { store, calls } = fakeStore();
    const gc = createGroupCommitter({ store, logger, maxBatch: 500, concurrency: 3 });
    const ids = Array.from({ length: 150 }, (_, i) => `s${i}`);
    const done = ids.map((id) => gc.submit(rec(id)));
    await turn();
    expect(calls.map((c) => c.ids.length)).toEqual([50, 50, 50]);
    expect(calls.flatMap((c) => c.ids)).toEqual(ids);
    for (const c of calls) c.settle();
    await Promise.all(done);
    // A small backlog is not split: 40 records over 3 free slots go as 32 + 8, not 14 + 14 + 12.
    const { store: store2, calls: calls2 } = fakeStore();
    const gc2 = createGroupCommitter({ store: store2, logger, maxBatch: 500, concurrency: 3 });
    const done2 = ids.slice(0, 40).map((id) => gc2.submit(rec(id)));
    await turn();
    expect(calls2.map((c) => c.ids.length)).toEqual([32, 8]);
    for (const c of calls2) c.settle();
    await Promise.all(done2);
  });

  it('a store outage is retried until it is back; nothing resolves before its commit', async () => {
    const { store, calls } = fakeStore();
    const gc = createGroupCommitter({ store, logger, maxBatch: 500, concurrency: 3 });
    let resolved = false;
    const p = gc.submit(rec('a')).then(() => { resolved = true; });
    await turn();
    calls[0]!.settle(new StoreUnavailableError('down'));
    while (calls.length < 2) await turn(); // the retry (after its backoff)
    expect(gc.healthy()).toBe(false);
    expect(resolved).toBe(false);
    expect(calls[1]!.ids).toEqual(['a']);
    calls[1]!.settle();
    await p;
    expect(gc.healthy()).toBe(true);
  });

  it('a poison record is isolated by halving; it alone is rejected, the rest commit', async () => {
    const { store, calls } = fakeStore();
    const gc = createGroupCommitter({ store, logger, maxBatch: 500, concurrency: 1 });
    const outcome = new Map<string, string>();
    const ids = ['a', 'b', 'c', 'd'];
    const done = ids.map((id) => gc.submit(rec(id)).then(() => { outcome.set(id, 'ok'); }, (e: unknown) => { outcome.set(id, (e as Error).name); }));
    // Every call that holds `c` is refused as data; the others commit.
    let seen = 0;
    while (outcome.size < ids.length) {
      await turn();
      while (seen < calls.length) {
        const c = calls[seen++]!;
        c.settle(c.ids.includes('c') ? new StoreDataError('NUL in jsonb') : undefined);
      }
    }
    await Promise.all(done);
    expect(Object.fromEntries(outcome)).toEqual({ a: 'ok', b: 'ok', c: 'StoreDataError', d: 'ok' });
    expect(calls.map((c) => c.ids)).toEqual([['a', 'b', 'c', 'd'], ['a', 'b'], ['c', 'd'], ['c'], ['d']]);
  });

  it('a batch that timed out or is too large is split in halves, in order, until it fits; a lone record is retried as it is', async () => {
    const { store, calls } = fakeStore();
    const gc = createGroupCommitter({ store, logger, maxBatch: 500, concurrency: 1 });
    const ids = ['a', 'b', 'c', 'd', 'e'];
    const committed: string[] = [];
    const done = ids.map((id) => gc.submit(rec(id)).then(() => { committed.push(id); }));
    // Anything of more than two records times out, and anything with `e` in it but alone; the
    // lone `e` times out once more (a slow store, not a heavy batch), then commits.
    let seen = 0;
    let eTimedOut = false;
    while (committed.length < ids.length) {
      await turn();
      while (seen < calls.length) {
        const c = calls[seen++]!;
        const lone = c.ids.length === 1 && c.ids[0] === 'e' && !eTimedOut;
        if (lone) eTimedOut = true;
        c.settle(c.ids.length > 2 || (c.ids.includes('e') && c.ids.length > 1) || lone ? new StoreUnavailableError('canceling statement due to statement timeout', { splitBatch: true }) : undefined);
      }
    }
    await Promise.all(done);
    expect(committed).toEqual(ids);
    // Not the same five again and again (before 2026-11-29 a batch past the deadline timed out at every try).
    expect(calls.map((c) => c.ids)).toEqual([['a', 'b', 'c', 'd', 'e'], ['a', 'b', 'c'], ['a', 'b'], ['c'], ['d', 'e'], ['d'], ['e'], ['e']]);
  });
});
