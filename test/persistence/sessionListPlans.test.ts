// Issue 18: every shape of the sessions list's query uses an index on Postgres 15 with 100,000
// sessions (EXPLAIN of the exact SQL the store sends): no sequential scan, and no sort of the
// whole table — a page costs the same on page 1 and page 500. (idContains, a substring anywhere
// in the id, is documented as a scan and not checked here.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createPgStore } from '../../persistence/index.js';
import type { ListSessionsQuery, SessionCursor } from '../../persistence/index.js';
import { sessionSummariesSql } from '../../persistence/queries.js';
import { PG_URL, dropSchema, schemaName } from '../helpers.js';

const schema = schemaName('list_plans');
let c: pg.Client;

interface PlanNode { 'Node Type': string; 'Relation Name'?: string; 'Index Name'?: string; 'Plan Rows'?: number; Plans?: PlanNode[] }
function nodes(p: PlanNode): PlanNode[] {
  return [p, ...(p.Plans ?? []).flatMap(nodes)];
}

async function plan(q: ListSessionsQuery): Promise<PlanNode[]> {
  const { text, params } = sessionSummariesSql(q, 201);
  const { rows } = await c.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(`EXPLAIN (FORMAT JSON) ${text}`, params);
  return nodes(rows[0]!['QUERY PLAN'][0].Plan);
}

beforeAll(async () => {
  const store = createPgStore({ connectionString: PG_URL, schema });
  await store.migrate();
  await store.close();
  c = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${schema}` });
  await c.connect();
  await c.query(`INSERT INTO sessions (id, type, status, snapshot, last_seq, version, partition, owner_epoch, created_at, updated_at, tenant, tags)
    SELECT 'sess-' || lpad(i::text, 6, '0'), (ARRAY['echo','support','billing','research'])[1 + i % 4],
           (ARRAY['idle','idle','sleeping','idle','waiting','active','stopped','idle','sleeping','idle'])[1 + (i * 7) % 10],
           jsonb_build_object('value', 'idle', 'pad', repeat('x', 400)), 0, 1, i % 64, 1, 1700000000000 + i,
           1700000000000 + ((i * 7919) % 100000) * 1000, CASE WHEN i % 3 = 0 THEN 'acme' END,
           CASE WHEN i % 200 = 0 THEN ARRAY['rare', 'vip'] WHEN i % 3 = 1 THEN ARRAY['vip'] END
    FROM generate_series(1, 100000) AS i`);
  await c.query('VACUUM ANALYZE sessions');
}, 120_000);

afterAll(async () => {
  await c?.end();
  await dropSchema(schema);
});

const cursor: SessionCursor = { id: 'sess-050000', updatedAt: 1_700_050_000_000, type: 'echo', status: 'sleeping' };
const shapes: [string, ListSessionsQuery][] = [
  ['newest first', { sort: 'updatedAt', desc: true }],
  ['newest first, page by cursor', { sort: 'updatedAt', desc: true, from: cursor }],
  ['oldest first, page by cursor', { sort: 'updatedAt', from: cursor }],
  ['one state, newest first, by cursor', { statuses: ['sleeping'], sort: 'updatedAt', desc: true, from: cursor }],
  ['type, newest first', { type: 'billing', sort: 'updatedAt', desc: true }],
  ['tenant, newest first', { tenant: 'acme', sort: 'updatedAt', desc: true }],
  ['rare tag (0.5%), newest first', { tag: 'rare', sort: 'updatedAt', desc: true }],
  ['common tag (a third), newest first, by cursor', { tag: 'vip', sort: 'updatedAt', desc: true, from: cursor }],
  ['rare tag, by type, by cursor', { tag: 'rare', sort: 'type', from: cursor }],
  ['id prefix, newest first', { idPrefix: 'sess-0421', sort: 'updatedAt', desc: true }],
  ['id prefix, by id', { idPrefix: 'sess-0421' }],
  ['last activity range', { updatedAfter: 1_700_090_000_000, updatedBefore: 1_700_095_000_000, sort: 'updatedAt', desc: true }],
  ['by id, by cursor (the original cursor)', { after: 'sess-050000' }],
  ['by id descending, by cursor', { sort: 'id', desc: true, from: cursor }],
  ['by type, by cursor', { sort: 'type', from: cursor }],
  ['by type descending, by cursor', { sort: 'type', desc: true, from: cursor }],
  ['by state, by cursor', { sort: 'status', from: cursor }],
  ['by state descending, by cursor', { sort: 'status', desc: true, from: cursor }],
];

describe('sessions list query plans on Postgres with 100,000 sessions', () => {
  for (const [name, q] of shapes) {
    it(`${name}: an index, no sequential scan, no sort of more than a page`, async () => {
      const p = await plan(q);
      const seq = p.filter((n) => n['Node Type'] === 'Seq Scan');
      expect(seq, JSON.stringify(p.map((n) => n['Node Type']))).toEqual([]);
      expect(p.some((n) => /Index/.test(n['Node Type']))).toBe(true);
      // A Sort may only order what a LIMITed index scan or a narrow range produced.
      for (const s of p.filter((n) => n['Node Type'] === 'Sort')) expect(s['Plan Rows'] ?? 0).toBeLessThanOrEqual(1000);
    });
  }

  it('a rare tag is found through the GIN index of migration 0019', async () => {
    const p = await plan({ tag: 'rare', sort: 'updatedAt', desc: true });
    expect(p.map((n) => n['Index Name']).filter(Boolean), JSON.stringify(p.map((n) => n['Node Type']))).toContain('sessions_tags_idx');
  });
});
