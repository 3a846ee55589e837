// Turn policies against a real nats-server and Postgres: what each policy does with a message that
// arrives while a turn runs (queue, cancel-and-merge, latest, reject, debounce, rollback), set per
// agent type, per session (createAgent) and per message (the Agentry-Turn-Policy header); that
// every message keeps its fate in history (getHistory, and the session log SSE replays); and that
// order and exactly-once state hold for every policy under load, checked message by message in
// Postgres. Turns are held open by a gate the test releases, so "a message arrives while a turn
// runs" is a fact of the test, not a race with the clock.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { defineAgent, type TurnPolicy } from '../../actors/index.js';
import { TURN_POLICY_HEADER } from '../../runtime/inbox.js';
import type { HistoryEntry } from '../../persistence/types.js';
import { natsClient, PG_URL, publish, startStack, waitFor, type Stack } from '../helpers.js';
import type { NatsConnection } from '@nats-io/transport-node';

interface Run { readonly sid: string; readonly bodies: unknown[]; readonly startState: unknown; aborted: boolean }
const runs: Run[] = [];
/** Sessions whose turns wait for `release` (or their abort) before they finish. */
const held = new Map<string, (() => void)[]>();
const hold = (sid: string): void => { held.set(sid, []); };
const release = (sid: string): void => { const w = held.get(sid) ?? []; held.delete(sid); for (const f of w) f(); };

function gated(type: string, extra: { onMessage?: TurnPolicy; debounceMs?: number; maxMergeDelayMs?: number } = {}) {
  return defineAgent<{ applied: unknown[]; touched: number }>({
    type,
    maxMergeDelayMs: 10_000,
    ...extra,
    initialState: () => ({ applied: [], touched: 0 }),
    async handle(batch, ctx) {
      const run: Run = { sid: ctx.sessionId, bodies: batch.map((m) => m.body), startState: JSON.parse(JSON.stringify(ctx.state)) as unknown, aborted: false };
      runs.push(run);
      ctx.state.touched++; // an effect a superseded or rolled-back turn must not leave behind
      ctx.reply({ ran: run.bodies });
      const waiting = held.get(ctx.sessionId);
      if (waiting) {
        await new Promise<void>((resolve, reject) => {
          waiting.push(resolve);
          ctx.signal.addEventListener('abort', () => { run.aborted = true; reject(new Error('aborted')); }, { once: true });
        });
      }
      ctx.state.applied.push(...run.bodies);
      return undefined;
    },
  });
}

/** A little async work that honours the abort signal (the load test's "LLM call"). */
function work(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) { reject(new Error('aborted')); return; }
    const t = setTimeout(() => { resolve(); }, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); reject(new Error('aborted')); }, { once: true });
  });
}

const loadAgent = defineAgent<{ applied: number[] }>({
  type: 'tp-load',
  maxMergeDelayMs: 300,
  debounceMs: 15,
  initialState: () => ({ applied: [] }),
  async handle(batch, ctx) {
    await work(Math.floor(Math.random() * 8), ctx.signal);
    for (const m of batch) ctx.state.applied.push((m.body as { i: number }).i);
    return undefined;
  },
});

let stack: Stack;
let nc: NatsConnection;
let db: pg.Client;

beforeAll(async () => {
  stack = await startStack('turn_policies', {
    agents: [gated('tp-gated', { onMessage: 'queue' }), gated('tp-merge'), gated('tp-debounce', { onMessage: 'debounce', debounceMs: 2000 }), loadAgent],
    config: { maxActiveSessions: 1000 },
  });
  nc = await natsClient(stack.nats.url);
  db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
});

afterAll(async () => {
  for (const sid of [...held.keys()]) release(sid);
  await db?.end();
  await nc?.close();
  await stack?.stop();
});

const runsOf = (sid: string): Run[] => runs.filter((r) => r.sid === sid);
const view = (sid: string) => stack.rt.getAgent(sid);
/** History oldest first, as [body, fate]. */
async function fates(sid: string): Promise<[unknown, string | undefined][]> {
  const h: HistoryEntry[] = await stack.rt.getHistory(sid, { limit: 100 });
  return h.reverse().map((x) => [x.body, x.fate]);
}
async function settled(sid: string, n: number): Promise<void> {
  await waitFor(async () => (await stack.rt.getHistory(sid, { limit: 100 })).length === n && (await view(sid)).state === 'idle', `${sid}: ${n} messages settled`);
}
const send = (sid: string, body: unknown, policy?: TurnPolicy): Promise<number> => publish(nc, sid, body, policy ? { [TURN_POLICY_HEADER]: policy } : {});

