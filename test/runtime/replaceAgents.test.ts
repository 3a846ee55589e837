// Runtime.replaceAgents (what `agentry dev --agents` does on save): new code for the same agent
// types goes into a running node. A run under way finishes with the handler it started with,
// the runs after it use the new one, the session's state carries on; a different set of types,
// or a type given twice, is refused and changes nothing. Real nats-server and Postgres.
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentryError, defineAgent } from '../../actors/index.js';
import { natsClient, publish, startStack, waitFor, type Stack } from '../helpers.js';

let releaseSlow: () => void = () => undefined;
let slowStarted = false;

/** The greeter, in version `v`: replies `<v>:<text>` and counts turns; 'slow' waits for the test. */
const greeter = (v: string) => defineAgent<{ turns: number }>({
  type: 'greeter',
  onMessage: 'queue',
  initialState: () => ({ turns: 0 }),
  async handle(batch, ctx) {
    const text = (batch[0]!.body as { text: string }).text;
    if (text === 'slow') {
      slowStarted = true;
      await new Promise<void>((r) => { releaseSlow = r; });
    }
    ctx.state.turns++;
    ctx.reply({ text: `${v}:${text}`, turn: ctx.state.turns });
    return undefined;
  },
});
const other = defineAgent({ type: 'other', initialState: () => ({}), handle: () => undefined });

let stack: Stack;
let nc: NatsConnection;
const replies: { text: string; turn: number }[] = [];

beforeAll(async () => {
  stack = await startStack('replace_agents', { agents: [greeter('v1')], config: { defaultAgentType: 'greeter' } });
  nc = await natsClient(stack.nats.url);
  const sub = nc.subscribe('agentry.out.g1');
  void (async () => { for await (const m of sub) replies.push(m.json()); })();
});

afterAll(async () => {
  await nc?.close();
  await stack?.stop();
});

/** Waits until `n` replies arrived. */
const replied = (n: number): Promise<true> => waitFor(() => replies.length >= n || null, `${n} replies`, 60_000);

describe('replaceAgents', () => {
  it('swaps the handlers: the run under way finishes on the old code, later runs use the new, state carries on', async () => {
    await publish(nc, 'g1', { text: 'a' });
    await replied(1);
    await publish(nc, 'g1', { text: 'slow' });
    await waitFor(() => slowStarted || null, 'the slow run to start', 60_000);
    stack.rt.replaceAgents([greeter('v2')]);
    await publish(nc, 'g1', { text: 'b' });
    releaseSlow();
    await replied(3);
    expect(replies).toEqual([
      { text: 'v1:a', turn: 1 },
      { text: 'v1:slow', turn: 2 },
      { text: 'v2:b', turn: 3 },
    ]);
  });

  it('refuses another set of types, or a type twice, and keeps the running code', async () => {
    const refusal = (f: () => void): AgentryError => {
      try { f(); } catch (e) { return e as AgentryError; }
      throw new Error('not refused');
    };
    const changed = refusal(() => { stack.rt.replaceAgents([greeter('v3'), other]); });
    expect(changed).toBeInstanceOf(AgentryError);
    expect(changed.code).toBe('CONFIG_INVALID');
    expect(changed.message).toContain('greeter → greeter, other');
    expect(refusal(() => { stack.rt.replaceAgents([greeter('v3'), greeter('v4')]); }).code).toBe('CONFIG_INVALID');
    await publish(nc, 'g1', { text: 'c' });
    await replied(4);
    expect(replies[3]).toEqual({ text: 'v2:c', turn: 4 });
  });
});
