// Traces (issue 16 §3): a W3C traceparent on an inbound message is continued across dispatch,
// the handler run, the commit and the publish of the reply (which carries a traceparent); across
// a sleep, a runtime restart (a second runtime on the same Postgres schema and NATS) and the
// wake-up; messages merged into a run or superseded by another are linked to it. An in-memory
// span exporter collects the spans. Real nats-server and Postgres.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import type { NatsConnection } from '@nats-io/transport-node';
import { defineAgent } from '../../actors/index.js';
import { openStore } from '../../persistence/index.js';
import type { Store } from '../../persistence/types.js';
import type { Runtime } from '../../runtime/index.js';
import { PG_URL, dropSchema, natsClient, publish, schemaName, startNats, startRuntime, waitFor } from '../helpers.js';

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });

/** A fresh producer context: `00-<trace>-<span>-01`. */
function newTraceparent(): { traceparent: string; traceId: string; spanId: string } {
  const traceId = randomBytes(16).toString('hex');
  const spanId = randomBytes(8).toString('hex');
  return { traceparent: `00-${traceId}-${spanId}-01`, traceId, spanId };
}

let gate: Promise<void> = Promise.resolve();
let openGate: () => void = () => undefined;
let started = 0;
const sleeper = defineAgent({
  type: 'traced',
  onMessage: 'cancel-and-merge',
  initialState: () => ({ seen: [] as string[] }),
  async handle(batch, ctx) {
    const tags = batch.map((m) => (m.kind === 'wake' ? 'wake' : String((m.body as { tag?: string } | null)?.tag)));
    started++;
    if (tags.includes('hold')) {
      await Promise.race([gate, new Promise((_, reject) => { ctx.signal.addEventListener('abort', () => { reject(new Error('aborted')); }); })]);
    }
    ctx.state.seen.push(tags.join('+'));
    ctx.reply({ tags });
    if (tags.includes('nap')) return ctx.sleep({ durationMs: 3_600_000 });
    return undefined;
  },
});

let nats: Awaited<ReturnType<typeof startNats>>;
let nc: NatsConnection;
let schema: string;
let store: Store;
let rt: Runtime;
const replies: { sid: string; tags: string[]; traceparent: string | undefined }[] = [];

async function start(): Promise<void> {
  store = openStore({ databaseUrl: PG_URL, schema });
  rt = await startRuntime(nats.url, { agents: [sleeper], store });
}

beforeAll(async () => {
  trace.setGlobalTracerProvider(provider);
  nats = await startNats(8);
  nc = await natsClient(nats.url);
  schema = schemaName('tracing');
  await start();
  const sub = nc.subscribe('agentry.out.>');
  void (async () => {
    for await (const m of sub) {
      if (m.headers?.get('Agentry-Kind') !== 'reply') continue;
      replies.push({ sid: m.subject.slice('agentry.out.'.length), tags: (m.json<{ tags: string[] }>()).tags, traceparent: m.headers.get('traceparent') || undefined });
    }
  })();
}, 60_000);

afterAll(async () => {
  await rt?.stop();
  await store?.close();
  await nc?.close();
  await nats?.cleanup();
  if (schema) await dropSchema(schema);
  trace.disable();
  await provider.shutdown();
});

const spans = (): ReadableSpan[] => exporter.getFinishedSpans();
const inTrace = (traceId: string, name?: string): ReadableSpan[] =>
  spans().filter((s) => s.spanContext().traceId === traceId && (name === undefined || s.name === name));
const parentOf = (s: ReadableSpan): string | undefined => s.parentSpanContext?.spanId;

