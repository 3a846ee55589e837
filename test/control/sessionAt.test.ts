// getSessionAt (issue 18, time travel) over a raw WebSocket against real nats-server and
// Postgres: a session driven through idle → active → sleeping → waiting → idle reads back, at
// each recorded step, the state, context, mailbox, wake condition, waitpoint, event object and
// history it had then, with the step before it; bad input gets typed errors.
/* eslint-disable @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-argument -- the raw client deals in untyped JSON on purpose */
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { methods } from '../../client/index.js';
import { startControlPlane, type ControlPlane } from '../../runtime/index.js';
import { natsClient, startStack, type Stack } from '../helpers.js';
import { driveTraveler, traveler, type Drive } from '../inspector/timeTravelAgent.js';
import { RawRpc } from './rawRpc.js';

let stack: Stack;
let cp: ControlPlane;
let c: RawRpc;
let nc: NatsConnection;
let drive: Drive;
type Step = { id: number; at: number; event: string; from: string; to: string };
let steps: Step[];

beforeAll(async () => {
  stack = await startStack('session_at', { agents: [traveler] });
  cp = await startControlPlane(stack.rt, { port: 0 });
  c = await RawRpc.open(cp.rpcUrl);
  nc = await natsClient(stack.nats.url);
  drive = await driveTraveler(stack.rt, nc, 'tt-1');
  steps = (await c.ok('getTransitions', { agentId: 'tt-1', limit: 100 })).transitions;
}, 60_000);

afterAll(async () => {
  await nc?.close();
  c?.close();
  await cp?.close();
  await stack?.stop();
});

const at = async (t: Step): Promise<any> => {
  const r = await c.ok('getSessionAt', { agentId: 'tt-1', transition: t.id });
  const parsed = methods.getSessionAt.result.safeParse(r);
  expect(parsed.success, parsed.error?.message).toBe(true);
  return r;
};
const find = (pred: (t: Step) => boolean, what: string): Step => {
  const t = steps.find(pred);
  if (!t) throw new Error(`no step ${what} in ${JSON.stringify(steps)}`);
  return t;
};

