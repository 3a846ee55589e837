/**
 * The flight recorder's checkpoints (migration 0010), one contract over Postgres 15, PGlite and
 * the memory store: every committed version is kept with its snapshot; a point by seq or by
 * transition id finds the commit that holds it; points pruned or never reached are null.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createMemoryStore, createPgStore, createPgliteStore } from '../../persistence/index.js';
import type { CommitRecord, Store, TransitionRecord } from '../../persistence/index.js';

const DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const schemas: string[] = [];
afterAll(async () => {
  const admin = new pg.Pool({ connectionString: DATABASE_URL, max: 1 });
  for (const s of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  await admin.end();
});

function rec(sessionId: string, version: number, lastSeq: number, n: number, transitions: TransitionRecord[] = []): CommitRecord {
  return {
    sessionId, type: 't', status: 'idle', snapshot: { value: 'idle', context: { userState: { n } } }, lastSeq, version, partition: 0, ownerEpoch: 0,
    wakeAt: null, wakeEvents: [], wakePriority: null, history: [], transitions, outbox: [],
  };
}
const tr = (sessionId: string, to: string): TransitionRecord => ({ sessionId, at: 1, event: 'x', from: 'idle', to });
const nOf = (snap: unknown): number => (snap as { context: { userState: { n: number } } }).context.userState.n;

const backends: [string, () => Store][] = [
  ['memory', () => createMemoryStore()],
  ['pglite', () => createPgliteStore()],
  ['pg', () => {
    const schema = `agentry_test_${randomBytes(6).toString('hex')}`;
    schemas.push(schema);
    return createPgStore({ connectionString: DATABASE_URL, schema });
  }],
];

describe.each(backends)('checkpoints on %s', (_name, open) => {
  it('keeps each committed version, finds a point by seq and by transition, and prunes with transitions', async () => {
    const store = open();
    try {
      await store.migrate();
      await store.setCheckpointTypes(['t'], []);
      // A type that does not ask for checkpoints gets none.
      await store.commit([{ ...rec('u1', 1, 0, 0), type: 'u' }]);
      expect(await store.listCheckpoints('u1')).toEqual([]);
      await store.commit([rec('c1', 1, 0, 0, [tr('c1', 'idle')])]);
      await store.commit([rec('c1', 2, 5, 1, [tr('c1', 'active'), tr('c1', 'idle')])]);
      await store.commit([rec('c1', 3, 9, 2, [tr('c1', 'active'), tr('c1', 'idle')])]);
      expect((await store.listCheckpoints('c1')).map((c) => [c.version, c.lastSeq, nOf(c.snapshot)])).toEqual([[1, 0, 0], [2, 5, 1], [3, 9, 2]]);

      expect((await store.getCheckpoint('c1', { seq: 5 }))?.version).toBe(2);
      expect((await store.getCheckpoint('c1', { seq: 7 }))?.version).toBe(2); // 7 never ran alone: the newest point before it
      expect((await store.getCheckpoint('c1', { seq: 9 }))?.version).toBe(3);
      expect(await store.getCheckpoint('c1', { seq: 10 })).toBeNull(); // past what the session applied
      expect(await store.getCheckpoint('nope', { seq: 1 })).toBeNull();

      const ts = await store.getTransitions('c1');
      expect(ts).toHaveLength(5);
      expect(ts.every((t) => typeof t.id === 'number')).toBe(true);
      expect((await store.getCheckpoint('c1', { transition: ts[0]!.id! }))?.version).toBe(1);
      expect((await store.getCheckpoint('c1', { transition: ts[1]!.id! }))?.version).toBe(2);
      expect((await store.getCheckpoint('c1', { transition: ts[2]!.id! }))?.version).toBe(2);
      expect((await store.getCheckpoint('c1', { transition: ts[4]!.id! }))?.version).toBe(3);
      expect(await store.getCheckpoint('c1', { transition: ts[4]!.id! + 1000 })).toBeNull();

      // A transition bound prunes the oldest checkpoints too: an old point is then not recorded.
      await store.prunePast({ sessionIds: ['c1'], historyFloor: 0, transitions: { maxCount: 2 } });
      expect((await store.listCheckpoints('c1')).map((c) => c.version)).toEqual([2, 3]);
      expect(await store.getCheckpoint('c1', { seq: 0 })).toBeNull();
      expect(await store.getCheckpoint('c1', { transition: ts[0]!.id! })).toBeNull();
      expect((await store.getCheckpoint('c1', { seq: 9 }))?.version).toBe(3);
      // Switched off: nothing more is recorded.
      await store.setCheckpointTypes([], ['t']);
      await store.commit([rec('c1', 4, 12, 3)]);
      expect((await store.listCheckpoints('c1')).map((c) => c.version)).toEqual([2, 3]);
    } finally {
      await store.close();
    }
  }, 60_000);
});
