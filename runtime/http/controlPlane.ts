/**
 * Owns the control plane's HTTP server: `/rpc` (WebSocket JSON-RPC 2.0), `/healthz`, `/readyz`,
 * `/metrics`, `/openrpc.json` and the inspector UI at `/`. It decides who may connect (token,
 * Origin, Host), enforces the transport limits (frame size, heartbeats) and wires each accepted
 * WebSocket to an `RpcConnection`. The plain-HTTP routes for producers and event streams
 * (`/agents/:id/messages|stream|interrupt`, `/events/:type`) are handed to `ingress.ts`.
 *
 * Auth: when a token is configured, `/rpc`, `/metrics` and the UI need it as
 * `Authorization: Bearer <token>`, as `?token=<token>` (browsers cannot set WebSocket headers),
 * or as the HttpOnly cookie the UI sets after a `?token=` visit. Refusals happen at the HTTP
 * handshake (401/403), so an unauthenticated peer never holds a WebSocket. `/healthz`, `/readyz`
 * and `/openrpc.json` stay open for probes and tooling: they reveal no session data.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { createJSONRPCErrorResponse, JSONRPCServer } from 'json-rpc-2.0';
import { WebSocketServer } from 'ws';
import { AgentryError } from '../../actors/errors.js';
import { ALIAS_PREFIX, METHOD_NAMES, PROTOCOL_ERRORS } from '../../client/index.js';
import type { Logger } from '../logger.js';
import type { Runtime } from '../runtime.js';
import { TOKEN_COOKIE, assertTokenBeyondLoopback, defaultOrigins, hostAllowed, originAllowed, presentedToken, tokenMatches } from './auth.js';
import { createIngress, type IngressOptions } from './ingress.js';
import { createMethodTable, registerMethods } from './methods.js';
import { createMetrics } from './metrics.js';
import { buildOpenRpcDocument } from './openrpc.js';
import { RpcConnection, type ConnectionLimits } from './rpcConnection.js';
import { toRpcError } from './rpcErrors.js';
import { loadStaticFiles, lookupStatic, variantOf, type StaticFile } from './staticFiles.js';

export interface ControlPlaneOptions {
  /** Interface to bind; default the runtime's `host` (127.0.0.1). */
  readonly host?: string;
  /** Port; 0 picks a free one. Default the runtime's `port` (7070). */
  readonly port?: number;
  /** Bearer token; default the runtime's `token` (AGENTRY_TOKEN). Required when `host` is not loopback. */
  readonly token?: string;
  /** Browser origins allowed on /rpc; default the runtime's `allowedOrigins`, else this server's own origins. */
  readonly allowedOrigins?: readonly string[];
  /** Largest WebSocket frame; a bigger one closes the socket with 1009. Default 1 MiB. */
  readonly maxPayloadBytes?: number;
  readonly maxBatch?: number;
  /** Deepest JSON nesting of a param value; deeper is -32602 UNSTORABLE_INPUT. Default the runtime's `maxJsonDepth` (64). */
  readonly maxDepth?: number;
  /** Per-connection rate limit; default the runtime's `rpcRatePerSec` / `rpcBurst`. */
  readonly ratePerSec?: number;
  readonly burst?: number;
  /** Unread bytes after which a client is disconnected. Default 4 MiB. */
  readonly maxBufferedBytes?: number;
  /** Ping interval; a socket that has not answered the previous ping is closed. Default 30 s. */
  readonly heartbeatMs?: number;
  readonly maxSubscriptions?: number;
  /** Directory of the built inspector; default `<package>/inspector/dist`. */
  readonly staticDir?: string;
  /** How often store counts and JetStream backlog are re-read for /metrics. Default 5 s. */
  readonly metricsRefreshMs?: number;
  readonly logger?: Logger;
  /** Limits of the HTTP ingress routes (`/agents/:id/messages|stream|interrupt`, `/events/:type`). */
  readonly ingress?: IngressOptions;
}

