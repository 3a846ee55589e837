// Owns the chaos suite's producer: it publishes `{ i }` (i = 1, 2, …) to each load session's
// inbox through JetStream, in order per session (i+1 only after i was acked), at a bounded total
// rate, with `Nats-Msg-Id: <session>:<i>` so a publish retried after a fault is stored once.
// A publish that fails (NATS restarting, a timeout) is retried with the same id until acked or
// until stop(). It also carries the extra traffic the verifier checks: poison messages (NUL in
// a JSON string, a raw NUL byte, a lone surrogate, 10,000-deep JSON) slipped between two of a
// session's messages, and sleep commands `{ i, sleepUntil }` for `rec-sleep` sessions.
//
// Events: with `eventsPerSec`, it also publishes `{ i: k }` (k = 1, 2, …) as events of type
// `fanout.chaos` to the events stream (`Nats-Msg-Id: chaos-ev-<k>`, retried until acked) until
// close(); the `rec-event` sessions the scenario created record each one they handle.
//
// It connects straight to nats-server (never through a node's proxy) and records, per session,
// every message's stream sequence and ack time: the verifier's ground truth.
import { connect, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';

/** The poison payloads a producer can send that Postgres cannot store or that overflow a parser. */
export const POISON_KINDS = ['nul-json', 'nul-raw', 'lone-surrogate', 'deep-json'] as const;
export type PoisonKind = (typeof POISON_KINDS)[number];

/** The bytes of a poison message of this kind. */
export function poisonPayload(kind: PoisonKind): Uint8Array {
  switch (kind) {
    case 'nul-json': return Buffer.from('{"poison":"a\\u0000b"}'); // JSON escape: parses to a string with NUL
    case 'nul-raw': return Buffer.from([0x61, 0x00, 0x62]); // not JSON: delivered as text "a\0b"
    case 'lone-surrogate': return Buffer.from('{"poison":"\\ud800x"}'); // parses to a lone high surrogate
    case 'deep-json': return Buffer.from('['.repeat(10_000) + ']'.repeat(10_000));
  }
}

/** One acked publish of an ordered message. */
export interface Published {
  readonly i: number;
  readonly seq: number;
  /** When the first attempt started and when the ack came (ms since epoch). */
  readonly sentAt: number;
  readonly ackedAt: number;
  readonly attempts: number;
}

export interface PoisonSent { readonly sessionId: string; readonly kind: PoisonKind; readonly seq: number; readonly ackedAt: number; readonly afterI: number }

export interface TimerSet { readonly sessionId: string; readonly i: number; readonly until: number; readonly seq: number; readonly ackedAt: number }

export interface LoadOptions {
  /** nats-server URL (straight, not through a proxy); a comma-separated list for a cluster. */
  readonly url: string;
  /** Sessions that get `{ i }` for i = 1..messages (or until stop when `messages` is omitted). */
  readonly sessions: readonly string[];
  readonly messages?: number;
  /** Sleep-command sessions (`rec-sleep`): they get only what `sleep()` queues. */
  readonly sleepers?: readonly string[];
  /** Total publishes per second across all sessions. */
  readonly ratePerSec: number;
  /** Ack timeout of one publish attempt; default 5000 ms. */
  readonly publishTimeoutMs?: number;
  /** Events of type `fanout.chaos` published per second (0 or unset: none). */
  readonly eventsPerSec?: number;
  /** The `rec-event` sessions subscribed to them (for the verifier). */
  readonly eventSubscribers?: readonly string[];
}

/** One acked event: its number and its sequence in the events stream. */
export interface EventSent { readonly k: number; readonly seq: number; readonly ackedAt: number }

interface Item { readonly body: Uint8Array; readonly msgId: string; readonly onAck: (seq: number, sentAt: number, ackedAt: number, attempts: number) => void }

interface Lane {
  readonly id: string;
  readonly queue: Item[];
  next: number;
  lastI: number;
  closed: boolean;
  wake: (() => void) | null;
  readonly planned: number | undefined;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A running producer; see the module comment. */
export class Load {
  /** Acked ordered messages per session (load and sleeper sessions), in i order. */
  readonly published = new Map<string, Published[]>();
  readonly poison: PoisonSent[] = [];
  readonly timers: TimerSet[] = [];
  /** Acked events, in order. */
  readonly events: EventSent[] = [];
  /**
   * Every copy of an event the routers published to an inbox (a core subscription sees the
   * publishes the stream drops as duplicates too), by `<session> <i>`: what the verifier prints
   * when a subscriber handled an event twice.
   */
  readonly eventCopies = new Map<string, string[]>();
  /** Publish attempts that failed and were retried. */
  retries = 0;
  /** The rec-sleep sessions (their messages wait for timers: no measure of recovery). */
  readonly sleeperIds: ReadonlySet<string>;
  private readonly lanes = new Map<string, Lane>();
  private nc: NatsConnection | undefined;
  private js: JetStreamClient | undefined;
  private stopped = false;
  private nextSlot = 0;
  private workers: Promise<void>[] = [];
  private poisonN = 0;
  private eventsClosed = false;
  private eventsWake: (() => void) | null = null;

  constructor(private readonly o: LoadOptions) {
    for (const id of o.sessions) this.lanes.set(id, { id, queue: [], next: 1, lastI: 0, closed: false, wake: null, planned: o.messages });
    for (const id of o.sleepers ?? []) this.lanes.set(id, { id, queue: [], next: 1, lastI: 0, closed: false, wake: null, planned: 0 });
    for (const id of this.lanes.keys()) this.published.set(id, []);
    this.sleeperIds = new Set(o.sleepers ?? []);
  }

  /** Connects and starts publishing. */
  async start(): Promise<void> {
    this.nc = await connect({ servers: this.o.url.split(','), maxReconnectAttempts: -1, reconnectTimeWait: 200, name: 'chaos-load' });
    this.js = jetstream(this.nc, { timeout: this.o.publishTimeoutMs ?? 5000 });
    this.workers = [...this.lanes.values()].map((l) => this.run(l));
    if ((this.o.eventsPerSec ?? 0) > 0) {
      this.workers.push(this.runEvents(this.o.eventsPerSec!));
      const t0 = Date.now();
      this.nc.subscribe('agentry.part.>', {
        callback: (_err, m) => {
          if (m.headers?.get('Agentry-Event-Type') !== 'fanout.chaos') return;
          let i: unknown = null;
          try { i = (m.json<{ i?: unknown }>()).i; } catch { /* not JSON */ }
          const key = `${m.subject.split('.').pop()!} ${String(i)}`;
          const l = this.eventCopies.get(key) ?? [];
          l.push(`+${Date.now() - t0}ms ${m.headers.get('Nats-Msg-Id')} ${m.headers.get('Agentry-Event-Id')}`);
          this.eventCopies.set(key, l);
        },
      });
    }
  }

  /** The sessions subscribed to the load's events. */
  get eventSubscribers(): readonly string[] { return this.o.eventSubscribers ?? []; }

  /** Publishes `{ i: k }` events until close(), each retried with its msgId until acked. */
  private async runEvents(perSec: number): Promise<void> {
    for (let k = 1; !this.eventsClosed && !this.stopped; k++) {
      const sentAt = Date.now();
      for (let attempt = 1; !this.stopped; attempt++) {
        try {
          const ack = await this.js!.publish('agentry.events.fanout.chaos', JSON.stringify({ i: k }), { msgID: `chaos-ev-${k}` });
          this.events.push({ k, seq: ack.seq, ackedAt: Date.now() });
          break;
        } catch {
          this.retries++;
          await sleep(Math.min(1000, 100 * attempt));
        }
      }
      const wait = sentAt + 1000 / perSec - Date.now();
      if (wait > 0) await new Promise<void>((r) => { const t = setTimeout(r, wait); this.eventsWake = () => { clearTimeout(t); r(); }; });
      this.eventsWake = null;
    }
  }

  /** Resolves when every planned message (and everything queued) is acked; with no plan, after close(). */
  async finished(): Promise<void> { await Promise.all(this.workers); }

  /** Ends open-ended load: each session publishes what is queued, then stops. */
  close(): void {
    for (const l of this.lanes.values()) { l.closed = true; l.wake?.(); }
    this.eventsClosed = true;
    this.eventsWake?.();
  }

  /** Abandons everything still unpublished (bounded teardown) and closes the connection. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.close();
    await Promise.race([Promise.all(this.workers), sleep(10_000)]);
    await this.nc?.close().catch(() => undefined);
  }

  /** Messages acked so far (ordered ones, poison and timers included). */
  ackedCount(): number {
    let n = this.poison.length;
    for (const p of this.published.values()) n += p.length;
    return n;
  }

  /** Queues a poison message as the next thing `sessionId` publishes (between two of its messages). */
  injectPoison(sessionId: string, kind: PoisonKind): void {
    const lane = this.lane(sessionId);
    const n = ++this.poisonN;
    lane.queue.unshift({
      body: poisonPayload(kind), msgId: `${sessionId}:poison:${n}`,
      onAck: (seq, _s, ackedAt) => { this.poison.push({ sessionId, kind, seq, ackedAt, afterI: lane.lastI }); },
    });
    lane.wake?.();
  }

  /** Queues `{ i, sleepUntil }` for a rec-sleep session (after what is already queued). */
  sleep(sessionId: string, until: number): void {
    const lane = this.lane(sessionId);
    const i = lane.next++;
    lane.queue.push(this.ordered(lane, i, { i, sleepUntil: until }, (seq, ackedAt) => { this.timers.push({ sessionId, i, until, seq, ackedAt }); }));
    lane.wake?.();
  }

  private lane(id: string): Lane {
    const l = this.lanes.get(id);
    if (!l) throw new Error(`${id} is not a session of this load`);
    return l;
  }

  private ordered(lane: Lane, i: number, body: unknown, also?: (seq: number, ackedAt: number) => void): Item {
    return {
      body: Buffer.from(JSON.stringify(body)), msgId: `${lane.id}:${i}`,
      onAck: (seq, sentAt, ackedAt, attempts) => {
        lane.lastI = i;
        this.published.get(lane.id)!.push({ i, seq, sentAt, ackedAt, attempts });
        also?.(seq, ackedAt);
      },
    };
  }

  /** One session's publisher: strictly one message in flight, so per-session order is the stream's. */
  private async run(lane: Lane): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      let item = lane.queue.shift();
      if (!item) {
        const more = lane.planned === undefined ? !lane.closed : lane.next <= lane.planned;
        if (more) {
          const i = lane.next++;
          item = this.ordered(lane, i, { i });
        } else if (lane.planned === 0 && !lane.closed) {
          await new Promise<void>((r) => { lane.wake = r; }); // a sleeper waits for its commands
          lane.wake = null;
          continue;
        } else {
          return;
        }
      }
      await this.publish(lane.id, item);
    }
  }

  /** Waits for a slot of the global rate. */
  private async slot(): Promise<void> {
    const now = Date.now();
    const gap = 1000 / this.o.ratePerSec;
    this.nextSlot = Math.max(this.nextSlot + gap, now);
    const wait = this.nextSlot - now;
    if (wait > 0) await sleep(wait);
  }

  private async publish(sessionId: string, item: Item): Promise<void> {
    await this.slot();
    const sentAt = Date.now();
    for (let attempt = 1; !this.stopped; attempt++) {
      try {
        const h = natsHeaders();
        h.set('Agentry-Kind', 'message');
        const ack = await this.js!.publish(`agentry.in.${sessionId}`, item.body, { headers: h, msgID: item.msgId });
        item.onAck(ack.seq, sentAt, Date.now(), attempt);
        return;
      } catch {
        this.retries++;
        await sleep(Math.min(1000, 100 * attempt));
      }
    }
  }
}
