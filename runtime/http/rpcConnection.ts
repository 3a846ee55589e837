/**
 * Owns one WebSocket client of the control plane: reading frames in order (with TCP
 * backpressure when the client outpaces us), checking JSON-RPC envelopes, batch size, nesting
 * depth and the per-connection rate limit, handing valid requests to the JSON-RPC server,
 * sending answers and subscription notifications, and closing the socket when the client stops
 * reading (buffered bytes above the cap) or stops answering heartbeats.
 *
 * It is the door of /rpc: params that Postgres could not store (a NUL, a lone surrogate, a value
 * nested deeper than `maxDepth`) are refused here, per request and with its id, as invalid
 * params (-32602, `data.type` UNSTORABLE_INPUT), before the JSON-RPC server, a schema or a
 * method sees them. A frame nested deeper than that is refused before it is even parsed (with
 * the id read by a scan), since V8's JSON.parse is slow on deep text; nothing recurses over
 * client data, so a frame nested 500,000 levels deep costs a scan and one answer.
 *
 * Requests of one connection run one at a time, in the order they arrived, so two
 * `sendMessage` calls sent back to back are published in that order.
 */
import { randomUUID } from 'node:crypto';
import { createJSONRPCErrorResponse, type JSONRPCRequest, type JSONRPCResponse, type JSONRPCServer } from 'json-rpc-2.0';
import { WebSocket, type RawData } from 'ws';
import { AgentryError, codes } from '../../actors/errors.js';
import { PROTOCOL_ERRORS, type SubscriptionKind } from '../../client/index.js';
import type { Logger } from '../logger.js';
import type { ControlPlaneMetrics, DisconnectReason } from './metrics.js';
import { jsonNestingExceeds } from '../../persistence/index.js';
import { paramsStorableProblem, unstorableInput } from './rpcErrors.js';
import type { NatsSubscriptionSet } from './subscriptions.js';
import { TokenBucket } from './tokenBucket.js';

/** Limits of one connection. */
export interface ConnectionLimits {
  /** Most requests in one batch; a larger batch gets one -32600 error. */
  readonly maxBatch: number;
  /** Deepest JSON nesting of a param value (the runtime's `maxJsonDepth`); deeper is UNSTORABLE_INPUT. */
  readonly maxDepth: number;
  readonly ratePerSec: number;
  readonly burst: number;
  /** Bytes queued for a client that, when exceeded, get it disconnected. */
  readonly maxBufferedBytes: number;
  readonly maxSubscriptions: number;
}

export interface ConnectionDeps {
  readonly rpc: JSONRPCServer<RpcConnection>;
  readonly metrics: ControlPlaneMetrics;
  readonly logger: Logger;
  readonly limits: ConnectionLimits;
}

interface OpenSubscription {
  readonly id: string;
  nats: NatsSubscriptionSet | null;
  seq: number;
  /** Notifications held back until the subscribe answer has been sent. */
  held: unknown[] | null;
}

/** Frames queued beyond this pause reading from the socket until the queue drains. */
const QUEUE_HIGH = 32;
const QUEUE_LOW = 8;
/** Notifications held per subscription before its subscribe answer goes out. */
const MAX_HELD = 10_000;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * The `id` of a single-request frame, read without parsing the frame (to answer a frame too
 * deep to parse with the id its client waits for). Undefined when there is none or it is not a
 * valid id (a string of at most 256 characters, a number, null).
 */
