// Issue 7, proof 2: SSE resume. A handler replies several times across several messages; the
// client disconnects mid-stream, more is published, and it reconnects with Last-Event-ID: it
// receives every later durable event exactly once (ids strictly increasing, no duplicates, no
// gaps against the durable session log), including what is committed while it catches up.
// Plus: resuming from a chunk id, replaying everything retained, truncation after retention,
// and state changes that no reply follows.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineAgent } from '../../actors/index.js';
import { sleep, waitFor } from '../helpers.js';
import { startIngressEnv, type IngressEnv } from './env.js';
import { openSse, type SseEvent, type SseStream } from './sseClient.js';

/** For each message `{ tag, count }`: streams a chunk and replies, `count` times. */
const multi = defineAgent({
  type: 'multi',
  onMessage: 'queue',
  handle(batch, ctx) {
    for (const m of batch) {
      if (m.kind === 'wake') continue;
      const { tag, count } = m.body as { tag: string; count: number };
      for (let i = 0; i < count; i++) {
        ctx.stream({ tag, i });
        ctx.reply({ tag, i });
      }
    }
    return undefined;
  },
});

let env: IngressEnv;

beforeAll(async () => {
  env = await startIngressEnv('ingress_resume', [multi]);
});

afterAll(async () => {
  await env?.stop();
});

const isDurable = (e: SseEvent): boolean => (e.event === 'state' || e.event === 'reply') && /^\d+$/.test(e.id ?? '');
const durable = (s: SseStream): SseEvent[] => s.events.filter(isDurable);
const replyOf = (e: SseEvent): string => { const b = (e.json as { body: { tag: string; i: number } }).body; return `${b.tag}#${b.i}`; };
const hasReply = (tag: string, i: number) => (ev: readonly SseEvent[]): boolean => ev.some((e) => e.event === 'reply' && replyOf(e) === `${tag}#${i}`);
const send = async (sid: string, tag: string, count: number): Promise<void> => {
  const r = await env.post(`/agents/${sid}/messages`, { message: { tag, count } });
  expect(r.status).toBe(202);
};
const streamUrl = (sid: string): string => `${env.cp.url}/agents/${sid}/stream`;

function expectStrictlyIncreasing(ids: number[]): void {
  for (let i = 1; i < ids.length; i++) expect(ids[i], `id ${ids[i]} after ${ids[i - 1]}`).toBeGreaterThan(ids[i - 1]!);
}