/** A running control plane. */
export interface ControlPlane {
  /** Base URL, e.g. `http://127.0.0.1:7070` (the UI). */
  readonly url: string;
  /** The WebSocket JSON-RPC endpoint, e.g. `ws://127.0.0.1:7070/rpc`. */
  readonly rpcUrl: string;
  readonly port: number;
  /** Closes every connection and the server. */
  close(): Promise<void>;
}

const MiB = 1024 * 1024;

function hostForUrl(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

function refuseUpgrade(socket: Duplex, status: number, reason: string): void {
  const body = JSON.stringify({ error: reason });
  const text = status === 401 ? 'Unauthorized' : status === 403 ? 'Forbidden' : status === 404 ? 'Not Found' : 'Bad Request';
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  socket.destroy();
}

function sendJson(res: ServerResponse, status: number, value: unknown, head = false): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(head ? undefined : body);
}

/** Most bytes a login form may send (a token is far shorter): more is refused, not buffered. */
const LOGIN_BODY_MAX = 4096;

/**
 * The sign-in page a browser gets instead of a bare 401 when it opens the UI without a token:
 * a form that posts the token to `/login`, which answers with the HttpOnly cookie the UI then
 * carries on every request (a reload keeps it). No script: the page's CSP allows none inline.
 */
function loginPage(error: string | null): string {
  const msg = error ? `<p class="err">${error}</p>` : '';
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Agentry — sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:15px system-ui,sans-serif;display:grid;place-items:center;min-height:90vh;margin:0;background:#f6f7f9;color:#1d2330}
form{background:#fff;padding:28px 32px;border-radius:10px;box-shadow:0 2px 12px #0002;width:min(360px,90vw)}
h1{font-size:18px;margin:0 0 14px}label{display:block;margin:0 0 6px}input{width:100%;box-sizing:border-box;padding:8px;font:inherit}
button{margin-top:14px;padding:8px 16px;font:inherit}.err{color:#b3261e}.hint{color:#5b6474;font-size:13px}</style></head>
<body><form method="post" action="/login"><h1>Agentry inspector</h1>${msg}
<label for="token">API token (<code>AGENTRY_TOKEN</code>)</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Sign in</button>
<p class="hint">Kept as an HttpOnly cookie for this browser session.</p></form></body></html>`;
}

function sendHtml(res: ServerResponse, status: number, html: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, {
    'Content-Type': 'text/html; charset=utf-8', 'Content-Length': Buffer.byteLength(html), 'Cache-Control': 'no-store',
    'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    // same-origin, not no-referrer: under no-referrer a browser sends `Origin: null` with the form's
    // POST, which the sign-in's origin check refuses (the form never worked in a real browser).
    'Referrer-Policy': 'same-origin', ...extra,
  });
  res.end(html);
}

/** A browser navigation (it asks for HTML), not an API client or a script fetch. */
function wantsHtml(req: IncomingMessage): boolean {
  return /\btext\/html\b/.test(req.headers.accept ?? '');
}

/**
 * The urlencoded form body of a sign-in post, or null when it is larger than LOGIN_BODY_MAX (the
 * rest is read and dropped, so the answer still reaches the client; the server's request timeout
 * bounds a body that never ends).
 */
function readForm(req: IncomingMessage): Promise<URLSearchParams | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= LOGIN_BODY_MAX) chunks.push(c);
    });
    req.on('end', () => { resolve(size > LOGIN_BODY_MAX ? null : new URLSearchParams(Buffer.concat(chunks).toString('utf8'))); });
    req.on('error', reject);
  });
}

const tokenCookie = (value: string, maxAge?: number): string =>
  `${TOKEN_COOKIE}=${encodeURIComponent(value)}; HttpOnly; SameSite=Strict; Path=/${maxAge !== undefined ? `; Max-Age=${maxAge}` : ''}`;

function sendText(res: ServerResponse, status: number, text: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text), ...extra });
  res.end(text);
}

/** Method name as a metric label: canonical names only, so a client cannot grow the label set. */
function methodLabel(method: string): string {
  const name = method.startsWith(ALIAS_PREFIX) ? method.slice(ALIAS_PREFIX.length) : method;
  return (METHOD_NAMES as readonly string[]).includes(name) ? name : '_unknown';
}

/**
 * Starts the control plane for `runtime` and resolves once it listens. Refuses to start
 * (CONFIG_INVALID) on a non-loopback host without a token.
 *
 * @example
 * const cp = await startControlPlane(runtime, { port: 0 });
 * console.log(`API at ${cp.rpcUrl}`);
 * await cp.close();
 */
export async function startControlPlane(runtime: Runtime, opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const host = opts.host ?? runtime.config.host;
  const token = opts.token ?? runtime.config.token;
  assertTokenBeyondLoopback(host, token);
  const log = (opts.logger ?? runtime.logger).child({ component: 'control-plane' });
  const limits: ConnectionLimits = {
    maxBatch: opts.maxBatch ?? 100,
    maxDepth: opts.maxDepth ?? runtime.config.maxJsonDepth,
    ratePerSec: opts.ratePerSec ?? runtime.config.rpcRatePerSec,
    burst: opts.burst ?? runtime.config.rpcBurst,
    maxBufferedBytes: opts.maxBufferedBytes ?? 4 * MiB,
    maxSubscriptions: opts.maxSubscriptions ?? 100,
  };
  const metrics = createMetrics(runtime, opts.metricsRefreshMs ?? 5000);
  const files: ReadonlyMap<string, StaticFile> = loadStaticFiles(opts.staticDir);
  const openRpcDoc = buildOpenRpcDocument();
  const openRpcJson = JSON.stringify(openRpcDoc);

  const rpc = new JSONRPCServer<RpcConnection>({ errorListener: () => undefined });
  rpc.handleMethodNotFound = (request) => Promise.resolve(request.id === undefined ? null : createJSONRPCErrorResponse(
    request.id, PROTOCOL_ERRORS.METHOD_NOT_FOUND, `Method not found: ${request.method.slice(0, 100)}`, { type: 'METHOD_NOT_FOUND', retryable: false },
  ));
  rpc.applyMiddleware(async (next, request, conn) => {
    const started = performance.now();
    const label = methodLabel(request.method);
    try {
      const res = await next(request, conn);
      const dataType = (res?.error?.data as { type?: unknown } | undefined)?.type;
      const errType = res?.error ? (typeof dataType === 'string' ? dataType : String(res.error.code)) : null;
      metrics.observeRpc(label, (performance.now() - started) / 1000, errType);
      return res;
    } catch (e) {
      const err = toRpcError(e, (requestId, cause) => {
        log.error({ err: cause, requestId, method: label, conn: conn.id }, 'internal error in a control API method');
      });
      metrics.observeRpc(label, (performance.now() - started) / 1000, String(err.data.type));
      return request.id === undefined ? null : createJSONRPCErrorResponse(request.id, err.code, err.message, err.data);
    }
  });
  registerMethods(rpc, createMethodTable(runtime, () => openRpcDoc));

  const wss = new WebSocketServer({ noServer: true, maxPayload: opts.maxPayloadBytes ?? MiB, perMessageDeflate: false });
  const connections = new Set<RpcConnection>();
  let allowedOrigins = new Set<string>();
  const authorized = (req: IncomingMessage, url: URL): boolean => !token || tokenMatches(token, presentedToken(req, url)?.token);
  const ingress = createIngress(runtime, { token, allowedOrigins: () => allowedOrigins, logger: log }, opts.ingress);

  const onRequest = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      sendText(res, 400, 'bad request: malformed URL\n');
      return;
    }
    if (!token && !hostAllowed(req.headers.host, allowedOrigins)) { sendText(res, 403, 'forbidden: unexpected Host header\n'); return; }
    if (await ingress.handle(req, res, url)) return;
    if (url.pathname === '/login' || url.pathname === '/logout') { await signIn(req, res, url); return; }
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) { sendText(res, 405, 'method not allowed\n', { Allow: 'GET, HEAD' }); return; }
    switch (url.pathname) {
      case '/healthz':
        sendJson(res, 200, { status: 'ok' }, head);
        return;
      case '/readyz': {
        const r = runtime.readiness();
        sendJson(res, r.ok ? 200 : 503, r, head);
        return;
      }
      case '/openrpc.json':
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(openRpcJson) });
        res.end(head ? undefined : openRpcJson);
        return;
      case '/metrics': {
        if (!authorized(req, url)) { sendText(res, 401, 'unauthorized: send Authorization: Bearer <AGENTRY_TOKEN>\n', { 'WWW-Authenticate': 'Bearer' }); return; }
        const text = await metrics.registry.metrics();
        res.writeHead(200, { 'Content-Type': metrics.registry.contentType, 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
        res.end(head ? undefined : text);
        return;
      }
      case '/rpc':
        sendText(res, 426, 'upgrade required: /rpc is a WebSocket endpoint\n', { Upgrade: 'websocket' });
        return;
      default:
        break;
    }
    const presented = token ? presentedToken(req, url) : undefined;
    if (token && !tokenMatches(token, presented?.token)) {
      if (wantsHtml(req)) { sendHtml(res, 401, loginPage(presented ? 'That token is not the one this server was started with.' : null)); return; }
      sendText(res, 401, 'unauthorized: open this page as /?token=<AGENTRY_TOKEN>\n', { 'WWW-Authenticate': 'Bearer' });
      return;
    }
    if (presented?.via === 'query') {
      // Keep the token out of the address bar and history: move it into a cookie and redirect.
      url.searchParams.delete('token');
      res.writeHead(303, {
        Location: url.pathname + (url.search || ''),
        'Set-Cookie': tokenCookie(presented.token),
      });
      res.end();
      return;
    }
    const file = lookupStatic(files, url.pathname);
    if (!file) { sendText(res, 404, 'not found\n'); return; }
    const sent = variantOf(file, req.headers['accept-encoding']);
    const vary = sent.varies ? { Vary: 'Accept-Encoding' } : {};
    if (req.headers['if-none-match'] === sent.etag) { res.writeHead(304, { ETag: sent.etag, ...vary }); res.end(); return; }
    res.writeHead(200, {
      'Content-Type': file.type, 'Content-Length': sent.body.length, ETag: sent.etag, 'Cache-Control': 'no-cache', ...vary,
      ...(sent.encoding ? { 'Content-Encoding': sent.encoding } : {}),
      'Content-Security-Policy': "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
      'Referrer-Policy': 'no-referrer',
    });
    res.end(head ? undefined : sent.body);
  };

  /**
   * `POST /login` (the sign-in form): the right token becomes the HttpOnly cookie and the browser
   * goes to the UI; a wrong one gets the form again. `GET /logout` clears the cookie. Refused
   * from a foreign Origin (a page elsewhere must not sign a visitor in or out).
   */
  async function signIn(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    if (!originAllowed(req.headers.origin, allowedOrigins)) { sendText(res, 403, 'forbidden: origin not allowed\n'); return; }
    if (url.pathname === '/logout') {
      res.writeHead(303, { Location: '/', 'Set-Cookie': tokenCookie('', 0), 'Cache-Control': 'no-store' });
      res.end();
      return;
    }
    if (req.method === 'GET' || req.method === 'HEAD') { sendHtml(res, token ? 200 : 404, token ? loginPage(null) : 'no token is set: nothing to sign in to'); return; }
    if (req.method !== 'POST') { sendText(res, 405, 'method not allowed\n', { Allow: 'GET, POST' }); return; }
    if (!token) { res.writeHead(303, { Location: '/' }); res.end(); return; }
    const form = await readForm(req);
    if (!form) { sendText(res, 413, 'payload too large\n'); return; }
    const given = form.get('token') ?? '';
    if (!tokenMatches(token, given)) { sendHtml(res, 401, loginPage('That token is not the one this server was started with.')); return; }
    res.writeHead(303, { Location: '/', 'Set-Cookie': tokenCookie(given), 'Cache-Control': 'no-store' });
    res.end();
  }

  const server = createServer((req, res) => {
    onRequest(req, res).catch((err: unknown) => {
      log.error({ err, path: req.url?.split('?')[0] }, 'http request failed');
      if (!res.headersSent) sendText(res, 500, 'internal error\n');
      else res.destroy();
    });
  });

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => undefined);
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      refuseUpgrade(socket, 400, 'malformed URL'); // e.g. `//[`: a throw here would escape the event handler
      return;
    }
    if (url.pathname !== '/rpc') { refuseUpgrade(socket, 404, 'WebSocket endpoint is /rpc'); return; }
    if (!token && !hostAllowed(req.headers.host, allowedOrigins)) { refuseUpgrade(socket, 403, 'unexpected Host header'); return; }
    if (!originAllowed(req.headers.origin, allowedOrigins)) {
      log.warn({ origin: req.headers.origin?.slice(0, 200) }, 'websocket refused: origin not allowed');
      refuseUpgrade(socket, 403, 'origin not allowed (AGENTRY_ALLOWED_ORIGINS)');
      return;
    }
    if (!authorized(req, url)) { refuseUpgrade(socket, 401, 'missing or wrong token'); return; }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const conn = new RpcConnection(ws, { rpc, metrics, logger: log, limits });
      connections.add(conn);
      metrics.connectionOpened();
      ws.on('close', (code) => {
        connections.delete(conn);
        if (code === 1009) log.info({ conn: conn.id }, 'websocket closed: frame above maxPayload');
      });
    });
  });
  server.on('clientError', (_err, socket) => { socket.destroy(); });

  const heartbeat = setInterval(() => { for (const c of connections) c.heartbeat(); }, opts.heartbeatMs ?? 30_000);
  heartbeat.unref();

  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'EADDRINUSE'
        ? new AgentryError('CONFIG_INVALID', `port ${opts.port ?? runtime.config.port} on ${host} is in use: choose another with PORT or --port`, { cause: err })
        : err);
    });
    server.listen(opts.port ?? runtime.config.port, host, () => {
      const addr = server.address();
      resolve(typeof addr === 'object' && addr ? addr.port : 0);
    });
  }).catch((e: unknown) => {
    clearInterval(heartbeat);
    metrics.close();
    throw e;
  });
  allowedOrigins = new Set((opts.allowedOrigins ?? runtime.config.allowedOrigins ?? defaultOrigins(host, port)).map((o) => o.toLowerCase().replace(/\/$/, '')));
  const base = `${hostForUrl(host)}:${port}`;
  log.info({ url: `http://${base}`, auth: token ? 'token' : 'none (loopback only)' }, 'control plane listening');

  let closing: Promise<void> | null = null;
  return {
    url: `http://${base}`,
    rpcUrl: `ws://${base}/rpc`,
    port,
    close() {
      closing ??= (async () => {
        clearInterval(heartbeat);
        metrics.close();
        ingress.close();
        for (const c of connections) c.ws.close(1001, 'server shutting down');
        await new Promise((r) => setTimeout(r, connections.size > 0 ? 100 : 0));
        for (const c of connections) c.ws.terminate();
        wss.close();
        server.closeAllConnections();
        await new Promise<void>((resolve) => { server.close(() => { resolve(); }); });
      })();
      return closing;
    },
  };
}
