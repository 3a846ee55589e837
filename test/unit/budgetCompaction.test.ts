// The runtime's side of ledger compaction (runtime/budgets.ts): how far back single rows are
// kept — the configured keep, stretched to the longest rolling window of any limit plus a day —
// and one round folding what is older, on the memory store (the SQL is covered on every backend
// by test/persistence/budgetStore.test.ts).
import { describe, expect, it } from 'vitest';
import { createMemoryStore } from '../../persistence/index.js';
import { Budgets } from '../../runtime/budgets.js';
import { createLogger } from '../../runtime/logger.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NOW = Date.UTC(2026, 10, 28, 12);

function budgets(keep: number) {
  const store = createMemoryStore(() => NOW);
  const b = new Budgets({ store, agents: new Map(), logger: createLogger('silent'), now: () => NOW, ledgerKeepMs: keep, publishWarning: () => Promise.resolve() });
  return { store, b };
}

describe('budget ledger compaction in the runtime', () => {
  it('keeps single rows for the configured time, or for the longest rolling window in use plus a day', async () => {
    const { b } = budgets(8 * DAY);
    expect(b.ledgerHorizonMs()).toBe(8 * DAY);
    await b.setLimits('tenant', 'big', [{ metric: 'cost', max: '10', window: '300h', policy: 'pause' }, { metric: 'tokens', max: 5, window: 'day', policy: 'abort' }]);
    expect(b.ledgerHorizonMs()).toBe(300 * HOUR + DAY);
    await b.setLimits('tenant', 'big', null);
    expect(b.ledgerHorizonMs()).toBe(8 * DAY);
  });

  it('one round folds the closed rows older than the horizon; lifetime usage is unchanged', async () => {
    const { store, b } = budgets(8 * DAY);
    await store.recordBudget([
      { id: 'c1:1:0', sessionId: 'c1', tenant: 't', at: NOW - 9 * DAY, state: 'metered', amounts: { turns: 1, wallMs: 5 } },
      { id: 'c1:2:0', sessionId: 'c1', tenant: 't', at: NOW - 9 * DAY, state: 'settled', amounts: { tokensIn: 3, cost: '0.5' } },
      { id: 'c1:3:0', sessionId: 'c1', tenant: 't', at: NOW - 7 * DAY, state: 'settled', amounts: { tokensIn: 4 } },
    ]);
    const before = await store.budgetUsage('session', 'c1', [0, NOW - 8 * DAY]);
    expect(await b.compact()).toBe(2);
    expect(b.compacted).toBe(2);
    expect(await b.compact()).toBe(0);
    expect(await store.budgetUsage('session', 'c1', [0, NOW - 8 * DAY])).toEqual(before);
  });
});
