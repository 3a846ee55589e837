// Poison under load: one message of each kind Postgres cannot store or a parser cannot take — a
// NUL inside a JSON string, a raw NUL byte, a lone surrogate, 10,000 nested arrays — published
// between two ordinary messages of four sessions, while two nodes handle 40 sessions. Each poison
// message must become exactly one dead letter and nothing else: every other message (of those
// sessions too) applied once, in order, and the nodes stay ready.
//
// On the code this suite was written against, such a message made every commit of its node fail
// and was retried forever, so no session on that node committed again (issue 11, item 4).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POISON_KINDS } from './load.js';
import { Scenario } from './scenario.js';

describe('poison messages under load', () => {
  let sc: Scenario | undefined;

  beforeAll(async () => { sc = await Scenario.start({ tag: 'poison', nodes: 2, messages: 40, sleepers: 2 }); }, 120_000);
  afterAll(async () => { await sc?.destroy(); }, 60_000);

  it('each is exactly one dead letter; every other message applied once, in order', async () => {
    const s = sc!;
    await s.progress(0.3);
    s.timersAt(Date.now() + 2000, 2000);
    s.poison(['q-0', 'q-1', 'm-0', 'm-1'], POISON_KINDS);
    const report = await s.finish('poison');
    expect(report.counts.poison.sent).toBe(POISON_KINDS.length);
    expect(report.problems).toEqual([]);
  }, 240_000);
});
