// A control command answers success only for a change the store committed. The session's stored
// row is changed behind the runtime's back (what another writer, or a stale live copy's
// successor, looks like to it): the command's commit is refused as stale, the live copy is
// dropped and reloads from the store. Before 2026-11-28 `sleepAgent` then answered success, with
// a view that said `sleeping`, for a change that was never stored; now it fails with a retryable
// NOT_READY, and a retry applies it. Real NATS and Postgres.
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { defineAgent } from '../../actors/index.js';
import { PG_URL, pgSuite, startRuntime } from '../helpers.js';

const t = pgSuite('cmdnotstored');

const idle = defineAgent({ type: 'cns-idle', initialState: () => ({}), handle() { return undefined; } });

/** Bumps a session's stored version as another writer would. */
async function bumpStoredVersion(sid: string): Promise<void> {
  const c = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${t.schema}` });
  await c.connect();
  try {
    const r = await c.query('UPDATE sessions SET version = version + 1 WHERE id = $1', [sid]);
    expect(r.rowCount).toBe(1);
  } finally { await c.end(); }
}

describe('a control command whose commit the store refuses', () => {
  it('fails with a retryable NOT_READY instead of answering success, and a retry applies it', async () => {
    t.rt = await startRuntime(t.nats.url, { agents: [idle], store: t.store });
    const rt = t.rt;
    await rt.createAgent('cns-1', 'cns-idle');
    await bumpStoredVersion('cns-1');
    const err = await rt.sleepAgent('cns-1', { durationMs: 3_600_000 }).then(() => null, (e: unknown) => e);
    expect(err).toMatchObject({ code: 'NOT_READY', retryable: true });
    expect((await t.store.loadSession('cns-1'))?.status).toBe('idle'); // nothing was stored
    // The dropped copy reloads from the store: the retry goes through and is stored.
    const view = await rt.sleepAgent('cns-1', { durationMs: 3_600_000 });
    expect(view.state).toBe('sleeping');
    expect((await t.store.loadSession('cns-1'))?.status).toBe('sleeping');
  }, 60_000);
});