export function scanTopLevelId(text: string): string | number | null | undefined {
  let depth = 0;
  let expectKey = false;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 34) {
      const start = i;
      for (i++; i < n; i++) {
        const d = text.charCodeAt(i);
        if (d === 92) i++;
        else if (d === 34) break;
      }
      if (depth !== 1 || !expectKey) continue;
      expectKey = false;
      if (text.slice(start, i + 1) !== '"id"') continue;
      const m = /^\s*:\s*("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|null)/.exec(text.slice(i + 1, i + 300));
      if (!m) return undefined;
      try {
        const v = JSON.parse(m[1]!) as string | number | null;
        return typeof v === 'string' && v.length > 256 ? undefined : v;
      } catch {
        return undefined;
      }
    }
    if (c === 123 || c === 91) {
      depth++;
      if (depth === 1) expectKey = c === 123;
    } else if (c === 125 || c === 93) {
      depth--;
    } else if (c === 44 && depth === 1) {
      expectKey = true;
    }
  }
  return undefined;
}

/** One client connection; created by the control plane for every accepted WebSocket. */
export class RpcConnection {
  readonly id = randomUUID();
  /** Set by the heartbeat: false until the next pong. */
  alive = true;
  private readonly bucket: TokenBucket;
  private readonly queue: RawData[] = [];
  private draining = false;
  private paused = false;
  private closed = false;
  private readonly subscriptions = new Map<string, OpenSubscription>();
  private readonly justOpened: OpenSubscription[] = [];

  constructor(readonly ws: WebSocket, private readonly deps: ConnectionDeps) {
    this.bucket = new TokenBucket(deps.limits.ratePerSec, deps.limits.burst);
    ws.on('message', (data) => { this.onFrame(data); });
    ws.on('pong', () => { this.alive = true; });
    ws.on('error', (err) => { deps.logger.debug({ err, conn: this.id }, 'websocket error'); });
    ws.on('close', () => { this.cleanup(); });
  }

  /** Number of open subscriptions (for limits and tests). */
  get subscriptionCount(): number { return this.subscriptions.size; }

  /** Closes the socket at once (no close handshake: the peer may not be reading). */
  kill(reason: DisconnectReason, detail: string): void {
    if (this.closed) return;
    this.deps.logger.warn({ conn: this.id, reason, detail }, 'closing websocket');
    this.closed = true;
    this.deps.metrics.connectionClosed(reason);
    this.ws.terminate();
    this.cleanup();
  }

  /** Heartbeat tick: reaps a socket that did not answer the previous ping, else pings it. */
  heartbeat(): void {
    if (!this.alive) { this.kill('heartbeat', 'no pong since the last ping'); return; }
    if (this.overBuffered()) { this.kill('slow_consumer', `${this.ws.bufferedAmount} bytes unread`); return; }
    this.alive = false;
    try { this.ws.ping(); } catch { /* closing */ }
  }

  // ---- subscriptions -----------------------------------------------------------------------

  /** Registers a subscription opened by `subscribe`; its notifications wait until the answer is sent. */
  addSubscription(open: (sink: (kind: SubscriptionKind, agentId: string | undefined, data: unknown) => void) => NatsSubscriptionSet): string {
    if (this.subscriptions.size >= this.deps.limits.maxSubscriptions) {
      throw new AgentryError('INVALID_ARGUMENT', `at most ${this.deps.limits.maxSubscriptions} subscriptions per connection`);
    }
    const sub: OpenSubscription = { id: randomUUID(), seq: 0, held: [], nats: null };
    sub.nats = open((kind, agentId, data) => { this.notify(sub, kind, agentId, data); });
    this.subscriptions.set(sub.id, sub);
    this.justOpened.push(sub);
    return sub.id;
  }

  /** Ends a subscription; false when this connection has none with that id. */
  removeSubscription(id: string): boolean {
    const sub = this.subscriptions.get(id);
    if (!sub) return false;
    this.subscriptions.delete(id);
    sub.nats?.close();
    return true;
  }

  private notify(sub: OpenSubscription, kind: SubscriptionKind, agentId: string | undefined, data: unknown): void {
    if (this.closed || !this.subscriptions.has(sub.id)) return;
    const n = { jsonrpc: '2.0', method: 'notify', params: { subscriptionId: sub.id, seq: ++sub.seq, kind, ...(agentId !== undefined ? { agentId } : {}), data } };
    if (sub.held) {
      if (sub.held.length < MAX_HELD) sub.held.push(n);
      return;
    }
    this.send(n);
  }

