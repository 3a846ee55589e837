// Outbox ids across incarnations of one session id. A session's outputs leave through the outbox
// with a deterministic `Nats-Msg-Id`, so JetStream drops a row sent twice (a crash between the
// publish and the row's delete). A session purged (sessionTtl) and created again under the same
// id starts over at version 1: with ids `<session>:<version>:<i>` its first mail within the
// streams' 2-minute duplicate window was dropped as a repeat of the old incarnation's, and never
// reached its recipient. Ids now name the incarnation (a row sent again keeps its stored id, so a
// resend within one incarnation is still dropped).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineAgent } from '../../actors/defineAgent.js';
import { batchRange, outboxIdOf } from '../../runtime/host/commitRecord.js';
import { runKeyOf, turnKeyOf } from '../../runtime/budgets.js';
import { sleep, startStack, waitFor, type Stack } from '../helpers.js';

const got: { from: string; n: number }[] = [];

const src = defineAgent({
  type: 'inc-src',
  onMessage: 'queue',
  handle(batch, ctx) {
    for (const m of batch) {
      const n = (m.body as { n?: number } | null)?.n ?? -1;
      ctx.mail('inc-dst', { from: ctx.sessionId, n });
    }
  },
});
const dst = defineAgent({
  type: 'inc-dst',
  onMessage: 'queue',
  handle(batch) {
    for (const m of batch) if (m.kind === 'mail') got.push(m.body as { from: string; n: number });
  },
});

describe('outbox ids', () => {
  it('keep the old form for sessions without an incarnation, and name the incarnation otherwise', () => {
    expect(outboxIdOf('s-1', undefined, 3, 0)).toBe('s-1:3:0');
    expect(outboxIdOf('s-1', 'AbC-_12x', 3, 0)).toBe('s-1:AbC-_12x:3:0');
    expect(outboxIdOf('s-1', 'AbC-_12x', 3, 0)).not.toBe(outboxIdOf('s-1', 'zzzzzzzz', 3, 0));
  });
});

describe('run keys (ledger and dead-letter ids)', () => {
  it('keep the old form for sessions without an incarnation, and name the incarnation otherwise', () => {
    expect(runKeyOf(undefined, 4)).toBe('4');
    expect(runKeyOf('AbC-_12x', 4)).toBe('AbC-_12x.4');
    expect(turnKeyOf([], 4, 'AbC-_12x')).toBe('wAbC-_12x.4');
    const wakeRun = { runId: 4, batch: [{ seq: 0, kind: 'wake' }] } as unknown as Parameters<typeof batchRange>[0];
    expect(batchRange(wakeRun, 'AbC-_12x')).toBe('runAbC-_12x.4');
    expect(batchRange(wakeRun, undefined)).toBe('run4');
  });
});

describe('a session purged and created again under the same id', () => {
  let stack: Stack;
  beforeAll(async () => { stack = await startStack('outboxinc', { agents: [src, dst] }); }, 60_000);
  afterAll(async () => { await stack?.stop(); });

  it('its new incarnation’s first mail reaches the recipient (within the 2-minute duplicate window)', async () => {
    const { rt, store } = stack;
    await rt.createAgent('inc-dst', 'inc-dst');
    await rt.createAgent('inc-a', 'inc-src');
    await rt.sendMessage('inc-a', { n: 1 });
    await waitFor(() => got.some((g) => g.n === 1) || null, 'the first incarnation’s mail', 30_000);
    // Purge it (what sessionTtl with purge does): stop, then delete its rows once its outbox row is gone.
    await waitFor(async () => (await rt.host.expireIdle('inc-a', Date.now() + 60_000, true)) === 'purged' || null, 'inc-a purged', 30_000, 200);
    expect(await store.loadSession('inc-a')).toBeNull();
    // The same id again: version 1, 2, … as before.
    await rt.createAgent('inc-a', 'inc-src');
    await rt.sendMessage('inc-a', { n: 2 });
    await waitFor(() => got.some((g) => g.n === 2) || null,
      'the second incarnation’s mail (dropped as a JetStream duplicate of the first one’s when both are named <session>:<version>:<i>)', 30_000);
    await sleep(500);
    expect(got).toEqual([{ from: 'inc-a', n: 1 }, { from: 'inc-a', n: 2 }]);
  }, 120_000);

  it('its new incarnation’s turns are metered beside the old one’s, not over them', async () => {
    // Run ids start again at 1: ledger ids `<session>:t:<run>` of the new incarnation overwrote
    // the old one's, and the tenant's usage lost the old turns.
    const { rt } = stack;
    const turns = async (): Promise<string | undefined> => (await rt.getBudget({ tenant: 'inc-t' })).usage[0]?.totals.turns;
    await rt.createAgent('inc-b', 'inc-dst', undefined, { tenant: 'inc-t' });
    await rt.sendMessage('inc-b', { n: 1 });
    await waitFor(async () => (await turns()) === '1' || null, 'the first incarnation’s turn metered', 30_000);
    await waitFor(async () => (await rt.host.expireIdle('inc-b', Date.now() + 60_000, true)) === 'purged' || null, 'inc-b purged', 30_000, 200);
    await rt.createAgent('inc-b', 'inc-dst', undefined, { tenant: 'inc-t' });
    await rt.sendMessage('inc-b', { n: 2 });
    await waitFor(async () => (await turns()) === '2' || null, 'both incarnations’ turns metered (the second overwrote the first when keyed by run id alone)', 30_000);
    await sleep(500);
    expect(await turns()).toBe('2');
  }, 120_000);
});
