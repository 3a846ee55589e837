/**
 * Owns the runtime's OpenTelemetry traces, through `@opentelemetry/api` only: the user brings
 * an SDK (and its exporter); without one every call here lands in the API's no-op tracer and
 * costs a few hundred nanoseconds per message (measured in docs/tracing.md).
 *
 * The W3C `traceparent` / `tracestate` of an inbound message (a NATS header, an HTTP header, a
 * JSON-RPC field) is stored WITH the message (`InboxMessage.traceparent`): while a message is
 * deferred or a session sleeps, it lives in the session's snapshot, so it survives a restart and
 * a failover; a message not acked yet comes back from JetStream with its headers. Spans:
 *
 * - `agentry.receive` (consumer): a message reached its session; child of the message's context.
 * - `agentry.run` (internal): one handler attempt on a batch; child of the batch's first message
 *   that carries a context (a wake record carries the context of the run that put the session to
 *   sleep or to wait, `WakeCondition.traceparent`), with a span link to every other message of the
 *   batch (merged messages).
 * - `agentry.commit` and `agentry.publish`: the run's commit and the publish of its outbox rows,
 *   children of the run. Every output (reply, chunk, mail, event) carries the run's `traceparent`,
 *   stored in its outbox row, so a resend after a crash carries it too; mail continues the trace
 *   in the recipient.
 * - `agentry.message.<fate>`: for a message merged into, or superseded/rejected by, a run of
 *   another trace, a span in the message's own trace linking to that run (the run links back).
 *
 * Invalid trace headers are ignored (W3C: start a new trace), never a reason to refuse a message.
 */
import {
  ProxyTracerProvider, ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, context, createTraceState, isSpanContextValid, trace,
  type Attributes, type Context, type Link, type Span, type SpanContext,
} from '@opentelemetry/api';
import type { InboxMessage, NextStep } from '../actors/types.js';

/** The W3C Trace Context header names (lower case, as the spec writes them). */
export const TRACEPARENT = 'traceparent';
export const TRACESTATE = 'tracestate';

/** A stored trace context: what an inbound message, a wake condition or an output carries. */
export interface TraceCarrier {
  readonly traceparent?: string;
  readonly tracestate?: string;
}

const tracer = trace.getTracer('agentry');
/** The API's no-op provider (what a proxy delegates to while no SDK is registered). */
// The API 1.x has no other way to tell whether an SDK is registered; the class stays until 2.0.
// eslint-disable-next-line @typescript-eslint/no-deprecated
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate();

/**
 * False while no SDK is registered: then no span is made at all (a no-op span with a parent
 * still costs a context and a parse per call) and a run simply forwards its first message's
 * trace context to its outputs and wake-ups, as a W3C intermediary that does not trace.
 */
function tracing(): boolean {
  const p = trace.getTracerProvider();
  // eslint-disable-next-line @typescript-eslint/no-deprecated
  return !(p instanceof ProxyTracerProvider) || p.getDelegate() !== NOOP_PROVIDER;
}

const TRACEPARENT_RE = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const TRACESTATE_RE = /^[\x20-\x7e]{0,512}$/;

/** The span context a `traceparent` names (remote), or null when it is absent or not W3C version 00. */
export function parseTraceparent(traceparent: string | undefined, tracestate?: string): SpanContext | null {
  if (!traceparent) return null;
  const m = TRACEPARENT_RE.exec(traceparent.trim());
  if (!m) return null;
  const sc: SpanContext = {
    traceId: m[1]!, spanId: m[2]!, traceFlags: parseInt(m[3]!, 16) & TraceFlags.SAMPLED, isRemote: true,
    ...(tracestate && TRACESTATE_RE.test(tracestate) ? { traceState: createTraceState(tracestate) } : {}),
  };
  return isSpanContextValid(sc) ? sc : null;
}

/** The W3C headers of a span context: empty when it is not valid (the no-op tracer without a parent). */
export function traceHeadersOf(sc: SpanContext | undefined): Record<string, string> {
  if (!sc || !isSpanContextValid(sc)) return {};
  const h: Record<string, string> = { [TRACEPARENT]: `00-${sc.traceId}-${sc.spanId}-0${(sc.traceFlags & TraceFlags.SAMPLED).toString(16)}` };
  const ts = sc.traceState?.serialize();
  if (ts) h[TRACESTATE] = ts;
  return h;
}

/**
 * A valid trace carrier from header values (or API fields), else `{}`. Used at every door, so a
 * stored message carries only a well-formed context (and text Postgres can store).
 */
export function traceCarrierOf(traceparent: string | null | undefined, tracestate?: string | null): TraceCarrier {
  const sc = parseTraceparent(traceparent ?? undefined);
  if (!sc) return {};
  const tp = traceparent!.trim();
  return tracestate && TRACESTATE_RE.test(tracestate) ? { traceparent: tp, tracestate } : { traceparent: tp };
}

/** The W3C headers of the caller's active span (an SDK user calling `sendMessage` inside a span), else `{}`. */
export function activeTraceHeaders(): Record<string, string> {
  return traceHeadersOf(trace.getSpanContext(context.active()));
}