describe('turn policies over NATS and Postgres', () => {
  it('queue: messages that arrive during a turn wait, and run one per turn in order', async () => {
    const sid = 'tp-queue';
    await stack.rt.createAgent(sid, 'tp-gated');
    hold(sid);
    await send(sid, 'a');
    await waitFor(() => runsOf(sid).length === 1, 'a running');
    await send(sid, 'b');
    await send(sid, 'c');
    await waitFor(async () => (await view(sid)).mailbox.pending === 2, 'b and c queued');
    expect(runsOf(sid)).toHaveLength(1);
    release(sid);
    await settled(sid, 3);
    expect(runsOf(sid).map((r) => r.bodies)).toEqual([['a'], ['b'], ['c']]);
    expect(await fates(sid)).toEqual([['a', 'handled'], ['b', 'handled'], ['c', 'handled']]);
    expect(((await view(sid)).userState as { applied: unknown[] }).applied).toEqual(['a', 'b', 'c']);
  });

  it('cancel-and-merge (the default): the turn is aborted and runs again on both; both are merged', async () => {
    const sid = 'tp-cam';
    await stack.rt.createAgent(sid, 'tp-merge');
    expect((await view(sid)).policy).toBe('cancel-and-merge');
    hold(sid);
    await send(sid, 'a');
    await waitFor(() => runsOf(sid).length === 1, 'a running');
    await send(sid, 'b');
    await waitFor(() => runsOf(sid).length === 2, 'the merged run');
    expect(runsOf(sid)[0]!.aborted).toBe(true);
    release(sid);
    await settled(sid, 2);
    expect(runsOf(sid)[1]!.bodies).toEqual(['a', 'b']);
    expect(await fates(sid)).toEqual([['a', 'merged'], ['b', 'merged']]);
  });

  it('latest (set per session at createAgent): the turn is aborted, superseded, and only the newest runs', async () => {
    const sid = 'tp-latest';
    const created = await stack.rt.createAgent(sid, 'tp-gated', undefined, { policy: 'latest' });
    expect(created.policy).toBe('latest');
    hold(sid);
    await send(sid, 'a');
    await waitFor(() => runsOf(sid).length === 1, 'a running');
    await send(sid, 'b');
    await waitFor(() => runsOf(sid).length === 2, 'b running');
    await send(sid, 'c');
    await waitFor(() => runsOf(sid).length === 3, 'c running');
    expect(runsOf(sid).map((r) => [r.bodies, r.aborted])).toEqual([[['a'], true], [['b'], true], [['c'], false]]);
    release(sid);
    await settled(sid, 3);
    expect(await fates(sid)).toEqual([['a', 'superseded'], ['b', 'superseded'], ['c', 'handled']]);
    const v = await view(sid);
    expect(v.userState).toEqual({ applied: ['c'], touched: 1 }); // the superseded turns left nothing
    expect(v.policy).toBe('latest'); // kept in the snapshot
    // The session log (what SSE replays) carries each non-handled fate.
    const log = await stack.store.readLog(sid, 0, 100);
    expect(log.filter((e) => e.kind === 'fate').map((e) => (e.data as { fate: string }).fate)).toEqual(['superseded', 'superseded']);
  });

  it('latest per message (header) on a queue session drops the queued older messages too', async () => {
    const sid = 'tp-latest-hdr';
    await stack.rt.createAgent(sid, 'tp-gated');
    hold(sid);
    await send(sid, 'a');
    await waitFor(() => runsOf(sid).length === 1, 'a running');
    await send(sid, 'b');
    await waitFor(async () => (await view(sid)).mailbox.pending === 1, 'b queued');
    await send(sid, 'c', 'latest');
    await waitFor(() => runsOf(sid).length === 2, 'c running');
    release(sid);
    await settled(sid, 3);
    expect(runsOf(sid).map((r) => r.bodies)).toEqual([['a'], ['c']]);
    expect(await fates(sid)).toEqual([['a', 'superseded'], ['b', 'superseded'], ['c', 'handled']]);
  });

  it('reject from a NATS producer: refused while a turn runs, kept as a dead letter `busy`, and recorded only after the turn', async () => {
    const sid = 'tp-reject';
    await stack.rt.createAgent(sid, 'tp-gated');
    hold(sid);
    await send(sid, 'a');
    await waitFor(() => runsOf(sid).length === 1, 'a running');
    const seqB = await send(sid, 'b', 'reject');
    await waitFor(async () => (await view(sid)).mailbox.rejected === 1, 'b refused');
    // Not committed yet: its seq is above a's, which is not applied.
    expect((await view(sid)).lastSeq).toBeLessThan(seqB);
    expect(runsOf(sid)[0]!.aborted).toBe(false);
    release(sid);
    await settled(sid, 2);
    expect(runsOf(sid).map((r) => r.bodies)).toEqual([['a']]);
    expect(await fates(sid)).toEqual([['a', 'handled'], ['b', 'rejected']]);
    const dls = await stack.rt.listDeadLetters({ sessionId: sid });
    expect(dls.map((d) => [d.id, d.reason])).toEqual([[`${sid}:${seqB}`, 'busy']]);
    expect((await view(sid)).lastSeq).toBe(seqB);
    // An idle session takes a reject message like any other.
    await send(sid, 'c', 'reject');
    await settled(sid, 3);
    expect((await fates(sid)).at(-1)).toEqual(['c', 'handled']);
  });

  it('debounce: a burst runs once, after the quiet time, on every message of it', async () => {
    const sid = 'tp-debounce';
    await stack.rt.createAgent(sid, 'tp-debounce');
    await send(sid, 'a');
    // Waiting for quiet, not running: no turn has started.
    await waitFor(async () => (await view(sid)).stateValue === 'active.debouncing', 'a debouncing');
    expect(runsOf(sid)).toEqual([]);
    await Promise.all(['b', 'c'].map((b) => send(sid, b)));
    await settled(sid, 3);
    expect(runsOf(sid).map((r) => r.bodies)).toEqual([['a', 'b', 'c']]);
    expect(await fates(sid)).toEqual([['a', 'merged'], ['b', 'merged'], ['c', 'merged']]);
  });

  it('rollback: the turn is aborted and rolled back, and the new message runs on the state from before it', async () => {
    const sid = 'tp-rollback';
    await stack.rt.createAgent(sid, 'tp-gated', { applied: ['seed'], touched: 7 }, { policy: 'rollback' });
    hold(sid);
    await send(sid, 'a');
    await waitFor(() => runsOf(sid).length === 1, 'a running');
    await send(sid, 'b');
    await waitFor(() => runsOf(sid).length === 2, 'b running');
    expect(runsOf(sid)[0]!.aborted).toBe(true);
    expect(runsOf(sid)[1]!.startState).toEqual({ applied: ['seed'], touched: 7 });
    release(sid);
    await settled(sid, 2);
    expect(await fates(sid)).toEqual([['a', 'rolled-back'], ['b', 'handled']]);
    expect((await view(sid)).userState).toEqual({ applied: ['seed', 'b'], touched: 8 });
  });

  it('an unknown Agentry-Turn-Policy is a dead letter `invalid-header`', async () => {
    const sid = 'tp-badhdr';
    await stack.rt.createAgent(sid, 'tp-gated');
    const seq = await publish(nc, sid, 'x', { [TURN_POLICY_HEADER]: 'sometimes' });
    const dl = await waitFor(async () => (await stack.rt.listDeadLetters({ sessionId: sid }))[0], 'the dead letter');
    expect(dl).toMatchObject({ id: `${sid}:${seq}`, reason: 'invalid-header' });
  });
});

