/**
 * Owns one WebSocket connection to an Agentry control plane: JSON-RPC calls with typed params
 * and results, subscriptions with gap detection, and reconnection with backoff. It uses only
 * the standard WebSocket API (no Node imports), so it runs in browsers as is; in Node 20, which
 * has no global WebSocket, pass the `ws` package's constructor.
 *
 * @example
 * import WebSocket from 'ws';
 * import { createClient } from 'agentry-runtime/client';
 * const api = createClient('ws://127.0.0.1:7070/rpc', { token: process.env.AGENTRY_TOKEN, WebSocket });
 * await api.createAgent({ agentId: 'demo', type: 'echo' });
 * const sub = await api.subscribe({ agentId: 'demo', kinds: ['output'] }, (n) => console.log(n.data));
 * await api.sendMessage({ agentId: 'demo', message: 'hello' });
 */
import { ConnectionError, RpcError } from './errors.js';
import type { MethodName, Notification, ParamsOf, ResultOf } from './protocol.js';

/** The subset of the standard WebSocket API the client uses (browsers' and `ws`'s both have it). */
interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: { message?: string } | undefined) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
type WebSocketCtor = new (url: string, protocols?: string | string[], options?: { headers?: Record<string, string> }) => WebSocketLike;

const OPEN = 1;

export interface ClientOptions {
  /** Bearer token (the server's AGENTRY_TOKEN). */
  readonly token?: string;
  /** A WebSocket constructor with the standard API, e.g. `ws`'s default export; default: `globalThis.WebSocket`. */
  readonly WebSocket?: new (...args: never[]) => unknown;
  /**
   * How the token travels: `header` (`Authorization: Bearer`, needs a constructor that accepts
   * headers, like `ws`) or `query` (`?token=`, the only way browsers can). Default: `header` when
   * a `WebSocket` constructor is passed, else `query`.
   */
  readonly tokenIn?: 'header' | 'query';
  /** Reconnect (with backoff) and re-subscribe after a lost connection. Default true. */
  readonly reconnect?: boolean;
  /** A call without an answer after this long fails with ConnectionError TIMEOUT. Default 30 s. */
  readonly requestTimeoutMs?: number;
  /** Opening the connection fails after this long. Default 10 s. */
  readonly connectTimeoutMs?: number;
  /** Told when the connection opens, is lost (and being re-established) or is closed for good. */
  readonly onConnectionChange?: (state: 'open' | 'reconnecting' | 'closed') => void;
}

/**
 * A live subscription, as `AgentryClient.subscribe` resolves it (the method's raw result is
 * `{ subscriptionId }`): `id` is the current `subscriptionId`, and changes when the client
 * re-subscribes after a reconnect; `unsubscribe()` ends the current one.
 */
export interface Subscription {
  readonly id: string;
  unsubscribe(): Promise<void>;
}

/** A detected hole in a subscription's notifications: some were lost (`lost`) or the connection was re-established (`reconnected`). */
export interface Gap {
  readonly reason: 'lost' | 'reconnected';
  /** The seq that should have come next. */
  readonly expected: number;
  /** The seq that came (0 for `reconnected`: counting restarts at 1 on the new subscription). */
  readonly received: number;
}

export interface SubscribeOptions {
  readonly onGap?: (gap: Gap) => void;
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

interface SubState {
  id: string;
  readonly params: ParamsOf<'subscribe'>;
  readonly onNotification: (n: Notification) => void;
  readonly onGap: ((g: Gap) => void) | undefined;
  nextSeq: number;
  active: boolean;
}

/** A typed client of the Agentry control API; create with `createClient`. */
export class AgentryClient {
  private ws: WebSocketLike | null = null;
  private opening: Promise<void> | null = null;
  private closed = false;
  private nextId = 1;
  private attempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly pending = new Map<number, Pending>();
  private readonly subs = new Map<string, SubState>();
  /** Notifications that raced ahead of their subscribe response (bounded). */
  private readonly early: Notification[] = [];
  private readonly Ctor: WebSocketCtor;
  private readonly useHeader: boolean;

