/**
 * Owns the plain-HTTP routes of the control plane, for producers that speak neither NATS nor
 * WebSocket (webhooks, shell scripts, a browser's EventSource):
 *
 * - `POST /agents/:agentId/messages` `{ message, priority?, … }` → `202 { seq }`
 * - `POST /events/:type` `{ data?, priority?, from? }` → `202 { seq, recipients }`
 * - `POST /agents/:agentId/interrupt` `{ reason? }` → `200 { agentId, state, interrupted }`
 * - `GET /agents/:agentId/stream` → server-sent events (see `sse.ts`)
 * - `POST /waitpoints/:id` with the value as the JSON body → `200 { id, agentId, status, duplicate }`
 *   (completeWaitpoint). It needs no token: the unguessable, single-use, expiring id is the
 *   capability, so the URL can go in an e-mail or a chat button. Rate limit and Origin rules apply.
 *
 * Each route is its JSON-RPC method underneath: the same zod params schema (the path supplies
 * `agentId` / `type`), the same implementation (`createMethodTable`, so the same refusals:
 * unknown or stopped session, …) and the same error codes, sent as JSON with an HTTP status
 * (`ingressErrors.ts`). Auth is the control plane's: the bearer token (header, `?token=` for
 * EventSource, or the UI's cookie), the Origin allowlist (with CORS for allowed origins), and a
 * per-client-address rate limit with the API's numbers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AgentryError } from '../../actors/errors.js';
import { assertSessionId } from '../../actors/sessionId.js';
import { methods, type ResultOf } from '../../client/index.js';
import type { Logger } from '../logger.js';
import type { Runtime } from '../runtime.js';
import { originAllowed, presentedToken, tokenMatches } from './auth.js';
import { readJsonBody } from './ingressBody.js';
import { HttpError, toHttpError } from './ingressErrors.js';
import { createMethodTable } from './methods.js';
import { traceCarrierOf } from '../tracing.js';
import type { RpcConnection } from './rpcConnection.js';
import { invalidParams } from './rpcErrors.js';
import { createSseHub, parseLastEventId, type SseHub } from './sse.js';
import { TokenBucket } from './tokenBucket.js';

/** Limits of the HTTP routes; every field has a default. */
export interface IngressOptions {
  /** Largest request body; a bigger one gets 413 PAYLOAD_TOO_LARGE. Default 1 MiB. */
  readonly maxBodyBytes?: number;
  /** Deepest JSON nesting of a body field (as for /rpc params). Default the runtime's `maxJsonDepth` (64). */
  readonly maxDepth?: number;
  /** Requests per second per client address, sustained / burst. Default the runtime's `rpcRatePerSec` / `rpcBurst`. */
  readonly ratePerSec?: number;
  readonly burst?: number;
  /** Event streams open at once on this node. Default 1000. */
  readonly maxStreams?: number;
  /** Heartbeat comment interval of event streams. Default 15 s. */
  readonly heartbeatMs?: number;
  /** Unsent bytes after which an event stream that is not read is closed at once. Default 4 MiB. */
  readonly maxStreamBufferedBytes?: number;
  /** An event stream whose client has read nothing of what is queued for this long is closed. Default 5 s. */
  readonly streamStallMs?: number;
}

/** What the control plane hands the ingress: its token and its (late-bound) Origin allowlist. */
export interface IngressDeps {
  readonly token: string | undefined;
  readonly allowedOrigins: () => ReadonlySet<string>;
  readonly logger: Logger;
}

/** The ingress of one control plane. */
export interface Ingress {
  /** Serves the request if it is one of the ingress routes; false leaves it to the rest of the server. */
  handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean>;
  /** Open event streams (for tests and metrics). */
  readonly streams: number;
  /** Event streams closed because their client did not read (for metrics). */
  readonly slowStreamsClosed: number;
  /** Ends the event streams (server shutdown). */
  close(): void;
}

type Route =
  | { readonly name: 'messages' | 'interrupt' | 'stream'; readonly agentId: string }
  | { readonly name: 'events'; readonly type: string }
  | { readonly name: 'waitpoint'; readonly id: string }
  | { readonly name: 'unknown' }
  /** Ours, but a segment is not valid percent-encoding (or decodes to text that cannot be stored): 400. */
  | { readonly name: 'malformed'; readonly message: string };

const MiB = 1024 * 1024;
/** Client addresses whose rate-limit state is kept; the least recently seen are forgotten. */
const MAX_BUCKETS = 10_000;
/** Only `subscribe`/`unsubscribe` use the connection argument; the routes call other methods. */
const NO_CONNECTION = null as unknown as RpcConnection;
const ALLOW: Readonly<Record<Exclude<Route['name'], 'unknown' | 'malformed'>, string>> = { messages: 'POST', interrupt: 'POST', events: 'POST', stream: 'GET', waitpoint: 'POST' };