describe('getSessionAt', () => {
  it('shows each step as it was: state, user state, mailbox, event, history', async () => {
    const created = await at(find((t) => t.event === 'create', 'create'));
    expect(created.agent).toMatchObject({ state: 'idle', userState: { notes: [] }, lastSeq: 0, wake: null, wait: null, live: false });
    expect(created.event).toEqual({ type: 'create' });
    expect(created.history).toEqual([]);
    expect(created.previous).toBeNull();

    // The first run: active with message a running, its event object the MESSAGE with its body.
    const runA = await at(find((t) => t.from === 'idle' && t.to.startsWith('active'), 'idle → active'));
    expect(runA.agent).toMatchObject({ state: 'active', userState: { notes: [] }, mailbox: { running: 1, pending: 0 } });
    expect(runA.mailbox.running.map((m: { seq: number }) => m.seq)).toEqual([drive.seqs.a]);
    expect(runA.event).toMatchObject({ type: 'MESSAGE', message: { seq: drive.seqs.a, kind: 'message', body: { cmd: 'note', text: 'a' } } });
    expect(runA.previous.agent.state).toBe('idle');
    expect(runA.history.map((h: { seq: number }) => h.seq)).not.toContain(drive.seqs.nap);

    // Asleep: the wake condition the nap asked for, notes as of then, nothing deferred yet.
    const sleeping = await at(find((t) => t.to === 'sleeping', 'sleeping'));
    expect(sleeping.agent).toMatchObject({ state: 'sleeping', userState: { notes: ['a', 'nap'] }, wake: { events: ['bell'], mailPriority: 'high' }, wait: null });
    expect(sleeping.agent.wake.until).toBeGreaterThan(sleeping.step.at);
    expect(sleeping.agent.lastSeq).toBe(drive.seqs.nap);
    expect(sleeping.previous.agent.state).toBe('active');
    expect(sleeping.previous.agent.userState).toEqual({ notes: ['a'] });
    expect(sleeping.history.map((h: { seq: number }) => h.seq).filter((s: number) => s > 0).sort()).toEqual([drive.seqs.a, drive.seqs.nap].sort());

    // Woken: the wake record runs; the note b deferred while asleep is in the mailbox, next.
    const woken = await at(find((t) => t.from === 'sleeping', 'sleeping → active'));
    expect(woken.agent.state).toBe('active');
    expect(woken.event).toMatchObject({ type: 'WAKE', reason: 'manual' });
    expect(woken.mailbox.running.map((m: { seq: number; kind: string }) => m.kind)).toEqual(['wake']);
    const { pending, deferred } = woken.mailbox as Record<string, { seq: number }[]>;
    expect([...pending!, ...deferred!].map((m) => m.seq)).toContain(drive.seqs.b);

    // Waiting on the waitpoint, which the answer shows with its tags.
    const waiting = await at(find((t) => t.to === 'waiting', 'waiting'));
    expect(waiting.agent).toMatchObject({ state: 'waiting', wake: null, wait: { waitpointId: drive.waitpointId }, userState: { notes: ['a', 'nap', 'woke', 'b', 'ask'] } });
    expect(waiting.waitpoint).toMatchObject({ id: drive.waitpointId, tags: ['travel'] });

    // And the last step is the live session's state.
    const last = await at(steps[steps.length - 1]!);
    const live = await c.ok('getAgent', { agentId: 'tt-1' });
    expect(last.agent).toMatchObject({ state: live.state, userState: live.userState, lastSeq: live.lastSeq, wake: null, wait: null });
  });

  it('refuses bad input with typed errors', async () => {
    expect((await c.err('getSessionAt', { agentId: 'nobody', transition: 1 })).data.type).toBe('UNKNOWN_SESSION');
    const past = await c.err('getSessionAt', { agentId: 'tt-1', transition: steps[steps.length - 1]!.id + 1000 });
    expect(past).toMatchObject({ code: 4041, data: { type: 'POINT_NOT_RECORDED' } });
    // Another session's transition is not this one's step.
    await stack.rt.createAgent('tt-other', 'traveler');
    const other = (await c.ok('getTransitions', { agentId: 'tt-other' })).transitions[0];
    expect((await c.err('getSessionAt', { agentId: 'tt-1', transition: other.id })).data.type).toBe('POINT_NOT_RECORDED');
    expect((await c.err('getSessionAt', { agentId: 'tt-1', transition: 0 })).code).toBe(-32602);
    expect((await c.err('getSessionAt', { agentId: 'tt-1' })).code).toBe(-32602);
    expect((await c.err('getSessionAt', { agentId: 'bad.id', transition: 1 })).data?.type ?? 'params').toMatch(/INVALID_SESSION_ID|params/);
  });
});

describe('getSessionAt with AGENTRY_TIMELINE_USER_STATE off', () => {
  it('past steps keep their state, context and event, and no copy of the user state', async () => {
    const off = await startStack('session_at_off', { agents: [traveler], config: { timelineUserState: false } });
    try {
      await off.rt.createAgent('tt-off', 'traveler');
      await off.rt.sendMessage('tt-off', { cmd: 'note', text: 'x' });
      let ts: { id?: number; event: string; to: string }[] = [];
      for (let i = 0; i < 200 && !ts.some((t) => t.event === 'run.done'); i++) {
        ts = await off.rt.getTransitions('tt-off', { limit: 100 });
        await new Promise((r) => setTimeout(r, 50));
      }
      const done = ts.find((t) => t.event === 'run.done')!;
      expect(done).toBeDefined();
      const past = await off.rt.getSessionAt('tt-off', done.id!);
      expect(past.agent).toMatchObject({ state: 'idle' });
      expect(past.agent!.userState ?? null).toBeNull(); // not kept: the live state has the note
      expect((await off.rt.getAgent('tt-off')).userState).toEqual({ notes: ['x'] });
    } finally {
      await off.stop();
    }
  });
});