  constructor(readonly url: string, private readonly opts: ClientOptions = {}) {
    const ctor = (opts.WebSocket ?? (globalThis as { WebSocket?: unknown }).WebSocket) as WebSocketCtor | undefined;
    if (!ctor) throw new TypeError('no WebSocket implementation: pass one as the WebSocket option (in Node 20: the `ws` package)');
    this.Ctor = ctor;
    this.useHeader = (opts.tokenIn ?? (opts.WebSocket ? 'header' : 'query')) === 'header';
  }

  /** Opens the connection now (calls open it lazily anyway); rejects with ConnectionError when the server cannot be reached or refuses. */
  connect(): Promise<void> {
    return this.ensureOpen();
  }

  /** Calls any method by name; the typed methods below are shorthands for this. */
  async call<M extends MethodName>(method: M, params: ParamsOf<M>): Promise<ResultOf<M>> {
    await this.ensureOpen();
    return this.request(method, params) as Promise<ResultOf<M>>;
  }

  /** Creates a session of a registered agent type. */
  createAgent(p: ParamsOf<'createAgent'>): Promise<ResultOf<'createAgent'>> { return this.call('createAgent', p); }
  /** Returns a session's current view. */
  getAgent(p: ParamsOf<'getAgent'>): Promise<ResultOf<'getAgent'>> { return this.call('getAgent', p); }
  /** Every live node of the cluster, from whichever node answers. */
  listNodes(): Promise<ResultOf<'listNodes'>> { return this.call('listNodes', {}); }
  /** Every partition's owner and fencing epoch, or free. */
  getPartitions(): Promise<ResultOf<'getPartitions'>> { return this.call('getPartitions', {}); }
  /** Lists sessions (one page; pass `next` as `after` for the following one). */
  listAgents(p: ParamsOf<'listAgents'> = {}): Promise<ResultOf<'listAgents'>> { return this.call('listAgents', p); }
  /** Publishes a message to a session's inbox. */
  sendMessage(p: ParamsOf<'sendMessage'>): Promise<ResultOf<'sendMessage'>> { return this.call('sendMessage', p); }
  /** Sends mail to a session. */
  sendMail(p: ParamsOf<'sendMail'>): Promise<ResultOf<'sendMail'>> { return this.call('sendMail', p); }
  /** Puts a session to sleep. */
  sleepAgent(p: ParamsOf<'sleepAgent'>): Promise<ResultOf<'sleepAgent'>> { return this.call('sleepAgent', p); }
  /** Wakes a session. */
  wakeAgent(p: ParamsOf<'wakeAgent'>): Promise<ResultOf<'wakeAgent'>> { return this.call('wakeAgent', p); }
  /** Stops a session for good. */
  stopAgent(p: ParamsOf<'stopAgent'>): Promise<ResultOf<'stopAgent'>> { return this.call('stopAgent', p); }
  /** Aborts a session's running handler. */
  interruptAgent(p: ParamsOf<'interruptAgent'>): Promise<ResultOf<'interruptAgent'>> { return this.call('interruptAgent', p); }
  /** Schedules a cron task. */
  scheduleTask(p: ParamsOf<'scheduleTask'>): Promise<ResultOf<'scheduleTask'>> { return this.call('scheduleTask', p); }
  /** Cancels a cron task. */
  cancelTask(p: ParamsOf<'cancelTask'>): Promise<ResultOf<'cancelTask'>> { return this.call('cancelTask', p); }
  /** Lists cron tasks. */
  listTasks(p: ParamsOf<'listTasks'> = {}): Promise<ResultOf<'listTasks'>> { return this.call('listTasks', p); }
  /** Tenants with their sessions by state, in name order; page with `after`. */
  listTenants(p: ParamsOf<'listTenants'> = {}): Promise<ResultOf<'listTenants'>> { return this.call('listTenants', p); }
  /** Publishes an event on the bus. */
  publishEvent(p: ParamsOf<'publishEvent'>): Promise<ResultOf<'publishEvent'>> { return this.call('publishEvent', p); }
  /** Moves a sleeping session's wake time. */
  scheduleWake(p: ParamsOf<'scheduleWake'>): Promise<ResultOf<'scheduleWake'>> { return this.call('scheduleWake', p); }
  /** Removes a sleeping session's wake time. */
  cancelWake(p: ParamsOf<'cancelWake'>): Promise<ResultOf<'cancelWake'>> { return this.call('cancelWake', p); }
  /** When a session wakes next by time, or null. */
  getNextWakeTime(p: ParamsOf<'getNextWakeTime'>): Promise<ResultOf<'getNextWakeTime'>> { return this.call('getNextWakeTime', p); }
  /** The event history, oldest first. */
  listEvents(p: ParamsOf<'listEvents'> = {}): Promise<ResultOf<'listEvents'>> { return this.call('listEvents', p); }
  /** Returns a session's messages, newest first. */
  getHistory(p: ParamsOf<'getHistory'>): Promise<ResultOf<'getHistory'>> { return this.call('getHistory', p); }
  /** Returns a session's state transitions, oldest first. */
  getTransitions(p: ParamsOf<'getTransitions'>): Promise<ResultOf<'getTransitions'>> { return this.call('getTransitions', p); }
  /** Creates a new session from a recorded point of `agentId`; POINT_NOT_RECORDED when the flight recorder no longer holds it. */
  forkSession(p: ParamsOf<'forkSession'>): Promise<ResultOf<'forkSession'>> { return this.call('forkSession', p); }
  /** A session as it was right after one of its transitions (time travel; see the protocol's getSessionAt). */
  getSessionAt(p: ParamsOf<'getSessionAt'>): Promise<ResultOf<'getSessionAt'>> { return this.call('getSessionAt', p); }
  /** Replays a session's recorded history through the registered agent in a sandbox; reports the turns that differ. */
  replaySession(p: ParamsOf<'replaySession'>): Promise<ResultOf<'replaySession'>> { return this.call('replaySession', p); }
  /** Lists dead letters. */
  listDeadLetters(p: ParamsOf<'listDeadLetters'> = {}): Promise<ResultOf<'listDeadLetters'>> { return this.call('listDeadLetters', p); }
  /** Replays a dead letter into its session's inbox. */
  replayDeadLetter(p: ParamsOf<'replayDeadLetter'>): Promise<ResultOf<'replayDeadLetter'>> { return this.call('replayDeadLetter', p); }
  /** Replays up to 100 dead letters; one outcome per id (those replayed before are skipped unless `force`). */
  replayDeadLetters(p: ParamsOf<'replayDeadLetters'>): Promise<ResultOf<'replayDeadLetters'>> { return this.call('replayDeadLetters', p); }
  /** Deletes up to 100 dead letters; one outcome per id. */
  discardDeadLetters(p: ParamsOf<'discardDeadLetters'>): Promise<ResultOf<'discardDeadLetters'>> { return this.call('discardDeadLetters', p); }
  /** Moves a stuck inbox message (by stream sequence) to the dead letters, then out of the stream. */
  deadLetterInboxMessage(p: ParamsOf<'deadLetterInboxMessage'>): Promise<ResultOf<'deadLetterInboxMessage'>> { return this.call('deadLetterInboxMessage', p); }
  /** Completes a pending waitpoint with a value (same value twice: no-op success; another: WAITPOINT_CONFLICT). */
  /** Sets (null: removes) the budget limits of a session, tenant or agent type; resumes what they held. */
  setBudget(p: ParamsOf<'setBudget'>): Promise<ResultOf<'setBudget'>> { return this.call('setBudget', p); }
  /** The budget limits and usage of a session, tenant or agent type. */
  getBudget(p: ParamsOf<'getBudget'>): Promise<ResultOf<'getBudget'>> { return this.call('getBudget', p); }
  completeWaitpoint(p: ParamsOf<'completeWaitpoint'>): Promise<ResultOf<'completeWaitpoint'>> { return this.call('completeWaitpoint', p); }
  /** Cancels a pending waitpoint; its session resumes with status cancelled. */
  cancelWaitpoint(p: ParamsOf<'cancelWaitpoint'>): Promise<ResultOf<'cancelWaitpoint'>> { return this.call('cancelWaitpoint', p); }
  /** Lists waitpoints (default: pending), oldest first. */
  listWaitpoints(p: ParamsOf<'listWaitpoints'> = {}): Promise<ResultOf<'listWaitpoints'>> { return this.call('listWaitpoints', p); }
  /** Round trip to the server. */
  ping(): Promise<ResultOf<'ping'>> { return this.call('ping', {}); }
  /** The server's OpenRPC document. */
  discover(): Promise<ResultOf<'rpc.discover'>> { return this.call('rpc.discover', {}); }

