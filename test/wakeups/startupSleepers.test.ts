// Issue 11 item 6, end to end: a node starts with 64 partitions (64 lease acquisitions, each
// asking the scheduler for a read) over a store holding 20,000 sleepers, a quarter of them
// overdue (due while no node ran) and the rest due within a few seconds, through a pg pool of
// three connections shared with hydrations and group commits. Every sleeper must wake exactly
// once (one committed wake record per session, read straight from Postgres) and none early.
// Real nats-server, real Postgres; the sleepers are written through the store's commit(), as
// clones of one session the runtime itself put to sleep.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { defineAgent } from '../../actors/index.js';
import { createPgStore } from '../../persistence/index.js';
import type { CommitRecord, Store } from '../../persistence/types.js';
import { partitionOf } from '../../runtime/partition.js';
import type { Runtime } from '../../runtime/index.js';
import { PG_URL, dropSchema, schemaName, startNats, startRuntime, waitFor } from '../helpers.js';

const PARTITIONS = 64;
const SLEEPERS = 20_000;
const OVERDUE = 5_000;
const WINDOW_MS = 8_000;

/** Planned wake time by session, and what the handler saw: wake runs per session, early ones. */
const planned = new Map<string, number>();
const wakeRuns = new Map<string, number>();
const early: string[] = [];

const napper = defineAgent({
  type: 'napper',
  onMessage: 'queue',
  handle(batch, ctx) {
    if (batch[0]?.kind === 'wake') {
      wakeRuns.set(ctx.sessionId, (wakeRuns.get(ctx.sessionId) ?? 0) + 1);
      const due = planned.get(ctx.sessionId);
      if (due !== undefined && ctx.now() < due) early.push(ctx.sessionId);
    }
    return undefined;
  },
});

let nats: Awaited<ReturnType<typeof startNats>>;
let schema: string;
let store: Store;
let rt: Runtime | undefined;

beforeAll(async () => {
  nats = await startNats(PARTITIONS);
  schema = schemaName('startsleep');
  // A tight pool: the horizon reads, 64 partitions' start-up, hydrations and commits share it.
  store = createPgStore({ connectionString: PG_URL, schema, poolSize: 3 });
  await store.migrate();
});

afterAll(async () => {
  await rt?.stop();
  await store?.close();
  await nats?.cleanup();
  if (schema) await dropSchema(schema);
});

/**
 * A sleeping session's committed snapshot, made by a runtime (then stopped), to clone. In a
 * schema of its own: the runtime records its partitions' fencing epochs, and the clones are
 * written before any node owns a partition of the test's schema.
 */
async function sleepingTemplate(): Promise<unknown> {
  const tplSchema = schemaName('startsleep_tpl');
  const tplStore = createPgStore({ connectionString: PG_URL, schema: tplSchema });
  const r = await startRuntime(nats.url, { agents: [napper], store: tplStore, partitions: PARTITIONS });
  try {
    await r.createAgent('template', 'napper');
    await r.sleepAgent('template', { durationMs: 24 * 3_600_000 });
    const rec = await waitFor(async () => {
      const s = await tplStore.loadSession('template');
      return s?.status === 'sleeping' && s.wakeAt !== null ? s : null;
    }, 'the template sleeping in the store');
    return rec.snapshot;
  } finally {
    await r.stop();
    await tplStore.close();
    await dropSchema(tplSchema);
  }
}

function clone(tpl: unknown, id: string, until: number): unknown {
  const s = structuredClone(tpl) as { context: { sessionId: string; wake: { until: number } | null } };
  s.context.sessionId = id;
  if (s.context.wake) s.context.wake.until = until;
  return s;
}

describe('wake-ups at start-up with 64 partitions and a tight pool', () => {
  it(`wakes each of ${SLEEPERS.toLocaleString('en')} sleepers exactly once, none early, the overdue ones too`, async () => {
    const tpl = await sleepingTemplate();
    const windowStart = Date.now() + 6_000; // after the writes below and the node's start
    for (let i0 = 0; i0 < SLEEPERS; i0 += 1000) {
      const recs: CommitRecord[] = [];
      for (let i = i0; i < Math.min(SLEEPERS, i0 + 1000); i++) {
        const id = `z${i}`;
        // Overdue ones were due in the last minute; the others spread (shuffled) over the window,
        // 40 at each instant so that equal due times cross page boundaries.
        const until = i < OVERDUE ? Date.now() - 60_000 + (i % 50) * 1000 : windowStart + Math.floor(((i * 7919) % SLEEPERS) / 40) * Math.floor(WINDOW_MS * 40 / SLEEPERS);
        planned.set(id, until);
        recs.push({
          sessionId: id, type: 'napper', status: 'sleeping', snapshot: clone(tpl, id, until), lastSeq: 0, version: 1,
          partition: partitionOf(id, PARTITIONS), ownerEpoch: 0, wakeAt: until, wakeEvents: [], wakePriority: null,
          history: [], transitions: [], outbox: [],
        });
      }
      await store.commit(recs);
    }

    rt = await startRuntime(nats.url, {
      agents: [napper], store, partitions: PARTITIONS,
      config: { maxActiveSessions: 2000, ackWaitMs: 30_000 },
    });

    await waitFor(() => [...planned.keys()].every((id) => wakeRuns.has(id)), `all ${SLEEPERS} sleepers woken`, 150_000, 250);

    // Exactly once, read from Postgres: one committed wake record per session, none sleeping.
    const direct = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${schema}` });
    await direct.connect();
    try {
      // Every session back to idle: its wake run committed with its history row. (Not merely "not
      // sleeping": the WAKE transition to active commits on its own, before the run that writes
      // the wake record; counting then saw sessions between the two.)
      await waitFor(async () => {
        const { rows } = await direct.query<{ n: string }>(`SELECT count(*) AS n FROM sessions WHERE id LIKE 'z%' AND status <> 'idle'`);
        return Number(rows[0]!.n) === 0;
      }, 'every wake run committed', 60_000, 250);
      const { rows } = await direct.query<{ session_id: string; n: string; at: string }>(
        `SELECT session_id, count(*) AS n, min(at) AS at FROM history WHERE kind = 'wake' AND session_id LIKE 'z%' GROUP BY session_id`,
      );
      expect(rows.length).toBe(SLEEPERS);
      expect(rows.filter((r) => Number(r.n) !== 1).map((r) => r.session_id)).toEqual([]);
      expect(rows.filter((r) => Number(r.at) < planned.get(r.session_id)!).map((r) => r.session_id)).toEqual([]);
    } finally {
      await direct.end();
    }
    expect(early).toEqual([]);
    expect(rt.wakeups.scheduler.lateness.filter((x) => x < 0)).toEqual([]);
  }, 240_000);
});
