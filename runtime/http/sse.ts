/**
 * Owns the server-sent event streams of `GET /agents/:agentId/stream`: a session's replies,
 * streamed chunks and state changes, resumable with `Last-Event-ID`.
 *
 * Durable events (`state`, `reply`) come from the session log (`Store.readLog`), never from
 * the NATS message itself, and carry the log id as their SSE `id`: a stream sends each entry
 * once, in id order, and a client that reconnects with the last id it saw gets every later
 * entry, exactly once (as long as retention, 24 h / 1000 per session, has not removed it: then
 * a `truncated` event says so first). NATS only says *when* to read: the session's
 * `agentry.out.<id>` replies (published after their commit) and `agentry.state.<id>` notices
 * (published when the actor moves, just before the commit that records it, so the stream
 * re-reads with a short backoff until the entry shows up). A heartbeat every 15 s also re-reads,
 * which bounds the delay of anything a lost notice would have announced.
 *
 * Chunks (`ctx.stream`) are live only: they are not in the log, their id is
 * `<last log id>-c<n>` (so a reconnect resumes after that log entry), and a run's final reply
 * is the durable record of what it produced.
 *
 * Clients that do not read: a stream holds a slot (`maxStreams`) and memory, so one whose
 * client stops reading is closed — at once when its unsent bytes pass `maxBufferedBytes`, and
 * after `stallMs` when what is queued for it has not drained in that time (the replay waits for
 * each drain, so a stalled client would otherwise sit there forever with a small buffer). The
 * client resumes later with `Last-Event-ID`; chunks sent meanwhile are lost, as for any reconnect.
 */
import type { ServerResponse } from 'node:http';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { AgentryError } from '../../actors/errors.js';
import type { SessionLogEntry, Store } from '../../persistence/types.js';
import type { Logger } from '../logger.js';
import { H, OUT_SUBJECT, STATE_SUBJECT } from '../transport.js';

/** Limits of the SSE endpoint. */
export interface SseLimits {
  /** Comment line sent this often (and the log re-read), so proxies keep the connection. Default 15 s. */
  readonly heartbeatMs: number;
  /** Streams open at once on this node; more are refused with RATE_LIMITED (429). */
  readonly maxStreams: number;
  /** Unsent bytes after which a stream that is not read is closed at once (its client resumes later). */
  readonly maxBufferedBytes: number;
  /** A stream whose queued bytes have not drained for this long is closed (its client stopped reading). */
  readonly stallMs: number;
}

/** What a stream needs from the runtime. */
export interface SseDeps {
  readonly store: Pick<Store, 'readLog' | 'lastLogId' | 'logPrunedThrough'>;
  readonly nc: NatsConnection;
  readonly logger: Logger;
  readonly limits: SseLimits;
}

/** The open streams of one control plane. */
export interface SseHub {
  /** Streams open now. */
  readonly size: number;
  /** Streams closed so far because their client did not read (buffer cap or stall). */
  readonly slowClosed: number;
  /**
   * Answers `res` with a stream of `sessionId`'s events after log id `afterId` (undefined: only
   * what is committed from now on). Rejects, before anything is written, when the cap is
   * reached or the store cannot be read; the caller answers with the error.
   */
  open(res: ServerResponse, sessionId: string, afterId: number | undefined, headers: Readonly<Record<string, string>>): Promise<void>;
  /** Ends every stream (server shutdown). */
  close(): void;
}

/** Entries read per query while catching up. */
const READ_BATCH = 200;
/** Re-reads after a state notice until its entry is committed (ms after the previous try). */
const RETRY_DELAYS = [20, 50, 100, 250, 500, 1000, 2000];
/** Chunks held while the first replay runs; the oldest go beyond this. */
const MAX_HELD_CHUNKS = 1000;
/** How long browsers wait before reconnecting (`retry:` field). */
const RECONNECT_MS = 2000;

/**
 * Parses a `Last-Event-ID` (header or `?lastEventId=`): a log id (`42`) or a chunk id
 * (`42-c3`), both meaning "resume after entry 42". Undefined when absent; INVALID_ARGUMENT for
 * anything this endpoint never sent.
 */
export function parseLastEventId(raw: string | undefined): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  const m = /^(\d{1,15})(?:-c\d{1,15})?$/.exec(raw.trim());
  if (!m) throw new AgentryError('INVALID_ARGUMENT', 'Last-Event-ID must be an id this stream sent, e.g. 42 or 42-c3 (0 replays everything retained)');
  return Number(m[1]);
}

