// Session TTL (issue 16 §2) over a real nats-server and Postgres: a type's sessionTtl stops sessions
// idle longer than idleMs through the normal commit path (a STOP transition, once), with `purge`
// deletes them; a session sleeping until a time is left to its wake-up; a type without a TTL is
// never touched. A message to a purged id starts a new session (default agent type); a message
// racing a purge is never lost: it is applied to a new session or dead-lettered `stopped`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineAgent } from '../../actors/index.js';
import { natsClient, publish, startStack, waitFor, type Stack } from '../helpers.js';

const counter = (type: string, ttl?: { idleMs: number; purge?: boolean }) => defineAgent<{ n: number }>({
  type, onMessage: 'queue', initialState: () => ({ n: 0 }), ...(ttl ? { sessionTtl: ttl } : {}),
  handle(batch, ctx) {
    for (const m of batch) {
      if (m.kind === 'wake') continue;
      ctx.state.n++;
      const op = (m.body as { op?: string } | null)?.op;
      if (op === 'sleep-until') return ctx.sleep({ durationMs: 3_600_000 });
      if (op === 'sleep-events') return ctx.sleep({ wakeEvents: ['never'] });
    }
    return undefined;
  },
});
const ephemeral = counter('ephemeral', { idleMs: 400 });
const purged = counter('purged', { idleMs: 400, purge: true });
const keeper = counter('keeper');
/** A long TTL: only the direct expireIdle calls of the race test touch it. */
const racy = counter('racy', { idleMs: 3_600_000, purge: true });

let stack: Stack;
beforeAll(async () => {
  stack = await startStack('sessionttl', { agents: [ephemeral, purged, keeper, racy], config: { sessionTtlEveryMs: 100, defaultAgentType: 'purged' } });
});
afterAll(async () => { await stack?.stop(); });

const row = (sid: string) => stack.store.loadSession(sid);

describe('session TTL', () => {
  it('stops idle sessions once, through the commit path; leaves a timed sleep and types without a TTL alone', async () => {
    for (const [id, type] of [['ttl-e1', 'ephemeral'], ['ttl-es', 'ephemeral'], ['ttl-ee', 'ephemeral'], ['ttl-k1', 'keeper']] as const) await stack.rt.createAgent(id, type);
    await stack.rt.sendMessage('ttl-e1', { t: 1 });
    await stack.rt.sendMessage('ttl-es', { op: 'sleep-until' });
    await stack.rt.sendMessage('ttl-ee', { op: 'sleep-events' });
    await stack.rt.sendMessage('ttl-k1', { t: 1 });
    await waitFor(async () => (await row('ttl-e1'))?.status === 'stopped', 'ttl-e1 stopped by its TTL');
    await waitFor(async () => (await row('ttl-ee'))?.status === 'stopped', 'ttl-ee (asleep with no wake time) stopped');
    const stopped = (await stack.store.getTransitions('ttl-e1')).filter((t) => t.to === 'stopped');
    expect(stopped).toHaveLength(1);
    expect(stopped[0]).toMatchObject({ event: 'STOP', from: 'idle' });
    expect(((await row('ttl-e1'))!.snapshot as { context: { userState: unknown } }).context.userState).toEqual({ n: 1 });
    // Rounds go on; the timed sleeper and the keeper are never stopped.
    const rounds = stack.rt.host.ttlCounts.stopped;
    await waitFor(async () => (await row('ttl-k1'))!.updatedAt < Date.now() - 1500, 'the keeper idle for several TTLs', 20_000, 100);
    expect((await row('ttl-es'))!.status).toBe('sleeping');
    expect((await row('ttl-k1'))!.status).toBe('idle');
    expect(stack.rt.host.ttlCounts.stopped).toBe(rounds);
    expect((await stack.store.getTransitions('ttl-e1')).filter((t) => t.to === 'stopped')).toHaveLength(1);
    // A stopped (not purged) session still refuses messages as before.
    await stack.rt.sendMessage('ttl-e1', { t: 2 });
    await waitFor(async () => (await stack.store.listDeadLetters({ sessionId: 'ttl-e1' })).some((d) => d.reason === 'stopped'), 'a dead letter stopped');
  }, 120_000);

  it('purges: the rows go, and a later message to the id starts a new session', async () => {
    await stack.rt.createAgent('ttl-p1', 'purged');
    await stack.rt.sendMessage('ttl-p1', { t: 1 });
    await stack.rt.sendMessage('ttl-p1', { t: 2 });
    await waitFor(async () => ((await row('ttl-p1'))?.snapshot as { context: { userState: { n: number } } } | undefined)?.context.userState.n === 2, 'two messages applied');
    await waitFor(async () => (await row('ttl-p1')) === null, 'ttl-p1 purged');
    expect(await stack.store.getHistory('ttl-p1')).toEqual([]);
    expect(await stack.store.getTransitions('ttl-p1')).toEqual([]);
    expect(stack.rt.host.ttlCounts.purged).toBeGreaterThanOrEqual(1);
    const nc = await natsClient(stack.nats.url);
    try { await publish(nc, 'ttl-p1', { t: 3 }); } finally { await nc.close(); }
    await waitFor(async () => ((await row('ttl-p1'))?.snapshot as { context: { userState: { n: number } } } | undefined)?.context.userState.n === 1, 'a new session with only the new message');
    expect((await stack.store.getHistory('ttl-p1')).map((h) => h.body)).toEqual([{ t: 3 }]);
  }, 120_000);

  it('a message racing a purge is applied to a new session or dead-lettered, never lost', async () => {
    const nc = await natsClient(stack.nats.url);
    const results: string[] = [];
    try {
      for (let i = 0; i < 6; i++) {
        const sid = `ttl-race-${i}`;
        await stack.rt.createAgent(sid, 'racy');
        await stack.rt.stopAgent(sid);
        const purge = stack.rt.host.expireIdle(sid, Date.now() + 60_000, true);
        if (i % 2 === 0) await new Promise((r) => setTimeout(r, i));
        await publish(nc, sid, { race: i });
        results.push(await purge);
        await waitFor(async () => {
          const inNew = (await stack.store.getHistory(sid, { limit: 10 })).some((h) => (h.body as { race?: number } | null)?.race === i);
          const dead = (await stack.store.listDeadLetters({ sessionId: sid })).some((d) => JSON.stringify(d.payload).includes(`"race":${i}`));
          return inNew || dead;
        }, `the racing message of ${sid} accounted for`);
      }
    } finally { await nc.close(); }
    // A purge that finds the message already in the session's hands keeps it for a later round; others purge.
    expect(results.filter((r) => r === 'purged').length).toBeGreaterThanOrEqual(1);
    expect(results.every((r) => r === 'purged' || r === 'kept')).toBe(true);
  }, 120_000);
});
