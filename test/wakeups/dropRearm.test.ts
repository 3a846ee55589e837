// A wake fired into a live session whose commit is then refused (here: STALE_VERSION, the row
// changed under it, as an eager `agentry migrate` does) drops the live copy. The scheduler marked
// the wake fired when it handed it over, and periodic timer reads only look ahead of what they
// read: on the code before this test the wake waited for the next full read, up to 5 minutes.
// Now the host tells the wake-ups that it dropped the session; they read its stored row and arm
// the wake that is still due, which runs once on a fresh hydration. Real NATS and Postgres.
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { defineAgent } from '../../actors/index.js';
import { PG_URL, pgSuite, startRuntime, waitFor } from '../helpers.js';

interface St { wakes: number; msgs: number }
const napper = defineAgent({
  type: 'napper',
  onMessage: 'queue',
  initialState: (): St => ({ wakes: 0, msgs: 0 }),
  handle(batch, ctx) {
    const st = ctx.state;
    let until: number | null = null;
    for (const m of batch) {
      if (m.kind === 'wake') st.wakes++;
      else { st.msgs++; until = (m.body as { until: number }).until; }
    }
    return until !== null ? ctx.sleep({ until }) : undefined;
  },
});

const t = pgSuite('droprearm');

describe('a wake whose commit is refused', () => {
  it('fires again from the stored row once the live copy is dropped, and runs once', async () => {
    // A two-hour horizon: periodic reads come every hour and read ahead only; no full read within the test.
    t.rt = await startRuntime(t.nats.url, { agents: [napper], store: t.store, config: { timerHorizonMs: 2 * 3_600_000 } });
    await t.rt.createAgent('nap-1', 'napper');
    const until = Date.now() + 1500;
    await t.rt.sendMessage('nap-1', { until });
    await waitFor(async () => (await t.rt!.getAgent('nap-1'))?.state === 'sleeping', 'asleep');
    // The row changes under the live copy: its next commit (the wake's) is refused as stale.
    const c = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${t.schema}` });
    await c.connect();
    try { await c.query("UPDATE sessions SET version = version + 1 WHERE id = 'nap-1'"); } finally { await c.end(); }

    await waitFor(async () => ((await t.rt!.getAgent('nap-1'))?.userState as St | undefined)?.wakes === 1, 'the wake to run after the drop', 20_000, 50);
    const v = (await t.rt.getAgent('nap-1'));
    expect(v.userState).toEqual({ wakes: 1, msgs: 1 });
    expect(v.state).toBe('idle');
  }, 60_000);
});
