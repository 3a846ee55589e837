// Fair share between tenants (issue 17 §3), over real NATS + Postgres, checked by order, never by
// time: with one active slot, tenant A has a backlog of 12 sessions when tenant B's one message
// arrives; B's turn must start within the next two admissions (first-come order would run it
// 13th; checked: this fails with one lane for everyone).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineAgent } from '../../actors/index.js';
import { startStack, waitFor, type Stack } from '../helpers.js';

const started: string[] = [];
let gate: (() => void) | null = null;
const worker = defineAgent({
  type: 'worker',
  onMessage: 'queue',
  async handle(_batch, ctx) {
    started.push(ctx.sessionId);
    // The first turn holds the only slot until the test has queued everything.
    if (started.length === 1) await new Promise<void>((r) => { gate = r; });
    else await new Promise((r) => setTimeout(r, 5));
    return undefined;
  },
});

let stack: Stack;
beforeAll(async () => {
  stack = await startStack('fairness', { agents: [worker], config: { maxActiveSessions: 1 } });
});
afterAll(async () => { await stack?.stop(); });

describe('tenant fairness', () => {
  it('admits a small tenant within the next round, not behind a big tenant\'s backlog', async () => {
    for (let i = 0; i <= 12; i++) await stack.rt.createAgent(`fa-${i}`, 'worker', undefined, { tenant: 'A' });
    await stack.rt.createAgent('fb-0', 'worker', undefined, { tenant: 'B' });
    await stack.rt.sendMessage('fa-0', 'go');
    await waitFor(() => gate !== null, 'the first turn holding the slot');
    for (let i = 1; i <= 12; i++) await stack.rt.sendMessage(`fa-${i}`, 'go');
    await waitFor(() => stack.rt.host.waitingForSlot() === 12, 'A\'s backlog queued');
    await stack.rt.sendMessage('fb-0', 'go');
    await waitFor(() => stack.rt.host.waitingForSlot() === 13, 'B queued behind it');
    gate!();
    await waitFor(() => started.length === 14, 'every turn ran', 60_000);
    const b = started.indexOf('fb-0');
    // started[0] held the slot; B is admitted at the second admission after it at the latest.
    expect(b, `admission order: ${started.join(' ')}`).toBeGreaterThan(0);
    expect(b).toBeLessThanOrEqual(2);
  });
});