/** A decoded path segment, or undefined when it is not valid percent-encoding (`%zz`, `%E0%A4%A`, an encoded lone surrogate). */
function decodeSegment(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

const MALFORMED: Route = { name: 'malformed', message: 'the path is not valid percent-encoding (UTF-8 bytes, each as %XX)' };

/**
 * Which ingress route a path names: null when it is not under `/agents/`, `/events/` or `/waitpoints/`
 * (someone else's), `unknown` when it is under them but names nothing, `malformed` when it
 * names one with a segment that does not decode (answered 400, never 500).
 */
export function matchRoute(pathname: string): Route | null {
  if (pathname.startsWith('/agents/')) {
    const parts = pathname.slice('/agents/'.length).split('/');
    const [id, action] = parts;
    if (parts.length === 2 && id && (action === 'messages' || action === 'interrupt' || action === 'stream')) {
      const agentId = decodeSegment(id);
      return agentId === undefined ? MALFORMED : { name: action, agentId };
    }
    return { name: 'unknown' };
  }
  if (pathname.startsWith('/waitpoints/')) {
    const raw = pathname.slice('/waitpoints/'.length);
    if (!raw || raw.includes('/')) return { name: 'unknown' };
    const id = decodeSegment(raw);
    return id === undefined ? MALFORMED : { name: 'waitpoint', id };
  }
  if (pathname.startsWith('/events/')) {
    const raw = pathname.slice('/events/'.length);
    if (!raw || raw.includes('/')) return { name: 'unknown' };
    const type = decodeSegment(raw);
    return type === undefined ? MALFORMED : { name: 'events', type };
  }
  return null;
}

function sendJson(res: ServerResponse, status: number, value: unknown, headers: Readonly<Record<string, string>> = {}): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { ...headers, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(body);
}

/** A JSON object body (or none, as `{}`); the path's fields may not be contradicted by it. */
function bodyObject(body: unknown, fromPath: Record<string, string>): Record<string, unknown> {
  if (body === undefined) return { ...fromPath };
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new AgentryError('INVALID_ARGUMENT', 'the body must be a JSON object');
  }
  const o = body as Record<string, unknown>;
  for (const [k, v] of Object.entries(fromPath)) {
    if (k in o && o[k] !== v) throw new AgentryError('INVALID_ARGUMENT', `${k} comes from the path; the body says otherwise`);
  }
  return { ...o, ...fromPath };
}

/**
 * Creates the ingress over `runtime`. Its routes share the JSON-RPC methods' implementation,
 * so what the API refuses, HTTP refuses the same way.
 */
