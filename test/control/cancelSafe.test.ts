// Cancel-safe turns (issue 15 §2) over real NATS + Postgres: a turn aborted by a newer message
// (cancel-and-merge) or rolled back commits nothing of its state; the chunks it streamed are
// followed by a `retracted` notice on core NATS (`agentry.out.<id>`, Agentry-Kind retracted), on a
// WebSocket `subscribe` (output kind retracted) and on the SSE stream (event retracted); the
// agent's `onAbort(ctx, partial)` repairs the transcript before the next turn, which commits the
// repair once; a handler that ignores its signal past `abortGraceMs` is counted and its late
// result discarded. Turns are held open by gates the test releases.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Msg, NatsConnection } from '@nats-io/transport-node';
import { defineAgent } from '../../actors/index.js';
import { startControlPlane, type ControlPlane } from '../../runtime/index.js';
import { natsClient, startStack, waitFor, type Stack } from '../helpers.js';
import { openSse } from '../ingress/sseClient.js';
import { RawRpc } from './rawRpc.js';

/** Gates by session: each started turn waits on its own; the test opens them. */
const gates = new Map<string, (() => void)[]>();
const gate = (sid: string, signal?: AbortSignal): Promise<void> => new Promise<void>((resolve, reject) => {
  const list = gates.get(sid) ?? [];
  list.push(resolve);
  gates.set(sid, list);
  signal?.addEventListener('abort', () => { reject(new Error('aborted')); }, { once: true });
});
const openAll = (sid: string): void => { for (const f of gates.get(sid)?.splice(0) ?? []) f(); };

interface St { transcript: string[]; drafts: string[] }
const texts = (batch: readonly { kind: string; body: unknown }[]): string[] => batch.filter((m) => m.kind === 'message').map((m) => String(m.body));

/** Streams a chunk, then waits for its gate (honouring the signal unless told not to); records its batch. */
function agent(type: string, onMessage: 'cancel-and-merge' | 'rollback', ignoreSignal = false) {
  return defineAgent<St>({
    type,
    onMessage,
    maxMergeDelayMs: 60_000,
    initialState: () => ({ transcript: [], drafts: [] }),
    async handle(batch, ctx) {
      const t = texts(batch);
      ctx.state.drafts.push(`draft ${t.join('+')}`); // an aborted turn's draft must never commit
      ctx.stream({ partial: t.join('+') });
      await gate(ctx.sessionId, ignoreSignal ? undefined : ctx.signal);
      ctx.state.transcript.push(`answered ${t.join('+')}`);
      ctx.reply({ text: t.join('+') });
      return undefined;
    },
    onAbort(ctx, partial) {
      ctx.state.transcript.push(`aborted run ${partial.runId} (${partial.reason}, ${partial.streamed} chunk(s), draft ${partial.state.drafts.length})`);
    },
  });
}

let stack: Stack;
let cp: ControlPlane;
let c: RawRpc;
let nc: NatsConnection;

beforeAll(async () => {
  stack = await startStack('cancel_safe', {
    agents: [agent('cs-merge', 'cancel-and-merge'), agent('cs-rollback', 'rollback'), agent('cs-stubborn', 'cancel-and-merge', true)],
    config: { abortGraceMs: 200 },
  });
  cp = await startControlPlane(stack.rt, { port: 0 });
  c = await RawRpc.open(cp.rpcUrl);
  nc = await natsClient(stack.nats.url);
});

afterAll(async () => {
  for (const sid of gates.keys()) openAll(sid);
  c?.close();
  await nc?.close();
  await cp?.close();
  await stack?.stop();
});

const running = (sid: string, n: number) => waitFor(() => (gates.get(sid)?.length ?? 0) >= n, `${sid}: ${n} turn(s) waiting at the gate`);
const committed = (sid: string, pred: (st: St) => boolean) => waitFor(async () => {
  const rec = await stack.store.loadSession(sid);
  const st = (rec?.snapshot as { context: { userState: St } } | undefined)?.context.userState;
  return rec?.status === 'idle' && st && pred(st) ? st : null;
}, `${sid} committed`);