function contextOf(c: TraceCarrier | undefined): Context {
  const sc = parseTraceparent(c?.traceparent, c?.tracestate);
  return sc ? trace.setSpanContext(ROOT_CONTEXT, sc) : ROOT_CONTEXT;
}

function linkOf(c: TraceCarrier, attributes?: Attributes): Link | null {
  const sc = parseTraceparent(c.traceparent, c.tracestate);
  return sc ? { context: sc, ...(attributes ? { attributes } : {}) } : null;
}

/** Records that a message reached its session (ends at once). */
export function traceReceive(sessionId: string, agentType: string, m: InboxMessage, state: string): void {
  if (!tracing()) return;
  tracer.startSpan('agentry.receive', {
    kind: SpanKind.CONSUMER,
    attributes: {
      'agentry.session.id': sessionId, 'agentry.agent.type': agentType, 'agentry.message.seq': m.seq,
      'agentry.message.kind': m.kind, 'agentry.session.state': state, 'messaging.system': 'nats',
      'messaging.destination.name': `agentry.in.${sessionId}`,
    },
  }, contextOf(m)).end();
}

/** A message whose turn a newer message aborted and dropped (`latest`: superseded, `rollback`: rolled back). */
export interface DroppedMessage {
  readonly message: InboxMessage;
  readonly fate: string;
}

/** A span in a message's own trace that points (a link) at the run that took it or replaced it. */
function pointToRun(sessionId: string, m: InboxMessage, fate: string, runId: number, run: SpanContext): void {
  const sc = parseTraceparent(m.traceparent, m.tracestate);
  if (!sc || !isSpanContextValid(run)) return;
  tracer.startSpan(`agentry.message.${fate}`, {
    kind: SpanKind.INTERNAL, links: [{ context: run, attributes: { 'agentry.link': 'run' } }],
    attributes: { 'agentry.session.id': sessionId, 'agentry.message.seq': m.seq, 'agentry.message.fate': fate, 'agentry.run.id': runId },
  }, trace.setSpanContext(ROOT_CONTEXT, sc)).end();
}

/** A handler attempt in flight: its span and the headers its outputs carry. */
export interface RunTrace {
  /** Null while no SDK is registered. */
  readonly span: Span | null;
  /** `traceparent`/`tracestate` of the run span: empty when no context exists (no SDK, no parent). */
  readonly headers: Readonly<Record<string, string>>;
}

/** Starts the span of one handler attempt: child of the batch's first traced message, linked to the others. */
/** The trace of a run with no span and no carrier (shared: nothing changes a RunTrace). */
const NO_RUN_TRACE: RunTrace = Object.freeze({ span: null, headers: Object.freeze({}) });

export function startRunTrace(
  sessionId: string, agentType: string, runId: number, attempt: number, batch: readonly InboxMessage[],
  dropped: readonly DroppedMessage[] = [],
): RunTrace {
  if (!tracing()) {
    // Stored carriers were validated at the door: forward the first one as it came.
    const first = batch.find((m) => m.traceparent !== undefined);
    return first ? { span: null, headers: carrierHeaders(first) } : NO_RUN_TRACE;
  }
  const parentIdx = batch.findIndex((m) => m.traceparent !== undefined && parseTraceparent(m.traceparent) !== null);
  const links: Link[] = [];
  batch.forEach((m, i) => {
    if (i === parentIdx || m.traceparent === undefined) return;
    const l = linkOf(m, { 'agentry.message.seq': m.seq, 'agentry.link': 'merged' });
    if (l) links.push(l);
  });
  for (const d of dropped) {
    const l = linkOf(d.message, { 'agentry.message.seq': d.message.seq, 'agentry.link': d.fate });
    if (l) links.push(l);
  }
  const wake = batch[0]?.kind === 'wake' ? (batch[0].body as { reason?: unknown } | null)?.reason : undefined;
  const span = tracer.startSpan('agentry.run', {
    kind: SpanKind.INTERNAL, links,
    attributes: {
      'agentry.session.id': sessionId, 'agentry.agent.type': agentType, 'agentry.run.id': runId, 'agentry.run.attempt': attempt,
      'agentry.batch.size': batch.length, 'agentry.batch.seqs': batch.map((m) => m.seq),
      ...(typeof wake === 'string' ? { 'agentry.wake.reason': wake } : {}),
    },
  }, parentIdx >= 0 ? contextOf(batch[parentIdx]) : ROOT_CONTEXT);
  for (const d of dropped) pointToRun(sessionId, d.message, d.fate, runId, span.spanContext());
  return { span, headers: traceHeadersOf(span.spanContext()) };
}

function carrierHeaders(c: TraceCarrier): Record<string, string> {
  const h: Record<string, string> = {};
  if (c.traceparent !== undefined) h[TRACEPARENT] = c.traceparent;
  if (c.traceparent !== undefined && c.tracestate !== undefined) h[TRACESTATE] = c.tracestate;
  return h;
}

