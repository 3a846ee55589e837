// Budget reservations across kill -9 (issue 17 §2), over real NATS + Postgres with the runtime in
// a child process (test/fixtures/crash-runtime.mjs, agent `rec-budget`). The node reserves for a
// turn and is SIGKILLed before it settles. While no node runs, the reservation counts at its
// reserved amount (durable: nothing is lost). The restarted node re-runs the turn, which finds
// the reservation by its id (session, first message, call index) instead of reserving again, and
// settles it: one ledger row with the actual amounts, and one metered turn. The tenant's limit
// then admits exactly the rest of its budget: a leaked or doubled reservation would refuse it.
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { childSuite, startChild, type ChildRuntime } from './childRuntime.js';
import { assertDistFresh } from '../builtFresh.js';
import { PG_URL, waitFor } from '../helpers.js';

const t = childSuite('budgetcrash', { fresh: () => { assertDistFresh('dist/runtime/budgets.js', ['runtime/budgets.ts', 'runtime/host/budgetTurn.ts', 'persistence/budgetQueries.ts', 'persistence/migrations']); } });

async function sql<T>(text: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${t.schema}` });
  await c.connect();
  try { return (await c.query(text, params)).rows as T[]; } finally { await c.end(); }
}

interface Row { id: string; state: string; tokens: string; tokens_in: string; cost: string; turns: string }
const ledger = (): Promise<Row[]> => sql<Row>(
  "SELECT id, state, tokens::text, tokens_in::text, cost::text, turns::text FROM budget_ledger WHERE session_id = 'bk-1' ORDER BY state, id",
);
const userState = async (c: ChildRuntime): Promise<{ done: number[]; reused: boolean[] }> =>
  (await c.ctl<{ userState: { done: number[]; reused: boolean[] } }>('getAgent', 'bk-1')).userState;

describe('budget reservations across kill -9', () => {
  it('a reservation made before a crash is reused by the re-run: neither leaked nor counted twice', async () => {
    let child = t.child = await startChild(t.nc, { ...t.cfg, stallAfterReserve: true }, t.log);
    await child.ctl('createAgent', 'bk-1', 'rec-budget', { done: [], reused: [] }, { tenant: 'crash' });
    await child.ctl('setBudget', { tenant: 'crash' }, [{ metric: 'tokens', max: 250, policy: 'abort' }, { metric: 'cost', max: '3.25', policy: 'abort' }]);
    await child.ctl('sendMessage', 'bk-1', { i: 1, tokens: 100, cost: '1.5', actual: 40, actualCost: '0.75' });
    await waitFor(async () => (await ledger()).some((r) => r.state === 'reserved'), 'the reservation stored', 60_000, 50);
    await child.kill(); // between reserve and settle

    // While no node runs: the reservation holds its reserved amount, once.
    const held = (await ledger()).filter((r) => r.state !== 'metered');
    expect(held).toEqual([{ id: expect.stringMatching(/^bk-1:\d+:0$/), state: 'reserved', tokens: '100', tokens_in: '0', cost: '1.5', turns: '0' }]);

    child = t.child = await startChild(t.nc, t.cfg, t.log);
    await waitFor(async () => (await userState(child)).done.length === 1, 'the turn re-run after the restart', 90_000, 50);
    expect(await userState(child)).toEqual({ done: [1], reused: [true] });
    const settled = (await ledger()).filter((r) => r.state !== 'metered');
    expect(settled).toEqual([{ id: held[0]!.id, state: 'settled', tokens: '0', tokens_in: '40', cost: '0.75', turns: '0' }]);

    // The rest of the tenant's budget is exactly 250 - 40 tokens and 3.25 - 0.75 cost: both fit.
    await child.ctl('sendMessage', 'bk-1', { i: 2, tokens: 210, cost: '2.5', actual: 210, actualCost: '2.5' });
    await waitFor(async () => (await userState(child)).done.length === 2, 'the second turn', 60_000, 50);
    // And nothing more does.
    await child.ctl('sendMessage', 'bk-1', { i: 3, tokens: 1, cost: '0', actual: 1, actualCost: '0' });
    await waitFor(async () => (await child.ctl<{ reason: string }[]>('listDeadLetters', { sessionId: 'bk-1' })).some((d) => d.reason === 'budget'), 'the third refused', 60_000, 50);
    const tenant = await child.ctl<{ usage: { window: string; totals: Record<string, string> }[] }>('getBudget', { tenant: 'crash' });
    // Turns: the crashed run and its re-run are one turn (same run id), then turns 2 and 3 (3 was admitted, then aborted).
    expect(tenant.usage.find((u) => u.window === 'lifetime')!.totals).toMatchObject({ tokens: '250', tokensIn: '250', cost: '3.25', turns: '3' });
    expect(await child.stop()).toBe(0);
  });
});
