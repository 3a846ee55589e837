// A session a budget `pause` holds checks its limits again by itself (AGENTRY_BUDGET_RECHECK_MS;
// a `day` limit at the next window at the latest), so a raised limit that no resume reached —
// another node's limit cache not refreshed yet, a pause committed after the setBudget — still
// lets it go on. While the limit stays broken, a re-check runs no handler and loses or adds
// nothing: the held messages stay deferred, once each, and the handler never sees the re-check's
// wake. Real nats-server and Postgres.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineAgent } from '../../actors/index.js';
import { recheckAt } from '../../runtime/host/budgetTurn.js';
import { PG_URL, startStack, waitFor, type Stack } from '../helpers.js';

/** Reserves 10 tokens per message and settles them; records each message it handled, and every wake it saw. */
const spender = defineAgent({
  type: 'spender',
  onMessage: 'queue',
  initialState: () => ({ done: [] as number[], wakes: 0 }),
  async handle(batch, ctx) {
    for (const m of batch) {
      if (m.kind === 'wake') { ctx.state.wakes++; continue; }
      const r = await ctx.budget.reserve({ tokens: 10 });
      await ctx.budget.settle({ tokensIn: 10 }, r);
      ctx.state.done.push((m.body as { i: number }).i);
    }
    return undefined;
  },
});

let stack: Stack;
beforeAll(async () => {
  stack = await startStack('budgetrecheck', { agents: [spender], config: { budgetRecheckMs: 300 } });
});
afterAll(async () => { await stack?.stop(); });

async function sql<T>(text: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${stack.schema}` });
  await c.connect();
  try { return (await c.query(text, params)).rows as T[]; } finally { await c.end(); }
}

describe('budget pause re-check', () => {
  it('re-checks hold the turn while the limit is broken, and let it go on once the limit is raised without a resume', async () => {
    const rt = stack.rt;
    await rt.createAgent('rc-1', 'spender');
    await rt.setBudget({ agentId: 'rc-1' }, [{ metric: 'tokens', max: 25, policy: 'pause' }]);
    for (let i = 1; i <= 4; i++) await rt.sendMessage('rc-1', { i });
    await waitFor(async () => { const v = await rt.getAgent('rc-1'); return v.state === 'sleeping' && v.mailbox.deferred.length === 2; }, 'paused, messages 3 and 4 deferred');
    const paused = await rt.getAgent('rc-1');
    expect(paused.wake?.budget).toMatchObject({ policy: 'pause', metric: 'tokens' });
    expect(paused.wake?.until).toEqual(expect.any(Number)); // the re-check

    // Several re-checks while the limit is still broken: each tries the turn again (its reserve is
    // refused and the turn held again); no message is applied, lost or added, and the handler never
    // sees the re-check's wake.
    const wakes = async (): Promise<number> => Number((await sql<{ n: string }>("SELECT count(*)::text AS n FROM transitions WHERE session_id = 'rc-1' AND event = 'WAKE'"))[0]!.n);
    await waitFor(async () => (await wakes()) >= 3, 'three re-checks');
    const during = await rt.getAgent('rc-1');
    expect((during.userState as { done: number[]; wakes: number })).toEqual({ done: [1, 2], wakes: 0 });
    await waitFor(async () => { const v = await rt.getAgent('rc-1'); return v.state === 'sleeping' && v.mailbox.deferred.length === 2; }, 'still paused with the same two messages');

    // The limit raised in the store only (no setBudget, so no resume): the next re-check lets it go on.
    await sql(`UPDATE budget_limits SET limits = '[{"metric":"tokens","max":"1000","window":"lifetime","policy":"pause"}]'::jsonb WHERE scope = 'session' AND key = 'rc-1'`);
    await waitFor(async () => (await rt.getAgent('rc-1')).userState && ((await rt.getAgent('rc-1')).userState as { done: number[] }).done.length === 4, 'went on by itself', 30_000);
    expect((await rt.getAgent('rc-1')).userState).toEqual({ done: [1, 2, 3, 4], wakes: 0 });
    expect(await rt.listDeadLetters({ sessionId: 'rc-1' })).toEqual([]);
  });

  it('a day limit re-checks at the next window at the latest; others every recheck interval', () => {
    const noon = Date.UTC(2026, 10, 28, 12, 0, 0);
    const midnight = Date.UTC(2026, 10, 29, 0, 0, 0);
    expect(recheckAt('day', noon, 15 * 60_000)).toBe(noon + 15 * 60_000);
    expect(recheckAt('day', midnight - 60_000, 15 * 60_000)).toBe(midnight);
    expect(recheckAt('lifetime', noon, 60_000)).toBe(noon + 60_000);
    expect(recheckAt('6h', noon, 60_000)).toBe(noon + 60_000);
  });
});