export function createIngress(runtime: Runtime, deps: IngressDeps, opts: IngressOptions = {}): Ingress {
  const log = deps.logger.child({ component: 'http-ingress' });
  const maxBodyBytes = opts.maxBodyBytes ?? MiB;
  const maxDepth = opts.maxDepth ?? runtime.config.maxJsonDepth;
  const ratePerSec = opts.ratePerSec ?? runtime.config.rpcRatePerSec;
  const burst = opts.burst ?? runtime.config.rpcBurst;
  const table = createMethodTable(runtime, () => ({}));
  const sse: SseHub = createSseHub({
    store: runtime.store, nc: runtime.transport.nc, logger: log,
    limits: {
      heartbeatMs: opts.heartbeatMs ?? 15_000, maxStreams: opts.maxStreams ?? 1000,
      maxBufferedBytes: opts.maxStreamBufferedBytes ?? 4 * MiB, stallMs: opts.streamStallMs ?? 5000,
    },
  });
  const buckets = new Map<string, TokenBucket>();

  /** Validates params with the method's schema and runs the method's implementation. */
  const call = async <M extends 'sendMessage' | 'publishEvent' | 'interruptAgent' | 'completeWaitpoint'>(m: M, params: unknown): Promise<ResultOf<M>> => {
    const parsed = methods[m].params.safeParse(params);
    if (!parsed.success) throw invalidParams(parsed.error, methods[m].params);
    const impl = table[m] as (p: unknown, conn: RpcConnection) => Promise<ResultOf<M>>;
    return impl(parsed.data, NO_CONNECTION);
  };

  const rateLimited = (req: IncomingMessage): boolean => {
    const key = req.socket.remoteAddress ?? '?';
    let b = buckets.get(key);
    if (b) buckets.delete(key); // re-insert below: Map order is least recently seen first
    else {
      b = new TokenBucket(ratePerSec, burst);
      if (buckets.size >= MAX_BUCKETS) buckets.delete(buckets.keys().next().value!);
    }
    buckets.set(key, b);
    return !b.take();
  };

  /** CORS headers for an allowed browser origin (none for programs, which send no Origin). */
  const corsHeaders = (origin: string | undefined): Record<string, string> => (origin === undefined ? {} : {
    'Access-Control-Allow-Origin': origin, Vary: 'Origin', 'Access-Control-Expose-Headers': 'Retry-After',
  });

  const serve = async (route: Route, req: IncomingMessage, res: ServerResponse, url: URL, cors: Record<string, string>): Promise<void> => {
    if (route.name === 'malformed') throw new AgentryError('INVALID_ARGUMENT', route.message);
    if (route.name === 'unknown') throw new HttpError('NOT_FOUND', `no route ${req.method ?? ''} ${url.pathname.slice(0, 200)}`);
    const allow = ALLOW[route.name];
    if (req.method !== allow) throw new HttpError('METHOD_NOT_ALLOWED', `${url.pathname.slice(0, 200)} accepts ${allow} only`, { Allow: allow });
    // A waitpoint's id is its own credential (128 random bits, single use, expiring): no token.
    if (deps.token && route.name !== 'waitpoint' && !tokenMatches(deps.token, presentedToken(req, url)?.token)) {
      throw new HttpError('UNAUTHORIZED', 'missing or wrong token: send Authorization: Bearer <AGENTRY_TOKEN> (or ?token= for EventSource)', { 'WWW-Authenticate': 'Bearer' });
    }
    if (rateLimited(req)) {
      throw new AgentryError('RATE_LIMITED', `rate limit: at most ${ratePerSec} requests per second (bursts of ${burst}) per client address`, { retryable: true });
    }
    if (!runtime.transport.isConnected()) throw new AgentryError('NOT_READY', 'the NATS connection is down', { retryable: true });

    if (route.name === 'stream') {
      assertSessionId(route.agentId);
      const afterId = parseLastEventId(req.headers['last-event-id']?.toString() ?? url.searchParams.get('lastEventId') ?? undefined);
      try {
        await runtime.getAgent(route.agentId);
      } catch (e) {
        // A default agent type creates sessions on their first message: let a client listen first.
        if ((e as { code?: unknown }).code !== 'UNKNOWN_SESSION' || runtime.config.defaultAgentType === undefined) throw e;
      }
      await sse.open(res, route.agentId, afterId, cors);
      return;
    }
    const body = await readJsonBody(req, maxBodyBytes, maxDepth);
    if (route.name === 'messages') {
      const params = bodyObject(body, { agentId: route.agentId });
      const key = req.headers['idempotency-key'];
      if (typeof key === 'string' && params.msgId === undefined) params.msgId = key;
      // W3C trace context headers continue the caller's trace (a malformed one is ignored).
      const trace = traceCarrierOf(req.headers.traceparent?.toString(), req.headers.tracestate?.toString());
      if (trace.traceparent !== undefined && params.traceparent === undefined) Object.assign(params, trace);
      const tenant = req.headers['agentry-tenant'];
      if (typeof tenant === 'string' && params.tenant === undefined) params.tenant = tenant;
      sendJson(res, 202, await call('sendMessage', params), cors);
    } else if (route.name === 'waitpoint') {
      // The body is the value itself (an empty body is null).
      sendJson(res, 200, await call('completeWaitpoint', { id: route.id, value: body ?? null }), cors);
    } else if (route.name === 'events') {
      const params = bodyObject(body, { type: route.type });
      const key = req.headers['idempotency-key'];
      if (typeof key === 'string' && params.msgId === undefined) params.msgId = key;
      sendJson(res, 202, await call('publishEvent', params), cors);
    } else {
      sendJson(res, 200, await call('interruptAgent', bodyObject(body, { agentId: route.agentId })), cors);
    }
  };

  return {
    async handle(req, res, url) {
      const route = matchRoute(url.pathname);
      if (route === null) return false;
      // A page under these prefixes that is no route of ours is left to the rest of the server (the UI).
      if ((req.method === 'GET' || req.method === 'HEAD') && route.name === 'unknown') return false;
      const origin = req.headers.origin;
      let cors: Record<string, string> = {};
      try {
        if (origin !== undefined && !originAllowed(origin, deps.allowedOrigins())) {
          throw new HttpError('FORBIDDEN', 'origin not allowed (AGENTRY_ALLOWED_ORIGINS)');
        }
        cors = corsHeaders(origin);
        if (req.method === 'OPTIONS' && route.name !== 'unknown' && route.name !== 'malformed') {
          // CORS preflight of an allowed origin (a browser's JSON POST or EventSource with headers).
          res.writeHead(204, {
            ...cors, 'Access-Control-Allow-Methods': ALLOW[route.name], 'Access-Control-Max-Age': '600',
            'Access-Control-Allow-Headers': 'Authorization, Content-Type, Last-Event-ID, Idempotency-Key, Agentry-Tenant',
          });
          res.end();
          return true;
        }
        await serve(route, req, res, url, cors);
      } catch (e) {
        const answer = toHttpError(e, (requestId, err) => { log.error({ err, requestId, path: url.pathname.slice(0, 200) }, 'internal error in an HTTP route'); });
        if (res.headersSent) { res.destroy(); return true; }
        const close: Record<string, string> = answer.body.error.type === 'PAYLOAD_TOO_LARGE' ? { Connection: 'close' } : {};
        sendJson(res, answer.status, answer.body, { ...cors, ...answer.headers, ...close });
      }
      return true;
    },
    get streams() { return sse.size; },
    get slowStreamsClosed() { return sse.slowClosed; },
    close() { sse.close(); },
  };
}