/** Ends a run span: `ok`, failed (with the error), or aborted (superseded by a merge, an interrupt, a stop). */
export function endRunTrace(t: RunTrace | undefined, outcome: 'ok' | 'failed' | 'aborted', detail?: unknown): void {
  const span = t?.span;
  if (!span) return;
  span.setAttribute('agentry.run.outcome', outcome);
  if (outcome === 'failed') {
    if (detail instanceof Error) span.recordException(detail);
    span.setStatus({ code: SpanStatusCode.ERROR, message: detail instanceof Error ? detail.message : String(detail) });
  } else if (outcome === 'aborted' && typeof detail === 'string') {
    span.setAttribute('agentry.run.abort_reason', detail);
  }
  span.end();
}

/**
 * The step a handler returned, with the run's context stored in its wake or wait condition: the
 * wake-up run (a wake record) continues this trace, after a restart or on another node too.
 */
export function nextStepWithTrace(next: NextStep, headers: Readonly<Record<string, string>>): NextStep {
  const tp = headers[TRACEPARENT];
  if (tp === undefined || next.type === 'idle') return next;
  const carrier: TraceCarrier = headers[TRACESTATE] !== undefined ? { traceparent: tp, tracestate: headers[TRACESTATE] } : { traceparent: tp };
  if (next.type === 'sleep') return { ...next, wake: { ...next.wake, ...carrier } };
  if (next.type === 'wait') return { ...next, wait: { ...next.wait, ...carrier } };
  return next;
}

/** What a commit span needs of one committed run. */
export interface CommittedRunTrace {
  readonly runId: number;
  /** The run span's context (absent: the run was not traced, e.g. committed after a restart). */
  readonly run: SpanContext | undefined;
  readonly batch: readonly InboxMessage[];
  readonly settled: readonly { readonly message: InboxMessage; readonly fate: string }[];
  readonly outcome: string;
}

/**
 * Wraps a commit (and then the publish of its outbox rows) in spans, one per traced run of the
 * record. Also writes, in the trace of each message merged into a run of another trace or
 * settled without running (superseded, rejected), a span linking to the run that took it.
 */
export function traceCommit<T>(sessionId: string, runs: readonly CommittedRunTrace[], commit: () => Promise<T>): Promise<T> {
  // Not async itself: an untraced commit (no SDK) costs no extra promise.
  if (!runs.some((r) => r.run !== undefined)) return commit();
  return tracedCommit(sessionId, runs.filter((r) => r.run !== undefined && isSpanContextValid(r.run)), commit);
}

async function tracedCommit<T>(sessionId: string, traced: readonly CommittedRunTrace[], commit: () => Promise<T>): Promise<T> {
  const spans = traced.map((r) => tracer.startSpan('agentry.commit', {
    kind: SpanKind.INTERNAL,
    attributes: { 'agentry.session.id': sessionId, 'agentry.run.id': r.runId, 'agentry.run.outcome': r.outcome },
  }, trace.setSpanContext(ROOT_CONTEXT, r.run!)));
  try {
    const out = await commit();
    for (const s of spans) s.end();
    for (const r of traced) linkMessagesToRun(sessionId, r);
    return out;
  } catch (e) {
    for (const s of spans) { s.setStatus({ code: SpanStatusCode.ERROR, message: (e as Error).message }); s.end(); }
    throw e;
  }
}

function linkMessagesToRun(sessionId: string, r: CommittedRunTrace): void {
  const fate = r.outcome === 'ok' ? (r.batch.filter((m) => m.seq > 0).length > 1 ? 'merged' : 'handled') : r.outcome;
  const entries = [...r.batch.map((m) => ({ message: m, fate })), ...r.settled];
  for (const { message: m, fate: f } of entries) {
    // The run's own parent needs no pointer back; every other traced message of the run gets one.
    if (isParentOf(r, m)) continue;
    pointToRun(sessionId, m, f, r.runId, r.run!);
  }
}

function isParentOf(r: CommittedRunTrace, m: InboxMessage): boolean {
  return r.batch.find((x) => x.traceparent !== undefined && parseTraceparent(x.traceparent) !== null) === m;
}

/** Wraps the publish of a committed record's outbox rows in a span per traced run. */
export function tracePublish<T>(sessionId: string, runs: readonly (SpanContext | undefined)[], rows: number, publish: () => Promise<T>): Promise<T> {
  const parents = rows === 0 ? [] : runs.filter((r): r is SpanContext => r !== undefined && isSpanContextValid(r));
  return parents.length === 0 ? publish() : tracedPublish(sessionId, parents, rows, publish);
}

async function tracedPublish<T>(sessionId: string, parents: readonly SpanContext[], rows: number, publish: () => Promise<T>): Promise<T> {
  const spans = parents.map((p) => tracer.startSpan('agentry.publish', {
    kind: SpanKind.PRODUCER, attributes: { 'agentry.session.id': sessionId, 'agentry.outbox.rows': rows, 'messaging.system': 'nats' },
  }, trace.setSpanContext(ROOT_CONTEXT, p)));
  try {
    return await publish();
  } finally {
    for (const s of spans) s.end();
  }
}