describe('traces', () => {
  it('continues a traceparent through run, commit and reply, across sleep, a restart and the wake-up', async () => {
    const sid = 'tr-sleep-1';
    await rt.createAgent(sid, 'traced');
    const t1 = newTraceparent();
    await publish(nc, sid, { tag: 'nap' }, { traceparent: t1.traceparent, tracestate: 'vendor=a' });
    await waitFor(async () => (await rt.getAgent(sid)).state === 'sleeping', 'the session asleep');

    // Dispatch → run → commit → publish, all in the producer's trace.
    const run1 = await waitFor(() => inTrace(t1.traceId, 'agentry.run')[0], 'the run span');
    expect(parentOf(run1)).toBe(t1.spanId);
    expect(run1.attributes['agentry.session.id']).toBe(sid);
    expect(inTrace(t1.traceId, 'agentry.receive').map(parentOf)).toContain(t1.spanId);
    const commit = await waitFor(() => inTrace(t1.traceId, 'agentry.commit')[0], 'the commit span');
    expect(parentOf(commit)).toBe(run1.spanContext().spanId);
    await waitFor(() => inTrace(t1.traceId, 'agentry.publish')[0], 'the publish span');
    // The reply carries the run's context.
    const reply = await waitFor(() => replies.find((r) => r.sid === sid && r.tags.includes('nap')), 'the reply');
    expect(reply.traceparent).toBe(`00-${t1.traceId}-${run1.spanContext().spanId}-01`);

    // A message sent while it sleeps is deferred (stored in the snapshot, with its own trace).
    const t2 = newTraceparent();
    await publish(nc, sid, { tag: 'late' }, { traceparent: t2.traceparent });
    await waitFor(() => inTrace(t2.traceId, 'agentry.receive')[0], 'the deferred message received');
    await waitFor(async () => ((await store.loadSession(sid))?.snapshot as { context: { deferred: unknown[] } }).context.deferred.length === 1, 'the deferral committed');

    // A restart: nothing of the first runtime's memory survives; the contexts come from Postgres.
    await rt.stop();
    await store.close();
    exporter.reset();
    await start();
    await rt.wakeAgent(sid);
    const wakeReply = await waitFor(() => replies.find((r) => r.sid === sid && r.tags.includes('wake')), 'the wake-up reply');
    expect(wakeReply.tags).toEqual(['wake', 'late']);
    // The wake-up run continues the trace that put the session to sleep, and links the deferred message.
    const run2 = await waitFor(() => inTrace(t1.traceId, 'agentry.run')[0], 'the wake-up run in the first trace');
    expect(parentOf(run2)).toBe(run1.spanContext().spanId);
    expect(run2.attributes['agentry.wake.reason']).toBe('manual');
    expect(run2.links.map((l) => l.context.traceId)).toContain(t2.traceId);
    expect(wakeReply.traceparent).toBe(`00-${t1.traceId}-${run2.spanContext().spanId}-01`);
    // The deferred message's own trace points at the run that handled it.
    const merged = await waitFor(() => inTrace(t2.traceId, 'agentry.message.handled')[0], 'the deferred message\'s span');
    expect(parentOf(merged)).toBe(t2.spanId);
    expect(merged.links[0]?.context.spanId).toBe(run2.spanContext().spanId);
  }, 120_000);

  it('links a message merged into a running turn, and one superseded by a latest message', async () => {
    const sid = 'tr-merge-1';
    await rt.createAgent(sid, 'traced');
    gate = new Promise((r) => { openGate = r; });
    const ta = newTraceparent();
    const tb = newTraceparent();
    const before = started;
    await publish(nc, sid, { tag: 'hold' }, { traceparent: ta.traceparent });
    await waitFor(() => started > before, 'the first turn running');
    await publish(nc, sid, { tag: 'b' }, { traceparent: tb.traceparent });
    await waitFor(() => started > before + 1, 'the merged turn running');
    openGate();
    const reply = await waitFor(() => replies.find((r) => r.sid === sid), 'the merged reply');
    expect(reply.tags).toEqual(['hold', 'b']);
    const runs = await waitFor(() => { const r = inTrace(ta.traceId, 'agentry.run'); return r.length === 2 ? r : null; }, 'both run spans');
    const aborted = runs.find((r) => r.attributes['agentry.run.outcome'] === 'aborted');
    const ok = runs.find((r) => r.attributes['agentry.run.outcome'] === 'ok')!;
    expect(aborted).toBeDefined();
    expect(ok.links.map((l) => l.context.spanId)).toEqual([tb.spanId]);
    const back = await waitFor(() => inTrace(tb.traceId, 'agentry.message.merged')[0], 'the merged message span');
    expect(back.links[0]?.context.spanId).toBe(ok.spanContext().spanId);

    // `latest`: the running turn is dropped; its message is superseded, linked to the run that replaced it.
    const sid2 = 'tr-latest-1';
    await rt.createAgent(sid2, 'traced');
    gate = new Promise((r) => { openGate = r; });
    const tc = newTraceparent();
    const td = newTraceparent();
    const b2 = started;
    await publish(nc, sid2, { tag: 'hold' }, { traceparent: tc.traceparent });
    await waitFor(() => started > b2, 'the held turn running');
    await publish(nc, sid2, { tag: 'd' }, { traceparent: td.traceparent, 'Agentry-Turn-Policy': 'latest' });
    const r2 = await waitFor(() => replies.find((r) => r.sid === sid2), 'the latest reply');
    expect(r2.tags).toEqual(['d']);
    openGate();
    const runD = await waitFor(() => inTrace(td.traceId, 'agentry.run').find((s) => s.attributes['agentry.run.outcome'] === 'ok'), 'the run of d');
    const sup = await waitFor(() => inTrace(tc.traceId, 'agentry.message.superseded')[0], 'the superseded message span');
    expect(sup.links[0]?.context.spanId).toBe(runD.spanContext().spanId);
    expect(runD.links.map((l) => [l.context.spanId, l.attributes?.['agentry.link']])).toEqual([[tc.spanId, 'superseded']]);
  }, 120_000);

  it('takes the trace context from sendMessage, and ignores a malformed header', async () => {
    const sid = 'tr-api-1';
    await rt.createAgent(sid, 'traced');
    const t = newTraceparent();
    await rt.sendMessage(sid, { tag: 'api' }, { traceparent: t.traceparent });
    await waitFor(() => inTrace(t.traceId, 'agentry.run')[0], 'the run in the API caller\'s trace');
    await publish(nc, sid, { tag: 'bad' }, { traceparent: '00-zz-not-a-context' });
    const r = await waitFor(() => replies.find((x) => x.sid === sid && x.tags.includes('bad')), 'the reply to the malformed one');
    // Handled in a trace of its own (the test SDK samples every root span).
    expect(r.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(r.traceparent).not.toContain('zz');
  }, 60_000);
});
