// Tenants and budgets (issue 17): a session's tenant is set once (createAgent or the first
// message's Agentry-Tenant) and another tenant's message is dead-lettered; list filters by tenant.
// ctx.budget.reserve/settle over the Postgres ledger, and each breach policy: abort (dead letter
// `budget`), warn (one budget.warning event per window), pause (the session sleeps, its messages
// deferred, until setBudget raises the limit), ask (a waitpoint a person answers). Limits change
// at run time. Real nats-server and Postgres.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineAgent } from '../../actors/index.js';
import { budgetedChat } from '../../examples/budgetedChat.js';
import { PG_URL, natsClient, publish, sleep, startStack, waitFor, type Stack } from '../helpers.js';

interface Msg { i?: number; tokens?: number; cost?: string; actual?: number; swallow?: boolean }

/** Reserves what each message asks for, settles it at `actual` tokens, records what it handled. */
const spender = defineAgent({
  type: 'spender',
  onMessage: 'queue',
  maxAttempts: 2,
  retryBaseMs: 10,
  initialState: () => ({ done: [] as number[], errors: [] as string[] }),
  async handle(batch, ctx) {
    for (const m of batch) {
      const b = (m.body ?? {}) as Msg;
      if (m.kind !== 'message') continue;
      try {
        const r = await ctx.budget.reserve({ tokens: b.tokens ?? 10, ...(b.cost ? { cost: b.cost } : {}) });
        await ctx.budget.settle({ tokensIn: Math.floor((b.actual ?? b.tokens ?? 10) / 2), tokensOut: Math.ceil((b.actual ?? b.tokens ?? 10) / 2), ...(b.cost ? { cost: b.cost } : {}) }, r);
      } catch (e) {
        if (!b.swallow) throw e;
        ctx.state.errors.push((e as { code?: string }).code ?? 'x');
      }
      ctx.state.done.push(b.i ?? -1);
    }
    return undefined;
  },
});

/** Reserves, fails its first attempt, and settles on the second (which finds the first's reservation). */
const retrier = defineAgent({
  type: 'retrier',
  maxAttempts: 2,
  retryBaseMs: 10,
  initialState: () => ({ reused: [] as boolean[] }),
  async handle(_batch, ctx) {
    const r = await ctx.budget.reserve({ tokens: 10 });
    if (ctx.attempt === 1) throw new Error('flaky LLM');
    ctx.state.reused.push(r.reused);
    await ctx.budget.settle({ tokensIn: 7 }, r);
    return undefined;
  },
});

/** A type with limits from its definition. */
const capped = defineAgent({
  type: 'capped',
  onMessage: 'queue',
  budget: { limits: [{ metric: 'turns', max: 2, window: 'day', policy: 'abort' }] },
  initialState: () => ({ n: 0 }),
  handle(_batch, ctx) { ctx.state.n++; return undefined; },
});

let stack: Stack;
beforeAll(async () => {
  stack = await startStack('budgets', { agents: [spender, capped, retrier, budgetedChat], config: { defaultAgentType: 'spender' } });
});
afterAll(async () => { await stack?.stop(); });

const userState = async (sid: string): Promise<{ done: number[]; errors: string[] }> => (await stack.rt.getAgent(sid)).userState as { done: number[]; errors: string[] };

