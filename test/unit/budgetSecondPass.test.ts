// setBudget's count of resumed sessions is honest (issue 17): it looks for held sessions at once
// and again `settleMs` later (a node with the old limits may hold one meanwhile). `resumed` is the
// first pass only and the answer says when the second runs; with `wait` the call waits for the
// second pass and counts it in `resumedLater`, within a deadline. A fake store drives which
// sessions are held at each pass; the timers are real and short.
import { describe, expect, it } from 'vitest';
import { createBudgetApi, type BudgetApiDeps } from '../../runtime/budgetApi.js';
import type { BudgetHeldSession } from '../../persistence/budget.js';

/** Budget API deps whose store reports `passes[i]` at the i-th look for held sessions. */
function depsWith(passes: BudgetHeldSession[][], opts: { slowSecondPass?: boolean } = {}): { deps: BudgetApiDeps; resumed: string[] } {
  const resumed: string[] = [];
  let look = 0;
  const deps = {
    budgets: { setLimits: async (_s: string, _k: string, limits: unknown) => limits },
    store: {
      budgetHeldSessions: async () => {
        const i = look++;
        if (i > 0 && opts.slowSecondPass) await new Promise((r) => setTimeout(r, 2_000));
        return passes[i] ?? [];
      },
    },
    waitpoints: { complete: async () => undefined },
    logger: { info: () => undefined, warn: () => undefined },
    getAgent: async () => { throw new Error('not used'); },
    resume: async (id: string) => { resumed.push(id); },
    now: () => Date.now(),
    settleMs: 50,
    secondPassDeadlineMs: 200,
  } as unknown as BudgetApiDeps;
  return { deps, resumed };
}

const held = (id: string): BudgetHeldSession => ({ id, status: 'sleeping', waitpointId: null });
const limits = [{ metric: 'tokens', max: 10, policy: 'pause' }];

describe('setBudget: the second pass', () => {
  it('counts only the first pass in `resumed` and says when the second runs', async () => {
    const { deps, resumed } = depsWith([[held('a')], [held('b')]]);
    const t0 = Date.now();
    const r = await createBudgetApi(deps).setBudget({ tenant: 't' }, limits);
    expect(r.resumed).toBe(1);
    expect(r.resumedLater).toBeUndefined();
    expect(r.secondPassAt).toBeGreaterThanOrEqual(t0 + 50);
    expect(resumed).toEqual(['a']);
    await new Promise((res) => setTimeout(res, 300));
    expect(resumed).toEqual(['a', 'b']); // the second pass still ran
  });

  it('with wait, reports what the second pass resumed', async () => {
    const { deps, resumed } = depsWith([[], [held('late')]]);
    const r = await createBudgetApi(deps).setBudget({ agentId: 'late' }, limits, { wait: true });
    expect(r).toMatchObject({ scope: 'session', key: 'late', resumed: 0, resumedLater: 1 });
    expect(resumed).toEqual(['late']);
  });

  it('with wait, answers at its deadline without a count when the second pass hangs', async () => {
    const { deps } = depsWith([[held('a')], [held('b')]], { slowSecondPass: true });
    const t0 = Date.now();
    const r = await createBudgetApi(deps).setBudget({ tenant: 't' }, limits, { wait: true });
    expect(Date.now() - t0, 'it waited for the second pass until its deadline').toBeGreaterThanOrEqual(245);
    expect(r.resumed).toBe(1);
    expect(r.resumedLater).toBeUndefined();
  });
});
