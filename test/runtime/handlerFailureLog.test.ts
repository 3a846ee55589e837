// Issue 13, item 2: a handler that throws is not silent. Each failed attempt is logged as a
// warning with the session, the attempt, the error's message and its stack; the dead letter
// that ends the retries is an error line. Read here through the dev log format (what
// `agentry dev` prints), against a real nats-server and Postgres.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineAgent, TerminalError } from '../../actors/index.js';
import { createDevLogger } from '../../runtime/logger.js';
import { natsClient, publish, startStack, waitFor, type Stack } from '../helpers.js';

let logText = '';
const lines = (): string[] => logText.split('\n');

/** Throws a plain error on every attempt (retried) or a TerminalError (dead-lettered at once). */
const flaky = defineAgent({
  type: 'flaky',
  maxAttempts: 2,
  retryBaseMs: 10,
  retryCapMs: 20,
  initialState: () => ({}),
  handle(batch) {
    const text = (batch[0]?.body as { text?: string } | undefined)?.text;
    if (text === 'terminal') throw new TerminalError('no point retrying this');
    throw new Error('the model timed out');
  },
});

let stack: Stack;

beforeAll(async () => {
  stack = await startStack('handler_log', {
    agents: [flaky],
    logger: createDevLogger('info', { write: (t: string) => { logText += t; } }),
    config: { defaultAgentType: 'flaky' },
  });
});

afterAll(async () => { await stack?.stop(); });

describe('handler failures in the log', () => {
  it('each failed attempt is a warning with its stack; the dead letter an error line, after them', async () => {
    const nc = await natsClient(stack.nats.url);
    try { await publish(nc, 'loud-1', { text: 'hello' }); } finally { await nc.close(); }
    const letters = await waitFor(async () => {
      const l = await stack.rt.listDeadLetters({ sessionId: 'loud-1' });
      return l.length > 0 ? l : null;
    }, 'the dead letter', 60_000);
    expect(letters[0]).toMatchObject({ reason: 'handler-failed', attempts: 2 });
    const dead = await waitFor(() => lines().findIndex((l) => l.includes('ERROR loud-1 batch dead-lettered')) + 1, 'the dead-letter log line') - 1;

    const warnings = lines().map((l, i) => ({ l, i })).filter(({ l }) => l.includes('WARN  loud-1 handler failed'));
    expect(warnings.map(({ l }) => /attempt=(\d+)/.exec(l)?.[1])).toEqual(['1', '2']);
    for (const { l, i } of warnings) {
      expect(l).toContain('err="the model timed out"');
      expect(l).toContain('agentType=flaky');
      // The stack follows the line, pointing into the handler's file.
      expect(lines()[i + 1]).toMatch(/^ {4}at /);
      expect(lines().slice(i + 1, i + 4).join('\n')).toContain('handlerFailureLog.test.ts');
      expect(i).toBeLessThan(dead);
    }
    expect(lines()[dead]).toContain('error="the model timed out"');
    expect(lines()[dead]).toContain('attempts=2');
    expect(lines()[dead]).toContain('reason=handler-failed');
  });

  it('a TerminalError is one warning (no retry) and one dead-letter error line', async () => {
    const nc = await natsClient(stack.nats.url);
    try { await publish(nc, 'loud-2', { text: 'terminal' }); } finally { await nc.close(); }
    await waitFor(() => lines().some((l) => l.includes('ERROR loud-2 batch dead-lettered')), 'the dead-letter log line', 60_000);
    const warnings = lines().filter((l) => l.includes('WARN  loud-2 handler failed'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('err="no point retrying this"');
    expect(warnings[0]).toContain('attempt=1');
  });
});