/** One client's stream: a long-lived handle, closed when the client goes or the server stops. */
class SessionStream {
  private lastId = 0;
  private chunkN = 0;
  private live = false;
  private pumping = false;
  private dirty = false;
  private readonly held: { retracted?: boolean }[] = [];
  /** `at` of the newest state notice whose log entry has not been sent yet. */
  private expectAt: number | null = null;
  private retry = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private storeFailing = false;
  private closed = false;
  private readonly subs: Subscription[] = [];
  /** Armed while queued bytes wait for a drain; closes the stream if none comes within `stallMs`. */
  private stallTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly deps: SseDeps, private readonly res: ServerResponse, readonly sessionId: string,
    private readonly onClosed: (s: SessionStream) => void,
    private readonly onSlow: () => void,
  ) {
    // Subscribed before the first read, so nothing committed in between goes unannounced.
    const { nc } = deps;
    this.subs.push(nc.subscribe(STATE_SUBJECT(sessionId), { callback: (err, m) => { if (!err) this.onState(m); } }));
    this.subs.push(nc.subscribe(OUT_SUBJECT(sessionId), { callback: (err, m) => { if (!err) this.onOutput(m); } }));
    res.on('close', () => { this.close(); });
    res.on('drain', () => { clearTimeout(this.stallTimer); this.stallTimer = undefined; });
  }

  /** Sends the headers and starts: replay after `afterId`, then live. */
  start(afterId: number, prunedThrough: number, headers: Readonly<Record<string, string>>): void {
    this.lastId = afterId;
    this.res.socket?.setNoDelay(true);
    this.res.writeHead(200, {
      ...headers,
      'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', Connection: 'keep-alive',
      'X-Accel-Buffering': 'no', // nginx: do not buffer the stream
    });
    // Session ids hold no whitespace (validated), so the comment line cannot be broken by one.
    this.write(`retry: ${RECONNECT_MS}\n: stream of ${this.sessionId} after ${afterId}\n\n`);
    if (prunedThrough > afterId) {
      // Retention removed entries this client has not seen: say so before replaying the rest.
      this.write(`event: truncated\ndata: ${JSON.stringify({ agentId: this.sessionId, after: afterId, prunedThrough })}\n\n`);
    }
    this.heartbeat = setInterval(() => {
      this.writeLive(': keep-alive\n\n');
      void this.pump();
    }, this.deps.limits.heartbeatMs);
    this.heartbeat.unref();
    void this.pump();
  }

  /**
   * Ends the stream: `end` finishes the response, `destroy` drops the connection at once (a
   * client that does not read), `detach` leaves the response to the caller (to answer an error).
   */
  close(how: 'end' | 'destroy' | 'detach' = 'end'): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.retryTimer);
    clearTimeout(this.stallTimer);
    for (const s of this.subs) s.unsubscribe();
    this.held.length = 0;
    if (how === 'destroy') this.res.destroy();
    else if (how === 'end' && !this.res.writableEnded) this.res.end();
    this.onClosed(this);
  }

  private onState(m: Msg): void {
    let at = 0;
    try { at = Number((m.json<{ at?: unknown }>()).at) || 0; } catch { /* a notice we cannot read still means "look" */ }
    this.expectAt = Math.max(this.expectAt ?? 0, at);
    this.retry = 0;
    void this.pump();
  }

  private onOutput(m: Msg): void {
    const kind = m.headers?.get(H.kind);
    if (kind !== 'chunk' && kind !== 'retracted') { void this.pump(); return; } // a committed reply: read the log
    let body: unknown;
    try { body = m.json(); } catch { body = m.string(); }
    const run = Number(m.headers?.get(H.run));
    // A `retracted` notice travels the chunks' way (live, in order with them): drop run `run`'s chunks.
    const data = { agentId: this.sessionId, run: Number.isFinite(run) ? run : null, body, ...(kind === 'retracted' ? { retracted: true } : {}) };
    if (!this.live) {
      this.held.push(data);
      if (this.held.length > MAX_HELD_CHUNKS) this.held.shift();
      return;
    }
    this.sendChunk(data);
  }

  private sendChunk(data: { retracted?: boolean }): void {
    this.chunkN++;
    const { retracted, ...rest } = data;
    this.writeLive(`id: ${this.lastId}-c${this.chunkN}\nevent: ${retracted ? 'retracted' : 'chunk'}\ndata: ${JSON.stringify(rest)}\n\n`);
  }

  /** Reads the log after the last sent id until it is exhausted; concurrent triggers coalesce into one more pass. */
  private async pump(): Promise<void> {
    if (this.closed) return;
    if (this.pumping) { this.dirty = true; return; }
    this.pumping = true;
    try {
      do {
        this.dirty = false;
        for (;;) {
          const rows = await this.deps.store.readLog(this.sessionId, this.lastId, READ_BATCH);
          for (const e of rows) {
            if (this.closed) return;
            await this.sendDurable(e);
          }
          if (rows.length < READ_BATCH) break;
        }
      } while (this.dirty && !this.closed);
      if (this.storeFailing) this.deps.logger.info({ sessionId: this.sessionId }, 'event stream reads the session log again');
      this.storeFailing = false;
      if (!this.live && !this.closed) {
        this.live = true;
        for (const c of this.held.splice(0)) this.sendChunk(c);
      }
    } catch (err) {
      // The store is down: the next notice or heartbeat tries again; nothing is skipped meanwhile.
      if (!this.storeFailing) this.deps.logger.warn({ err, sessionId: this.sessionId }, 'event stream cannot read the session log; retrying');
      this.storeFailing = true;
    } finally {
      this.pumping = false;
    }
    this.awaitExpected();
  }

  private async sendDurable(e: SessionLogEntry): Promise<void> {
    this.lastId = e.id;
    this.chunkN = 0;
    if (e.kind === 'state' && this.expectAt !== null && Number((e.data as { at?: unknown }).at) >= this.expectAt) this.expectAt = null;
    const text = `id: ${e.id}\nevent: ${e.kind}\ndata: ${JSON.stringify(e.data)}\n\n`;
    if (this.writeLive(text)) return;
    if (this.closed) return;
    // Catching up can be large: wait for the client to read instead of buffering it all (the
    // stall timer armed by the write ends the wait, by closing, if it never reads).
    await new Promise<void>((resolve) => {
      const done = (): void => { this.res.off('drain', done); this.res.off('close', done); resolve(); };
      this.res.on('drain', done);
      this.res.on('close', done);
    });
  }

  /** A state notice is ahead of the log: read again shortly, with backoff, then leave it to the heartbeat. */
  private awaitExpected(): void {
    if (this.closed || this.expectAt === null || this.retryTimer !== undefined) return;
    const delay = RETRY_DELAYS[this.retry++];
    if (delay === undefined) { this.expectAt = null; return; }
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.pump();
    }, delay);
    this.retryTimer.unref();
  }

  /**
   * Writes unless the client has left more than the cap unread (then the stream is closed).
   * True when the text went below the socket's high-water mark, false when it is queued (or the
   * stream closed): the caller may wait for 'drain'.
   */
  private writeLive(text: string): boolean {
    if (this.closed) return false;
    if (this.res.writableLength > this.deps.limits.maxBufferedBytes) {
      this.closeSlow(`${this.res.writableLength} bytes unsent (cap ${this.deps.limits.maxBufferedBytes})`);
      return false;
    }
    return this.write(text);
  }

  /** `res.write`, arming the stall timer when the text had to be queued. */
  private write(text: string): boolean {
    const flushed = this.res.write(text);
    if (!flushed && this.stallTimer === undefined && !this.closed) {
      this.stallTimer = setTimeout(() => {
        this.stallTimer = undefined;
        if (this.res.writableNeedDrain) this.closeSlow(`nothing read for ${this.deps.limits.stallMs} ms (${this.res.writableLength} bytes unsent)`);
      }, this.deps.limits.stallMs);
      this.stallTimer.unref();
    }
    return flushed;
  }

  private closeSlow(why: string): void {
    if (this.closed) return;
    this.deps.logger.warn({ sessionId: this.sessionId, why }, 'closing an event stream its client does not read');
    this.onSlow();
    this.close('destroy');
  }
}

/** Creates the hub that opens and tracks the SSE streams of one control plane. */
export function createSseHub(deps: SseDeps): SseHub {
  const streams = new Set<SessionStream>();
  let slowClosed = 0;
  return {
    get size() { return streams.size; },
    get slowClosed() { return slowClosed; },
    async open(res, sessionId, afterId, headers) {
      if (streams.size >= deps.limits.maxStreams) {
        throw new AgentryError('RATE_LIMITED', `too many open event streams on this node (at most ${deps.limits.maxStreams}); retry later`, { retryable: true });
      }
      const s = new SessionStream(deps, res, sessionId, (x) => { streams.delete(x); }, () => { slowClosed++; });
      streams.add(s);
      let start: number;
      let pruned = 0;
      try {
        if (afterId === undefined) start = await deps.store.lastLogId(sessionId);
        else {
          start = afterId;
          pruned = await deps.store.logPrunedThrough(sessionId);
        }
      } catch (e) {
        s.close('detach');
        throw e;
      }
      if (res.destroyed) { s.close('detach'); return; } // the client left while we looked
      s.start(start, pruned, headers);
    },
    close() {
      for (const s of [...streams]) s.close();
    },
  };
}