describe('cancel-safe turns', () => {
  it('cancel-and-merge: the aborted turn commits nothing, its chunks are retracted on NATS, WebSocket and SSE, and onAbort repairs the transcript once', async () => {
    const sid = 'cs-merge-1';
    await c.ok('createAgent', { agentId: sid, type: 'cs-merge' });
    const out: Msg[] = [];
    const sub = nc.subscribe(`agentry.out.${sid}`, { callback: (_e, m) => { out.push(m); } });
    await nc.flush();
    await c.ok('subscribe', { agentId: sid, kinds: ['output'] });
    const sse = await openSse(`${cp.url}/agents/${sid}/stream`);
    try {
      await c.ok('sendMessage', { agentId: sid, message: 'a' });
      await running(sid, 1);
      await waitFor(() => out.some((m) => m.headers?.get('Agentry-Kind') === 'chunk'), 'the first chunk');
      await c.ok('sendMessage', { agentId: sid, message: 'b' });
      await running(sid, 2); // the merged turn started: the first was aborted
      const retracted = await waitFor(() => out.find((m) => m.headers?.get('Agentry-Kind') === 'retracted'), 'the retracted notice on NATS');
      const firstChunk = out.find((m) => m.headers?.get('Agentry-Kind') === 'chunk')!;
      expect(retracted.headers?.get('Agentry-Run')).toBe(firstChunk.headers?.get('Agentry-Run'));
      expect(retracted.json()).toMatchObject({ run: Number(firstChunk.headers?.get('Agentry-Run')), chunks: 1, reason: 'merged' });
      // Order on the subject: the aborted run's chunk, then its retraction, then the merged run's chunk.
      const kinds = out.map((m) => `${m.headers?.get('Agentry-Kind')}:${m.headers?.get('Agentry-Run')}`);
      expect(kinds.indexOf(`retracted:${retracted.headers?.get('Agentry-Run')}`)).toBeGreaterThan(kinds.indexOf(`chunk:${retracted.headers?.get('Agentry-Run')}`));
      await waitFor(() => c.notifications.some((n) => n.params.kind === 'output' && n.params.data.kind === 'retracted'), 'the retracted notification over WebSocket');
      const ws = c.notifications.find((n) => n.params.data.kind === 'retracted')!;
      expect(ws.params.data).toMatchObject({ kind: 'retracted', run: Number(retracted.headers?.get('Agentry-Run')), body: { chunks: 1, reason: 'merged' } });
      const ev = await sse.next((e) => e.event === 'retracted', 20_000);
      expect(ev.json).toMatchObject({ agentId: sid, run: Number(retracted.headers?.get('Agentry-Run')), body: { chunks: 1 } });

      openAll(sid);
      const st = await committed(sid, (s) => s.transcript.some((x) => x.startsWith('answered')));
      expect(st.drafts).toEqual(['draft a+b']); // the aborted turn's draft never committed
      expect(st.transcript).toEqual([expect.stringMatching(/^aborted run \d+ \(merged, 1 chunk\(s\), draft 1\)$/), 'answered a+b']);
    } finally {
      sub.unsubscribe();
      sse.close();
    }
  });

  it('rollback: the rolled-back turn commits nothing of its state; the new message runs on the pre-turn state', async () => {
    const sid = 'cs-rollback-1';
    await c.ok('createAgent', { agentId: sid, type: 'cs-rollback' });
    await c.ok('sendMessage', { agentId: sid, message: 'x' });
    await running(sid, 1);
    await c.ok('sendMessage', { agentId: sid, message: 'y' });
    await running(sid, 2);
    openAll(sid);
    const st = await committed(sid, (s) => s.transcript.some((x) => x.startsWith('answered')));
    expect(st.drafts).toEqual(['draft y']);
    expect(st.transcript).toEqual([expect.stringMatching(/^aborted run \d+ \(rolled-back, 1 chunk\(s\), draft 1\)$/), 'answered y']);
  });

  it('a handler that ignores its signal past abortGraceMs is counted, and its late result is discarded', async () => {
    const sid = 'cs-stubborn-1';
    await c.ok('createAgent', { agentId: sid, type: 'cs-stubborn' });
    const before = stack.rt.host.stats.abortIgnored;
    await c.ok('sendMessage', { agentId: sid, message: 'p' });
    await running(sid, 1);
    await c.ok('sendMessage', { agentId: sid, message: 'q' });
    await running(sid, 2);
    await waitFor(() => stack.rt.host.stats.abortIgnored > before, 'the ignored abort counted');
    const [late, current] = gates.get(sid)!.splice(0);
    late!(); // the aborted run finishes now: its result must be discarded
    current!();
    const st = await committed(sid, (s) => s.transcript.some((x) => x.startsWith('answered')));
    expect(st.transcript.filter((x) => x.startsWith('answered'))).toEqual(['answered p+q']);
    expect(st.drafts).toEqual(['draft p+q']);
    const metrics = await (await fetch(`${cp.url}/metrics`)).text();
    expect(metrics).toMatch(/^agentry_handler_abort_ignored_total [1-9]/m);
  });
});
