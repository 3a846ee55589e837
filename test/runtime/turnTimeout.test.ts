// A turn that never ends: a handler awaiting an LLM call or a socket that never answers. Until
// 2026-11-29 nothing bounded a turn: the session stayed `active` with its batch, every later
// message waited behind it, and the inbox messages were kept alive (`working()`) for as long as
// the process lived. Now a turn past `turnTimeoutMs` is failed with a TIMEOUT error (its
// `ctx.signal` fires with that reason) and counts as a failed attempt: retried, then
// dead-lettered after `maxAttempts`; the session goes on with its next messages. Real NATS,
// memory store; the limit is short, and the test waits for outcomes, not for times.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineAgent } from '../../actors/index.js';
import type { Runtime } from '../../runtime/index.js';
import { startNats, startRuntime, waitFor } from '../helpers.js';

/** What each attempt of each message saw: `<i>:<attempt>:<how it ended>`. */
const seen: string[] = [];

const slow = defineAgent({
  type: 'turn-slow',
  onMessage: 'queue',
  maxAttempts: 2,
  retryBaseMs: 10,
  turnTimeoutMs: 300,
  initialState: () => ({ done: [] as number[] }),
  async handle(batch, ctx) {
    for (const m of batch) {
      const b = m.body as { i: number; hang?: 'first-attempt' | 'always-deaf' };
      if (b.hang === 'first-attempt' && ctx.attempt === 1) {
        // Hangs until its signal fires, then gives up with the signal's reason.
        await new Promise((_, reject) => {
          ctx.signal.addEventListener('abort', () => {
            seen.push(`${b.i}:${ctx.attempt}:aborted ${(ctx.signal.reason as { code?: string }).code}`);
            reject(ctx.signal.reason as Error);
          });
        });
      }
      if (b.hang === 'always-deaf') {
        seen.push(`${b.i}:${ctx.attempt}:deaf`);
        await new Promise(() => { /* never settles, ignores ctx.signal */ });
      }
      seen.push(`${b.i}:${ctx.attempt}:done`);
      ctx.state.done.push(b.i);
    }
  },
});

describe('turn time limit', () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let rt: Runtime;
  beforeAll(async () => {
    nats = await startNats();
    rt = await startRuntime(nats.url, { agents: [slow] });
  }, 30_000);
  afterAll(async () => {
    await rt?.stop();
    await nats?.cleanup();
  });

  const done = async (sid: string): Promise<number[]> => ((await rt.getAgent(sid)).userState as { done: number[] }).done;

  it('a turn past its limit is aborted with TIMEOUT and retried; the retry commits, and later messages run', async () => {
    await rt.createAgent('t-1', 'turn-slow');
    await rt.sendMessage('t-1', { i: 1, hang: 'first-attempt' });
    await rt.sendMessage('t-1', { i: 2 });
    await waitFor(async () => (await done('t-1')).length === 2 || null, 'both messages applied', 30_000, 50);
    expect(await done('t-1')).toEqual([1, 2]);
    expect(seen.filter((x) => x.startsWith('1:') || x.startsWith('2:'))).toEqual(['1:1:aborted TIMEOUT', '1:2:done', '2:1:done']);
    expect(rt.host.stats.turnTimeouts).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it('a handler that ignores its signal costs one dead letter after maxAttempts; the session goes on', async () => {
    await rt.createAgent('t-2', 'turn-slow');
    await rt.sendMessage('t-2', { i: 3, hang: 'always-deaf' });
    await rt.sendMessage('t-2', { i: 4 });
    await waitFor(async () => (await done('t-2')).includes(4) || null, 'the next message applied', 30_000, 50);
    expect(await done('t-2')).toEqual([4]);
    const dls = await rt.listDeadLetters({ sessionId: 't-2' });
    expect(dls).toHaveLength(1);
    expect(dls[0]).toMatchObject({ reason: 'handler-failed', attempts: 2 });
    expect(dls[0]!.error).toMatch(/turnTimeoutMs/);
    expect(seen.filter((x) => x.startsWith('3:'))).toEqual(['3:1:deaf', '3:2:deaf']);
  }, 60_000);
});