describe('order and exactly-once under load, for every policy', () => {
  const POLICIES: TurnPolicy[] = ['queue', 'cancel-and-merge', 'latest', 'reject', 'debounce', 'rollback'];
  const SESSIONS = 50;
  const MESSAGES = 20;
  /** The fates each policy may give. */
  const allowed: Record<TurnPolicy, string[]> = {
    queue: ['handled'], 'cancel-and-merge': ['handled', 'merged'], latest: ['handled', 'superseded'],
    reject: ['handled', 'rejected'], debounce: ['handled', 'merged'], rollback: ['handled', 'rolled-back'],
  };

  it(`${SESSIONS} sessions × ${MESSAGES} messages: every message has one fate, the applied ones are applied once and in order`, async () => {
    const sessions = Array.from({ length: SESSIONS }, (_, i) => ({ sid: `tpl-${i}`, policy: POLICIES[i % POLICIES.length]! }));
    await Promise.all(sessions.map((s) => stack.rt.createAgent(s.sid, 'tp-load', undefined, { policy: s.policy })));
    const published = new Map<string, number[]>();
    // One connection, each session's messages in order; sessions interleaved.
    await Promise.all(sessions.map(async (s) => {
      const seqs: number[] = [];
      for (let i = 0; i < MESSAGES; i++) seqs.push(await publish(nc, s.sid, { i }));
      published.set(s.sid, seqs);
    }));
    const lastOf = new Map([...published].map(([sid, seqs]) => [sid, seqs.at(-1)!]));
    const done = async (): Promise<boolean> => {
      const r = await db.query<{ id: string; last_seq: string; status: string }>(`SELECT id, last_seq, status FROM ${stack.schema}.sessions WHERE id LIKE 'tpl-%'`);
      return r.rows.length === SESSIONS && r.rows.every((x) => Number(x.last_seq) === lastOf.get(x.id) && x.status === 'idle');
    };
    await waitFor(done, 'every session to commit its last message', 120_000, 100);

    const hist = await db.query<{ session_id: string; seq: string; outcome: string; batch_id: string; i: number }>(
      `SELECT session_id, seq, outcome, batch_id, (body->>'i')::int AS i FROM ${stack.schema}.history WHERE session_id LIKE 'tpl-%' ORDER BY session_id, seq`);
    const snaps = await db.query<{ id: string; applied: number[] }>(`SELECT id, snapshot->'context'->'userState'->'applied' AS applied FROM ${stack.schema}.sessions WHERE id LIKE 'tpl-%'`);
    const dls = await db.query<{ id: string }>(`SELECT id FROM ${stack.schema}.dead_letters WHERE session_id LIKE 'tpl-%' AND reason = 'busy'`);
    const busy = new Set(dls.rows.map((d) => d.id));
    const wrong: string[] = [];
    const seenFates = new Map<TurnPolicy, Set<string>>();
    for (const s of sessions) {
      const rows = hist.rows.filter((h) => h.session_id === s.sid);
      const seqs = published.get(s.sid)!;
      const batchSize = new Map<string, number>();
      for (const r of rows) if (r.outcome === 'ok') batchSize.set(r.batch_id, (batchSize.get(r.batch_id) ?? 0) + 1);
      const fate = (r: (typeof rows)[number]) => (r.outcome === 'ok' ? (batchSize.get(r.batch_id)! > 1 ? 'merged' : 'handled') : r.outcome);
      const applied = snaps.rows.find((x) => x.id === s.sid)?.applied ?? null;
      const expectApplied = rows.filter((r) => r.outcome === 'ok').map((r) => r.i);
      const f = seenFates.get(s.policy) ?? new Set<string>();
      seenFates.set(s.policy, f);
      for (const r of rows) f.add(fate(r));
      const problems = [
        // one row per published message, none twice, none missing
        JSON.stringify(rows.map((r) => Number(r.seq))) !== JSON.stringify(seqs) && 'history rows',
        // the applied messages: exactly the ok rows, once each, in publish order
        JSON.stringify(applied) !== JSON.stringify(expectApplied) && `applied ${JSON.stringify(applied)} vs ok rows ${JSON.stringify(expectApplied)}`,
        rows.some((r) => !allowed[s.policy].includes(fate(r))) && `fates ${JSON.stringify(rows.map(fate))}`,
        rows.filter((r) => r.outcome === 'rejected').some((r) => !busy.has(`${s.sid}:${r.seq}`)) && 'a rejected message without its dead letter',
        // the newest message always runs, except under reject (where the oldest does)
        s.policy !== 'reject' && rows.at(-1)?.outcome !== 'ok' && 'last message not applied',
        s.policy === 'reject' && rows[0]?.outcome !== 'ok' && 'first message not applied',
      ].filter(Boolean);
      if (problems.length > 0) wrong.push(`${s.sid} (${s.policy}): ${problems.join('; ')}`);
    }
    console.log(`[turn policies under load] fates seen: ${JSON.stringify(Object.fromEntries([...seenFates].map(([p, f]) => [p, [...f].sort()])))}`);
    expect(wrong.slice(0, 5), `${wrong.length} sessions differ`).toEqual([]);
    expect(busy.size).toBe(hist.rows.filter((r) => r.outcome === 'rejected').length);
  }, 180_000);
});