  /**
   * Subscribes to state changes, outputs and/or events; `onNotification` gets each in order.
   * After a reconnect the client subscribes again by itself and reports a `reconnected` gap.
   */
  async subscribe(params: ParamsOf<'subscribe'>, onNotification: (n: Notification) => void, opts: SubscribeOptions = {}): Promise<Subscription> {
    await this.ensureOpen();
    const { subscriptionId } = await this.request('subscribe', params) as ResultOf<'subscribe'>;
    const st: SubState = { id: subscriptionId, params, onNotification, onGap: opts.onGap, nextSeq: 1, active: true };
    this.subs.set(subscriptionId, st);
    this.flushEarly();
    return {
      get id() { return st.id; },
      unsubscribe: async () => {
        if (!st.active) return;
        st.active = false;
        this.subs.delete(st.id);
        if (this.ws?.readyState === OPEN) await this.request('unsubscribe', { subscriptionId: st.id }).catch(() => undefined);
      },
    };
  }

  /** Closes the connection for good: pending calls fail with ConnectionError CLOSED. */
  close(): Promise<void> {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.failPending(new ConnectionError('CLOSED', 'client closed'));
    this.subs.clear();
    const ws = this.ws;
    this.ws = null;
    if (!ws || ws.readyState > OPEN) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, 1000);
      ws.onclose = () => { clearTimeout(t); resolve(); };
      ws.close(1000, 'client closed');
    });
  }

  // ---- internals ---------------------------------------------------------------------------

  private ensureOpen(): Promise<void> {
    if (this.closed) return Promise.reject(new ConnectionError('CLOSED', 'client closed'));
    if (this.ws?.readyState === OPEN) return Promise.resolve();
    this.opening ??= this.open().finally(() => { this.opening = null; });
    return this.opening;
  }

  private open(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let url = this.url;
      const headers: Record<string, string> = {};
      if (this.opts.token) {
        if (this.useHeader) headers.Authorization = `Bearer ${this.opts.token}`;
        else url += `${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(this.opts.token)}`;
      }
      let ws: WebSocketLike;
      try {
        ws = this.useHeader ? new this.Ctor(url, undefined, { headers }) : new this.Ctor(url);
      } catch (e) {
        reject(new ConnectionError('CONNECT_FAILED', `cannot connect to ${this.url}: ${(e as Error).message}`, { cause: e }));
        return;
      }
      let opened = false;
      let errorText = '';
      const timer = setTimeout(() => {
        if (opened) return;
        ws.close();
        reject(new ConnectionError('TIMEOUT', `no connection to ${this.url} within ${this.opts.connectTimeoutMs ?? 10_000} ms`));
      }, this.opts.connectTimeoutMs ?? 10_000);
      ws.onerror = (ev) => { errorText = ev?.message ?? errorText; };
      ws.onopen = () => {
        opened = true;
        clearTimeout(timer);
        if (this.closed) { ws.close(1000, 'client closed'); reject(new ConnectionError('CLOSED', 'client closed')); return; }
        this.ws = ws;
        this.attempt = 0;
        this.opts.onConnectionChange?.('open');
        resolve();
        this.resubscribe();
      };
      ws.onmessage = (ev) => { this.onFrame(typeof ev.data === 'string' ? ev.data : String(ev.data)); };
      ws.onclose = (ev) => {
        clearTimeout(timer);
        if (!opened) {
          const status = /server response: (\d{3})/.exec(errorText)?.[1];
          const code = status ? Number(status) : undefined;
          if (code === 401) reject(new ConnectionError('UNAUTHORIZED', `${this.url} refused the connection: missing or wrong token`, { status: code }));
          else if (code === 403) reject(new ConnectionError('FORBIDDEN', `${this.url} refused the connection (origin or host not allowed)`, { status: code }));
          else reject(new ConnectionError('CONNECT_FAILED', `cannot connect to ${this.url}${errorText ? `: ${errorText}` : ''}`, code ? { status: code } : {}));
          return;
        }
        if (this.ws === ws) this.ws = null;
        this.failPending(new ConnectionError('CONNECTION_LOST', `connection to ${this.url} lost (${ev.code}${ev.reason ? ` ${ev.reason}` : ''})`));
        if (!this.closed) this.scheduleReconnect();
      };
    });
  }

  /** Background reconnection, only while subscriptions need it; calls reconnect lazily. */
  private scheduleReconnect(): void {
    if (this.closed || this.opts.reconnect === false || this.subs.size === 0 || this.reconnectTimer) return;
    this.opts.onConnectionChange?.('reconnecting');
    const base = Math.min(10_000, 250 * 2 ** this.attempt++);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.ensureOpen().catch(() => { this.scheduleReconnect(); });
    }, base / 2 + Math.random() * base / 2);
  }

  /** After a reconnect every subscription belongs to the dead connection: subscribe again and report the gap. */
  private resubscribe(): void {
    for (const st of [...this.subs.values()]) {
      const old = st.id;
      this.request('subscribe', st.params).then((r) => {
        const { subscriptionId } = r as ResultOf<'subscribe'>;
        if (!st.active) { this.request('unsubscribe', { subscriptionId }).catch(() => undefined); return; }
        this.subs.delete(old);
        st.id = subscriptionId;
        this.subs.set(subscriptionId, st);
        const expected = st.nextSeq;
        st.nextSeq = 1;
        st.onGap?.({ reason: 'reconnected', expected, received: 0 });
        this.flushEarly();
      }, () => { /* the connection dropped again: the next open retries */ });
    }
  }

  private request(method: string, params: unknown): Promise<unknown> {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) return Promise.reject(new ConnectionError('CONNECTION_LOST', `not connected to ${this.url}`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timeoutMs = this.opts.requestTimeoutMs ?? 30_000;
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ConnectionError('TIMEOUT', `${method}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      try {
        ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
      } catch (e) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new ConnectionError('CONNECTION_LOST', `${method}: ${(e as Error).message}`, { cause: e }));
      }
    });
  }

  private onFrame(text: string): void {
    let msg: unknown;
    try { msg = JSON.parse(text); } catch { return; }
    for (const m of Array.isArray(msg) ? msg : [msg]) this.onMessage(m as Record<string, unknown>);
  }

  private onMessage(m: Record<string, unknown>): void {
    if (m === null || typeof m !== 'object') return;
    if (m.method === 'notify') { this.onNotify(m.params as Notification); return; }
    if (typeof m.id !== 'number') return;
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    clearTimeout(p.timer);
    const err = m.error as { code?: unknown; message?: unknown; data?: unknown } | undefined;
    if (err) p.reject(new RpcError(typeof err.code === 'number' ? err.code : 0, typeof err.message === 'string' ? err.message : 'error', err.data));
    else p.resolve(m.result);
  }

  private onNotify(n: Notification): void {
    if (!n || typeof n.subscriptionId !== 'string') return;
    const st = this.subs.get(n.subscriptionId);
    if (!st) {
      if (this.early.length < 1000) this.early.push(n);
      return;
    }
    if (n.seq !== st.nextSeq) st.onGap?.({ reason: 'lost', expected: st.nextSeq, received: n.seq });
    st.nextSeq = n.seq + 1;
    try { st.onNotification(n); } catch { /* a throwing callback must not break the connection */ }
  }

  private flushEarly(): void {
    if (this.early.length === 0) return;
    const list = this.early.splice(0);
    for (const n of list) if (this.subs.has(n.subscriptionId)) this.onNotify(n);
  }

  private failPending(err: Error): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(err);
      this.pending.delete(id);
    }
  }
}

/**
 * Creates a client of the control API at `url` (e.g. `ws://127.0.0.1:7070/rpc`). It connects on
 * the first call; `connect()` does it eagerly and reports refusal or unreachability.
 */
export function createClient(url: string, opts: ClientOptions = {}): AgentryClient {
  return new AgentryClient(url, opts);
}
