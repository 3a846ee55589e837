// Commit cost of migration 0011's indexes: store.commit() of 500 existing sessions per call on a
// 100,000-session table, with the 0011 indexes and with 0001's instead, alternating.
// `node bench/diag-list-indexes.mjs` (not part of `npm run bench`); BENCH_DATABASE_URL as the suites.
import pg from 'pg';
import { createPgStore } from '../dist/persistence/index.js';
import { PG_URL as url, schemaName } from './lib.mjs';

const schema = schemaName('listidx');
const admin = new pg.Client({ connectionString: url }); await admin.connect();
await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
const store = createPgStore({ connectionString: url, schema });
await store.migrate();
await admin.query(`SET search_path=${schema}`);
const N = 100_000;
await admin.query(`INSERT INTO sessions (id, type, status, snapshot, last_seq, version, partition, owner_epoch, created_at, updated_at)
  SELECT 's-' || lpad(i::text, 6, '0'), 'echo', 'idle', jsonb_build_object('value','idle','context', jsonb_build_object('pad', repeat('x', 800))), 0, 1, 0, 1, 1700000000000 + i, 1700000000000 + i FROM generate_series(1, ${N}) i`);
await admin.query('VACUUM ANALYZE sessions');
const version = new Map();
let clock = 0;
async function round(label) {
  const t0 = performance.now();
  let n = 0;
  for (let b = 0; b < 40; b++) {
    const recs = [];
    for (let j = 0; j < 500; j++) {
      const id = 's-' + String(1 + Math.floor(Math.random() * N)).padStart(6, '0');
      if (recs.some((r) => r.sessionId === id)) continue;
      const v = (version.get(id) ?? 1) + 1; version.set(id, v);
      recs.push({ sessionId: id, type: 'echo', status: 'idle', snapshot: { value: 'idle', context: { pad: 'x'.repeat(800), n: clock++ } }, lastSeq: v, version: v, partition: 0, ownerEpoch: 1, wakeAt: null, wakeEvents: [], wakePriority: null, history: [], transitions: [], outbox: [] });
    }
    await store.commit(recs); n += recs.length;
  }
  const rate = n / ((performance.now() - t0) / 1000);
  console.log(label, Math.round(rate), 'records/s');
  return rate;
}
const with0011 = async () => { await admin.query(`DROP INDEX IF EXISTS sessions_status_idx; DROP INDEX IF EXISTS sessions_type_idx; CREATE INDEX IF NOT EXISTS sessions_updated_idx ON sessions (updated_at, id); CREATE INDEX IF NOT EXISTS sessions_status_updated_idx ON sessions (status, updated_at DESC, id DESC); CREATE INDEX IF NOT EXISTS sessions_type_updated_idx ON sessions (type, updated_at DESC, id DESC); CREATE INDEX IF NOT EXISTS sessions_tenant_updated_idx ON sessions (tenant, updated_at DESC, id DESC) WHERE tenant IS NOT NULL`); };
const without = async () => { await admin.query(`DROP INDEX IF EXISTS sessions_updated_idx; DROP INDEX IF EXISTS sessions_status_updated_idx; DROP INDEX IF EXISTS sessions_type_updated_idx; DROP INDEX IF EXISTS sessions_tenant_updated_idx; CREATE INDEX IF NOT EXISTS sessions_status_idx ON sessions (status); CREATE INDEX IF NOT EXISTS sessions_type_idx ON sessions (type)`); };
const res = { with: [], without: [] };
await round('warm');
for (let r = 0; r < Number(process.env.BENCH_ROUNDS ?? 3); r++) {
  await without(); await admin.query('VACUUM sessions'); res.without.push(await round('without 0011'));
  await with0011(); await admin.query('VACUUM sessions'); res.with.push(await round('with 0011'));
}
console.log(JSON.stringify(res));
await store.close();
await admin.query(`DROP SCHEMA ${schema} CASCADE`);
await admin.end();