  private releaseHeld(): void {
    for (const sub of this.justOpened.splice(0)) {
      const held = sub.held ?? [];
      sub.held = null;
      if (!this.subscriptions.has(sub.id)) continue;
      for (const n of held) if (!this.send(n)) return;
    }
  }

  // ---- frames ------------------------------------------------------------------------------

  private onFrame(data: RawData): void {
    if (this.closed) return;
    this.queue.push(data);
    if (this.queue.length >= QUEUE_HIGH && !this.paused) { this.paused = true; this.ws.pause(); }
    if (!this.draining) void this.drain();
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.queue.length > 0 && !this.closed) {
        const frame = this.queue.shift()!;
        if (this.paused && this.queue.length <= QUEUE_LOW) { this.paused = false; this.ws.resume(); }
        try {
          await this.handleFrame(frame);
        } catch (err) {
          // Nothing in handleFrame should throw; if it does, answer like any internal fault.
          this.deps.logger.error({ err, conn: this.id }, 'frame handling failed');
          this.send(createJSONRPCErrorResponse(null, codes.INTERNAL, 'internal error', { type: 'INTERNAL', retryable: false }));
        }
      }
    } finally {
      this.draining = false;
    }
  }

  private protocolError(id: JSONRPCRequest['id'], code: number, message: string, type: string): JSONRPCResponse {
    this.deps.metrics.observeRpc('_protocol', 0, type);
    return createJSONRPCErrorResponse(id ?? null, code, message, { type, retryable: false });
  }

  private async handleFrame(frame: RawData): Promise<void> {
    const text = Buffer.isBuffer(frame) ? frame.toString('utf8') : Array.isArray(frame) ? Buffer.concat(frame).toString('utf8') : Buffer.from(frame).toString('utf8');
    const { maxBatch, maxDepth } = this.deps.limits;
    // Too deep to be storable params: refused before JSON.parse (which takes ~1 s on a 1 MiB
    // frame nested 500,000 levels deep). A request object and its params add two levels, a batch one more.
    const batch = text.trimStart().startsWith('[');
    const deepAt = jsonNestingExceeds(text, maxDepth + (batch ? 3 : 2));
    if (deepAt >= 0) {
      const why = `JSON nested deeper than ${maxDepth} levels (at character ${deepAt})`;
      if (batch) { this.send(this.protocolError(null, PROTOCOL_ERRORS.INVALID_REQUEST, `Invalid Request: ${why}`, 'INVALID_REQUEST')); return; }
      this.deps.metrics.observeRpc('_protocol', 0, 'UNSTORABLE_INPUT');
      const e = unstorableInput({ kind: 'too-deep', path: '$', message: why });
      this.send(createJSONRPCErrorResponse(scanTopLevelId(text) ?? null, e.code, e.message, e.data));
      return;
    }
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      this.send(this.protocolError(null, PROTOCOL_ERRORS.PARSE_ERROR, 'Parse error: the frame is not valid JSON', 'PARSE_ERROR'));
      return;
    }
    if (Array.isArray(msg)) {
      if (msg.length === 0) { this.send(this.protocolError(null, PROTOCOL_ERRORS.INVALID_REQUEST, 'Invalid Request: empty batch', 'INVALID_REQUEST')); return; }
      if (msg.length > maxBatch) {
        this.send(this.protocolError(null, PROTOCOL_ERRORS.INVALID_REQUEST, `Invalid Request: a batch of ${msg.length} requests exceeds the limit of ${maxBatch}`, 'BATCH_TOO_LARGE'));
        return;
      }
    }
    if (Array.isArray(msg)) {
      const out: JSONRPCResponse[] = [];
      for (const r of msg) {
        const res = await this.handleOne(r);
        if (res) out.push(res);
      }
      if (out.length > 0) this.send(out);
    } else {
      const res = await this.handleOne(msg);
      if (res) this.send(res);
    }
    this.releaseHeld();
  }

  private async handleOne(req: unknown): Promise<JSONRPCResponse | null> {
    if (!isPlainObject(req)) return this.protocolError(null, PROTOCOL_ERRORS.INVALID_REQUEST, 'Invalid Request: expected an object', 'INVALID_REQUEST');
    const id = req.id;
    const idOk = id === undefined || id === null || typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id));
    if (!idOk || (typeof id === 'string' && id.length > 256)) {
      return this.protocolError(null, PROTOCOL_ERRORS.INVALID_REQUEST, 'Invalid Request: id must be a string (at most 256 characters), a number or null', 'INVALID_REQUEST');
    }
    const rid: JSONRPCRequest['id'] | undefined = id;
    if (req.jsonrpc !== '2.0') return this.protocolError(rid, PROTOCOL_ERRORS.INVALID_REQUEST, 'Invalid Request: jsonrpc must be "2.0"', 'INVALID_REQUEST');
    if (typeof req.method !== 'string') return this.protocolError(rid, PROTOCOL_ERRORS.INVALID_REQUEST, 'Invalid Request: method must be a string', 'INVALID_REQUEST');
    if (req.params !== undefined && (req.params === null || typeof req.params !== 'object')) {
      return this.protocolError(rid, PROTOCOL_ERRORS.INVALID_REQUEST, 'Invalid Request: params must be an object or an array', 'INVALID_REQUEST');
    }
    if (!this.bucket.take()) {
      this.deps.metrics.rateLimited();
      if (rid === undefined) return null;
      this.deps.metrics.observeRpc('_protocol', 0, 'RATE_LIMITED');
      return createJSONRPCErrorResponse(rid, codes.RATE_LIMITED, `rate limit: at most ${this.deps.limits.ratePerSec} requests per second (bursts of ${this.deps.limits.burst})`, { type: 'RATE_LIMITED', retryable: true });
    }
    const unstorable = paramsStorableProblem(req.params, this.deps.limits.maxDepth);
    if (unstorable !== null) {
      this.deps.metrics.observeRpc('_protocol', 0, 'UNSTORABLE_INPUT');
      if (rid === undefined) return null;
      const e = unstorableInput(unstorable);
      return createJSONRPCErrorResponse(rid, e.code, e.message, e.data);
    }
    const request: JSONRPCRequest = { jsonrpc: '2.0', method: req.method, params: req.params, ...(rid !== undefined ? { id: rid } : {}) };
    return this.deps.rpc.receive(request, this);
  }

  // ---- sending -----------------------------------------------------------------------------

  private overBuffered(): boolean {
    return this.ws.bufferedAmount > this.deps.limits.maxBufferedBytes;
  }

  /**
   * Sends a JSON message; closes the connection instead when the client has left more than the
   * cap unread (a client that does not read must not grow our memory). False when not sent.
   */
  send(payload: unknown): boolean {
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) return false;
    if (this.overBuffered()) { this.kill('slow_consumer', `${this.ws.bufferedAmount} bytes unread`); return false; }
    let text: string;
    try {
      text = JSON.stringify(payload);
    } catch (err) {
      this.deps.logger.error({ err, conn: this.id }, 'could not serialize a response');
      text = JSON.stringify(createJSONRPCErrorResponse(null, codes.INTERNAL, 'internal error: unserializable result', { type: 'INTERNAL', retryable: false }));
    }
    this.ws.send(text);
    return true;
  }

  private cleanup(): void {
    if (!this.closed) {
      this.closed = true;
      this.deps.metrics.connectionClosed(null);
    }
    this.queue.length = 0;
    for (const sub of this.subscriptions.values()) sub.nats?.close();
    this.subscriptions.clear();
  }
}