describe('GET /agents/:agentId/stream with Last-Event-ID', () => {
  it('after a disconnect mid-stream, a reconnect receives every later durable event exactly once, in order, without gaps', async () => {
    const sid = 'res-1';
    await env.rt.createAgent(sid, 'multi');
    const start = await env.store.lastLogId(sid);

    const s1 = await openSse(streamUrl(sid), env.auth);
    await send(sid, 'm1', 3);
    await send(sid, 'm2', 3);
    await s1.until(hasReply('m2', 1), 'm2#1');
    s1.close(); // mid-stream: m2's run has more to say, and more messages follow
    await sleep(50);
    // Resume from m2#1 itself, in the middle of one commit's entries (m2#2 may have arrived
    // before the close; a client that lost it is exactly what Last-Event-ID is for).
    const cut = durable(s1).findIndex((e) => e.event === 'reply' && replyOf(e) === 'm2#1');
    const first = durable(s1).slice(0, cut + 1);
    const lastSeen = first.at(-1)!.id!;

    await send(sid, 'm3', 2);
    await send(sid, 'm4', 4);
    await waitFor(async () => (await env.store.readLog(sid, Number(lastSeen), 1000)).some((e) => e.kind === 'reply' && (e.data as { body: { tag: string; i: number } }).body.tag === 'm4' && (e.data as { body: { i: number } }).body.i === 3), 'm4 committed');

    const s2 = await openSse(streamUrl(sid), { ...env.auth, 'Last-Event-ID': lastSeen });
    await send(sid, 'm5', 2); // committed while the reconnect is catching up
    await s2.until(hasReply('m5', 1), 'm5#1'); // the last entry: a run's state entries precede the replies committed with it
    await sleep(200); // anything extra (a duplicate) would show up now
    s2.close();
    const second = durable(s2);

    const firstIds = first.map((e) => Number(e.id));
    const secondIds = second.map((e) => Number(e.id));
    expect(secondIds[0]).toBeGreaterThan(Number(lastSeen));
    const all = [...first, ...second];
    const allIds = [...firstIds, ...secondIds];
    expectStrictlyIncreasing(allIds); // no duplicate across the two connections either
    // No gaps: exactly the durable log of the session from where the first stream began.
    const log = await env.store.readLog(sid, start, 1000);
    expect(allIds).toEqual(log.map((e) => e.id));
    expect(all.map((e) => e.json)).toEqual(log.map((e) => e.data));
    expect(all.map((e) => e.event)).toEqual(log.map((e) => e.kind));
    // Every reply exactly once.
    const replies = all.filter((e) => e.event === 'reply').map(replyOf);
    expect(replies).toEqual(['m1#0', 'm1#1', 'm1#2', 'm2#0', 'm2#1', 'm2#2', 'm3#0', 'm3#1', 'm4#0', 'm4#1', 'm4#2', 'm4#3', 'm5#0', 'm5#1']);
  });

  it('resumes after the log entry a chunk id names (chunks are live only)', async () => {
    const sid = 'res-2';
    await env.rt.createAgent(sid, 'multi');
    const s = await openSse(streamUrl(sid), env.auth);
    await send(sid, 'c1', 2);
    await s.until(hasReply('c1', 1), 'c1#1');
    await s.until((ev) => ev.filter((e) => e.event === 'chunk').length === 2, 'both chunks');
    s.close();
    const chunk = s.events.find((e) => e.event === 'chunk')!;
    expect(chunk.id).toMatch(/^\d+-c1$/);
    const after = Number(chunk.id!.split('-')[0]);

    const r = await openSse(streamUrl(sid), { ...env.auth, 'Last-Event-ID': chunk.id! });
    const log = await env.store.readLog(sid, after, 1000);
    await r.until((ev) => ev.filter(isDurable).length >= log.length, 'the replay');
    r.close();
    expect(durable(r).map((e) => Number(e.id))).toEqual(log.map((e) => e.id));
    expect(r.events.filter((e) => e.event === 'chunk')).toEqual([]); // not replayed
  });

  it('?lastEventId=0 replays everything retained; below the retention horizon a `truncated` event says so first', async () => {
    const sid = 'res-3';
    await env.rt.createAgent(sid, 'multi');
    await send(sid, 't1', 3);
    await waitFor(async () => (await env.store.readLog(sid, 0, 100)).filter((e) => e.kind === 'reply').length === 3, 't1 committed');
    const log = await env.store.readLog(sid, 0, 100);

    const all = await openSse(`${streamUrl(sid)}?lastEventId=0`, env.auth);
    await all.until((ev) => ev.filter(isDurable).length === log.length, 'everything');
    expect(durable(all).map((e) => Number(e.id))).toEqual(log.map((e) => e.id));
    expect(all.events.some((e) => e.event === 'truncated')).toBe(false);
    all.close();

    await env.store.pruneLog({ before: 0, keepPerSession: 2, sessionIds: [sid] });
    const late = await openSse(streamUrl(sid), { ...env.auth, 'Last-Event-ID': String(log[0]!.id) });
    const t = await late.next();
    expect(t.event).toBe('truncated');
    expect(t.id).toBeUndefined(); // does not move the client's resume point
    expect(t.json).toEqual({ agentId: sid, after: log[0]!.id, prunedThrough: log.at(-3)!.id });
    await late.until((ev) => ev.filter(isDurable).length === 2, 'the retained rest');
    expect(durable(late).map((e) => Number(e.id))).toEqual(log.slice(-2).map((e) => e.id));
    late.close();
  });

  it('state changes that no reply follows (a sleep, a wake) arrive promptly, not at the next heartbeat', async () => {
    const sid = 'res-4';
    await env.rt.createAgent(sid, 'multi');
    const s = await openSse(streamUrl(sid), env.auth);
    await s.until(() => s.comments.length > 0, 'the stream\'s opening comment');
    await env.rt.sleepAgent(sid, { durationMs: 3_600_000 });
    const slept = await s.next((e) => e.event === 'state', 60_000);
    expect(slept.json).toMatchObject({ agentId: sid, from: 'idle', to: 'sleeping', state: 'sleeping', event: 'SLEEP' });
    // Happened-before: the notice came ahead of the first heartbeat (15 s), which would also
    // have delivered it; only the opening comment preceded it.
    expect(s.comments.filter((c) => c === 'keep-alive')).toEqual([]);
    await env.rt.wakeAgent(sid);
    await s.until((ev) => ev.filter((e) => e.event === 'state').some((e) => (e.json as { from: string; to: string }).from !== 'sleeping' && (e.json as { to: string }).to === 'idle'), 'idle after the wake run', 60_000);
    expect(s.comments.filter((c) => c === 'keep-alive')).toEqual([]);
    s.close();
  });

  it('refuses a Last-Event-ID it never sent → 400 INVALID_ARGUMENT', async () => {
    const res = await fetch(streamUrl('res-1'), { headers: { ...env.auth, 'Last-Event-ID': 'abc' } });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { type: 'INVALID_ARGUMENT', code: 4002, retryable: false } });
  });
});
