// A handler whose result Postgres cannot store (issue 11, item 4): user state with a NUL
// character (jsonb refuses it). Before, the group committer retried that commit forever, one transaction at a
// time, so no session on the node committed again. Now the record is isolated (the batch is
// halved until it stands alone), the run's messages become one dead letter (`unstorable`), the
// session goes on from its last good snapshot, and every other session commits.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineAgent } from '../../actors/index.js';
import { natsClient, publish, startStack, waitFor, type Stack } from '../helpers.js';

const writer = defineAgent<{ seen: string[] }>({
  type: 'writer',
  onMessage: 'queue',
  initialState: () => ({ seen: [] }),
  handle(batch, ctx) {
    for (const m of batch) {
      const text = (m.body as { text: string }).text;
      // "poison" is stored as a NUL-bearing string: the handler's own doing, not the input's.
      ctx.state.seen.push(text === 'poison' ? 'bad\u0000state' : text);
      // A reply with a NUL is fine: outbox and log keep the JSON text, where it is an escape.
      if (text === 'with-nul-reply') ctx.reply({ text: 'nul\u0000reply' });
    }
    return undefined;
  },
});

describe('a handler result Postgres cannot store', () => {
  let stack: Stack;
  beforeAll(async () => { stack = await startStack('poisonout', { agents: [writer], config: { defaultAgentType: 'writer' } }); });
  afterAll(async () => { await stack?.stop(); });

  it('costs one dead letter: the session goes on, and every other session commits', async () => {
    const nc = await natsClient(stack.nats.url);
    const seenOf = async (sid: string): Promise<string[]> => {
      const rec = await stack.store.loadSession(sid);
      return (rec?.snapshot as { context?: { userState?: { seen?: string[] } } } | undefined)?.context?.userState?.seen ?? [];
    };
    try {
      for (const sid of ['po-a', 'po-b']) await publish(nc, sid, { text: 'one' });
      await publish(nc, 'po-a', { text: 'poison' });
      await publish(nc, 'po-b', { text: 'with-nul-reply' });
      for (let i = 0; i < 20; i++) await publish(nc, `po-other-${i}`, { text: 'fine' });
      for (const sid of ['po-a', 'po-b']) await publish(nc, sid, { text: 'two' });

      await waitFor(async () => (await seenOf('po-a')).includes('two') && (await seenOf('po-b')).includes('two'), 'both sessions went on past the poison');
      expect(await seenOf('po-a')).toEqual(['one', 'two']);
      expect(await seenOf('po-b')).toEqual(['one', 'with-nul-reply', 'two']);
      for (let i = 0; i < 20; i++) await waitFor(async () => (await seenOf(`po-other-${i}`)).length === 1, `po-other-${i} committed`);
      const dls = await stack.store.listDeadLetters();
      const mine = dls.filter((d) => d.sessionId === 'po-a' || d.sessionId === 'po-b');
      expect(mine.map((d) => [d.sessionId, d.reason])).toEqual([['po-a', 'unstorable']]);
      expect(JSON.stringify(mine[0]!.payload)).toContain('poison');
      expect(stack.rt.readiness().ok).toBe(true);
    } finally {
      await nc.close();
    }
  }, 120_000);
});