async function sql<T>(text: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${stack.schema}` });
  await c.connect();
  try { return (await c.query(text, params)).rows as T[]; } finally { await c.end(); }
}

describe('tenants', () => {
  it('sets a tenant at creation or by the first message, refuses another, filters lists by it', async () => {
    await stack.rt.createAgent('tn-a', 'spender', undefined, { tenant: 'acme' });
    const nc = await natsClient(stack.nats.url);
    try {
      await publish(nc, 'tn-b', { i: 1 }, { 'Agentry-Tenant': 'globex' }); // creates it (default type) for globex
      await waitFor(async () => (await userState('tn-b').catch(() => null))?.done.length === 1, 'tn-b created by its first message');
      await publish(nc, 'tn-b', { i: 2 }, { 'Agentry-Tenant': 'acme' }); // another tenant: refused
      await publish(nc, 'tn-b', { i: 3 }); // no header: the session's own tenant
      await waitFor(async () => (await userState('tn-b')).done.length === 2, 'tn-b handled its own message');
      await waitFor(async () => (await stack.rt.listDeadLetters({ sessionId: 'tn-b' })).some((d) => d.reason === 'tenant-mismatch'), 'the other tenant dead-lettered');
    } finally { await nc.close(); }
    expect((await userState('tn-b')).done).toEqual([1, 3]);
    expect((await stack.rt.getAgent('tn-a')).tenant).toBe('acme');
    expect((await stack.rt.getAgent('tn-b')).tenant).toBe('globex');
    expect((await stack.rt.listAgents({ tenant: 'acme' })).map((s) => s.id)).toEqual(['tn-a']);
    expect((await stack.rt.listAgents({ tenant: 'globex' })).map((s) => [s.id, s.tenant])).toEqual([['tn-b', 'globex']]);
    const rows = await sql<{ id: string; tenant: string | null }>("SELECT id, tenant FROM sessions WHERE id LIKE 'tn-%' ORDER BY id");
    expect(rows).toEqual([{ id: 'tn-a', tenant: 'acme' }, { id: 'tn-b', tenant: 'globex' }]);
    await expect(stack.rt.createAgent('tn-c', 'spender', undefined, { tenant: 'bad tenant' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});

describe('budgets', () => {
  it('reserves and settles in the ledger, per session and tenant, in exact decimals', async () => {
    await stack.rt.createAgent('bg-1', 'spender', undefined, { tenant: 'ledger' });
    await stack.rt.sendMessage('bg-1', { i: 1, tokens: 100, actual: 40, cost: '0.1' });
    await stack.rt.sendMessage('bg-1', { i: 2, tokens: 100, actual: 60, cost: '0.2' });
    await waitFor(async () => (await userState('bg-1')).done.length === 2, 'two turns');
    const r = await stack.rt.getBudget({ agentId: 'bg-1' });
    const life = r.usage.find((u) => u.window === 'lifetime')!;
    expect(life.totals).toMatchObject({ tokens: '100', tokensIn: '50', tokensOut: '50', cost: '0.3' }); // 0.1 + 0.2 exactly
    expect(life.open).toBe(0);
    await waitFor(async () => (await stack.rt.getBudget({ tenant: 'ledger' })).usage[0]?.totals.turns === '2', 'two metered turns');
    const t = await stack.rt.getBudget({ tenant: 'ledger' });
    expect(t.usage[0]!.totals.cost).toBe('0.3');
  });

  it('abort: a reservation over the limit fails fast with BUDGET_EXCEEDED and dead-letters the turn as budget', async () => {
    await stack.rt.createAgent('bg-abort', 'spender');
    await stack.rt.setBudget({ agentId: 'bg-abort' }, [{ metric: 'tokens', max: 150, policy: 'abort' }]);
    await stack.rt.sendMessage('bg-abort', { i: 1, tokens: 100 });
    await stack.rt.sendMessage('bg-abort', { i: 2, tokens: 100 }); // 100 + 100 > 150
    await stack.rt.sendMessage('bg-abort', { i: 3, tokens: 100, swallow: true }); // the handler catches it: still aborted
    await waitFor(async () => (await stack.rt.listDeadLetters({ sessionId: 'bg-abort' })).filter((d) => d.reason === 'budget').length === 2, 'two budget dead letters');
    expect((await userState('bg-abort')).done).toEqual([1]);
    const dl = (await stack.rt.listDeadLetters({ sessionId: 'bg-abort' })).find((d) => d.reason === 'budget')!;
    expect(dl.attempts).toBe(1); // terminal: not retried
    expect(dl.error).toMatch(/budget exceeded/);
  });

  it('limits from the agent definition apply per session; setBudget replaces them at run time', async () => {
    await stack.rt.createAgent('bg-cap', 'capped');
    for (let i = 0; i < 3; i++) await stack.rt.sendMessage('bg-cap', { i });
    await waitFor(async () => (await stack.rt.listDeadLetters({ sessionId: 'bg-cap' })).some((d) => d.reason === 'budget'), 'the third turn aborted');
    expect(((await stack.rt.getAgent('bg-cap')).userState as { n: number }).n).toBe(2);
    // Raised at run time for the type: the next turn runs.
    await stack.rt.setBudget({ agentType: 'capped' }, [{ metric: 'turns', max: 10, window: 'day', policy: 'abort' }]);
    await stack.rt.sendMessage('bg-cap', { i: 4 });
    await waitFor(async () => ((await stack.rt.getAgent('bg-cap')).userState as { n: number }).n === 3, 'a turn after the raise');
    expect((await stack.rt.getBudget({ agentType: 'capped' })).limits[0]).toMatchObject({ source: 'api', max: '10' });
    await stack.rt.setBudget({ agentType: 'capped' }, null);
    expect((await stack.rt.getBudget({ agentType: 'capped' })).limits[0]).toMatchObject({ source: 'definition', max: '2' });
  });

  it('warn: the turn goes on and budget.warning is published once per window', async () => {
    const nc = await natsClient(stack.nats.url);
    try {
      await stack.rt.createAgent('bg-warn', 'spender', undefined, { tenant: 'warned' });
      await stack.rt.setBudget({ tenant: 'warned' }, [{ metric: 'cost', max: '0.15', window: '24h', policy: 'warn' }]);
      for (let i = 1; i <= 4; i++) await stack.rt.sendMessage('bg-warn', { i, tokens: 1, cost: '0.1' });
      await waitFor(async () => (await userState('bg-warn')).done.length === 4, 'four turns despite the warning');
      await sleep(500); // a second warning would have been published by now
      const events = (await waitFor(async () => {
        const got = await stack.rt.listEvents({ type: 'budget.warning' });
        return got.length > 0 ? got : null;
      }, 'a warning event')).map((e) => e.data);
      expect(events).toHaveLength(1); // 3 reservations broke it; one event for the window
      expect(events[0]).toMatchObject({ agentId: 'bg-warn', tenant: 'warned', metric: 'cost', max: '0.15', policy: 'warn' });
    } finally { await nc.close(); }
  });

  it('pause: the session sleeps, its messages wait in the mailbox, and raising the limit resumes it', async () => {
    await stack.rt.createAgent('bg-pause', 'spender');
    await stack.rt.setBudget({ agentId: 'bg-pause' }, [{ metric: 'tokens', max: 25, policy: 'pause' }]);
    for (let i = 1; i <= 4; i++) await stack.rt.sendMessage('bg-pause', { i, tokens: 10 });
    await waitFor(async () => (await stack.rt.getAgent('bg-pause')).state === 'sleeping', 'paused');
    const v = await stack.rt.getAgent('bg-pause');
    expect(v.wake?.budget).toMatchObject({ policy: 'pause', metric: 'tokens', max: '25' });
    await waitFor(async () => (await stack.rt.getAgent('bg-pause')).mailbox.deferred.length === 2, 'messages 3 and 4 deferred');
    expect((await userState('bg-pause')).done).toEqual([1, 2]);
    // setBudget finds held sessions in the store: wait until the pause is committed.
    await waitFor(async () => (await sql("SELECT 1 FROM sessions WHERE id = 'bg-pause' AND status = 'sleeping'")).length === 1, 'the pause committed');
    expect((await stack.rt.getBudget({ agentId: 'bg-pause' })).held).toMatchObject({ policy: 'pause' });
    const r = await stack.rt.setBudget({ agentId: 'bg-pause' }, [{ metric: 'tokens', max: 1000, policy: 'pause' }]);
    expect(r.resumed).toBe(1);
    await waitFor(async () => (await userState('bg-pause')).done.length === 4, 'resumed and handled the held messages');
    expect((await userState('bg-pause')).done).toEqual([1, 2, 3, 4]);
    expect((await stack.rt.listDeadLetters({ sessionId: 'bg-pause' }))).toEqual([]);
  });

  it('ask: the session waits on a waitpoint; continue runs the turn, stop stops the session', async () => {
    await stack.rt.createAgent('bg-ask', 'spender');
    await stack.rt.setBudget({ agentId: 'bg-ask' }, [{ metric: 'tokens', max: 15, policy: 'ask' }]);
    await stack.rt.sendMessage('bg-ask', { i: 1, tokens: 10 });
    await stack.rt.sendMessage('bg-ask', { i: 2, tokens: 10 });
    await waitFor(async () => (await stack.rt.getAgent('bg-ask')).state === 'waiting', 'asking');
    const wp = (await stack.rt.getAgent('bg-ask')).wait!.waitpoint!.id;
    expect(wp.startsWith('budget-')).toBe(true);
    await waitFor(async () => (await sql("SELECT 1 FROM waitpoints WHERE session_id = 'bg-ask'")).length === 1, 'the ask committed');
    expect((await stack.rt.waitpoints.list({ tag: 'budget', sessionId: 'bg-ask' })).waitpoints.map((w) => w.id)).toEqual([wp]);
    // A person raises the limit and says continue (setBudget does the completing).
    const r = await stack.rt.setBudget({ agentId: 'bg-ask' }, [{ metric: 'tokens', max: 25, policy: 'ask' }]);
    expect(r.resumed).toBe(1);
    await waitFor(async () => (await userState('bg-ask')).done.length === 2, 'the held message ran');
    // Over again: this time the person says stop.
    await stack.rt.sendMessage('bg-ask', { i: 3, tokens: 10 });
    await waitFor(async () => (await stack.rt.getAgent('bg-ask')).state === 'waiting', 'asking again');
    await waitFor(async () => (await sql("SELECT 1 FROM waitpoints WHERE session_id = 'bg-ask' AND status = 'pending'")).length === 1, 'the second ask committed');
    const wp2 = (await stack.rt.getAgent('bg-ask')).wait!.waitpoint!.id;
    await stack.rt.waitpoints.complete(wp2, { action: 'stop' });
    await waitFor(async () => (await stack.rt.getAgent('bg-ask')).state === 'stopped', 'stopped by the answer');
    expect((await userState('bg-ask')).done).toEqual([1, 2]);
  });

  it('the README example reserves and settles around its fake LLM call, and pauses at its daily token limit', async () => {
    await stack.rt.createAgent('bg-chat', 'budgeted-chat');
    for (let i = 1; i <= 3; i++) {
      await stack.rt.sendMessage('bg-chat', `hello ${i}`);
      await waitFor(async () => ((await stack.rt.getAgent('bg-chat')).userState as { turns: number }).turns === i, `turn ${i}`);
    }
    const used = (await stack.rt.getBudget({ agentId: 'bg-chat' })).limits.find((l) => l.metric === 'tokens')!;
    expect(Number(used.used)).toBeGreaterThan(1000); // three settled calls of ~350 tokens: no room for a 1,000-token reservation
    await stack.rt.sendMessage('bg-chat', 'hello 4');
    await waitFor(async () => (await stack.rt.getAgent('bg-chat')).state === 'sleeping', 'paused by its daily token limit');
    expect((await stack.rt.getAgent('bg-chat')).wake?.budget).toMatchObject({ metric: 'tokens', window: 'day', policy: 'pause' });
  });

  it('a retried turn reuses its reservation: one ledger row, never reserved twice', async () => {
    await stack.rt.createAgent('bg-retry', 'retrier', undefined, { tenant: 'retry' }); // a tenant: its turns are metered
    await stack.rt.sendMessage('bg-retry', { i: 1 });
    await waitFor(async () => ((await stack.rt.getAgent('bg-retry')).userState as { reused: boolean[] }).reused.length === 1, 'the second attempt committed');
    expect(((await stack.rt.getAgent('bg-retry')).userState as { reused: boolean[] }).reused).toEqual([true]);
    const rows = await sql<{ id: string; state: string; tokens_in: string }>("SELECT id, state, tokens_in::text FROM budget_ledger WHERE session_id = 'bg-retry' AND state <> 'metered'");
    expect(rows).toEqual([{ id: expect.stringMatching(/^bg-retry:\d+:0$/), state: 'settled', tokens_in: '7' }]);
    // Both attempts were metered as turns.
    await waitFor(async () => (await sql("SELECT 1 FROM budget_ledger WHERE session_id = 'bg-retry' AND state = 'metered'")).length === 2, 'two metered attempts');
  });
});
