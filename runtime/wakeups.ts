/**
 * Owns the runtime's wake-ups around the session host: the scheduler (sleep deadlines, wait
 * timeouts, cron firings), cron tasks (`scheduleTask` / `cancelTask`; listed from the store), and the
 * event bus (`publishEvent`, routing of events published straight to NATS, event history).
 *
 * A due wake goes to the host at its due time (`fireWake` → `SessionHost.wakeDue`), never before;
 * `WAKE_LEAD_MS` earlier the scheduler announces it and the host loads the session
 * (`prefetchWake`), so the wake finds it live and its handler starts without a store round trip
 * (measured in docs/benchmarks-wakeups.md). The announcement only loads: a wake is still fired
 * at least once and applied once (its commit moves the session out of `sleeping`; a stale copy's
 * commit is refused by version and the copy dropped), whether or not it was loaded ahead.
 *
 * Events: every event is stored in the stream `<prefix>_EVENTS` (bounded retention: the event
 * history) and delivered by the event router — one durable consumer, shared by the nodes — to
 * each recipient's inbox as a `kind: event` message with the `Nats-Msg-Id`
 * `evt:<eventId>:<sessionId>` (`eventIdOf`: its sequence and stream time); the router acks the event only once every recipient's publish is
 * stored, so a node that dies mid-route leaves it to be routed again, and the re-routing
 * delivers nothing twice (inbox de-duplication, 2 min window). `publishEvent` only stores the
 * event (with its `msgId` as the stream's de-duplication id): it used to route the event itself
 * and mark it for the router to skip, which lost the event for every recipient not reached yet
 * when the publishing node died mid-route. Recipients are sessions sleeping or waiting on the type and subscribers (exact types
 * or NATS wildcards); the session's statechart decides whether the event wakes it (a listed
 * type, or priority `urgent`) or waits for its wake. An event that reaches no one is
 * dead-lettered with reason `no-recipient`.
 *
 * The router's consumer deleted while the runtime runs (an operator's `nats consumer rm`, a
 * clean-up script): every node notices (its pull fails: consumer deleted / not found) and the first
 * re-creates it from the consumer's ack floor as last read (every `ROUTER_FLOOR_EVERY_MS`), so
 * every event not acked yet, including those published while it was gone, is routed; the events
 * acked since that read are routed again and de-duplicated by the inbox (their copies are
 * younger than its 2 min window unless an older event held the floor back that long). Before
 * 2026-11-28 the router was never re-created: every event published after the delete was
 * stored, acknowledged to its producer and never delivered. The floor is also stored in Postgres
 * (`runtime_marks`, each round it moved, and when a node stops), so a consumer deleted while
 * every node was down is re-created from there at start instead of "new events only", which
 * skipped the events published meanwhile (a first start, with no floor stored, still begins with
 * new events; an events stream made anew since the floor was stored is routed from its start).
 *
 * A node paused mid-route past the ack wait (SIGSTOP, a VM freeze) must not go on publishing when
 * it wakes: the event went to another node meanwhile, and copies published after the duplicate
 * window are stored twice. `RouteHold` stops such a route, and the router pulls in small batches so
 * that an event read after a pause is known to be possibly stale (see `routerLoop`).
 *
 * The event history is bounded by 7 days and by `eventsMaxBytes`. The stream discards new
 * events at that size, never old ones (an old one may not be routed yet); instead the nodes trim
 * it (`trimEventHistory`, every `TRIM_EVERY_MS`): past 80 % of the size, the oldest events up to
 * the router's ack floor are purged, down to 60 %. So events are refused (retryable, nothing
 * acknowledged is lost) only while the events not routed yet fill the stream. Before 2026-11-29
 * the history had no size bound: it could fill JetStream's storage, where nats-server refuses
 * every write, the partition leases' renewals too (docs/reliability.md).
 */
import { randomUUID } from 'node:crypto';
import { AckPolicy, DeliverPolicy, type Consumer, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import { AgentryError } from '../actors/errors.js';
import { isEventType } from '../actors/defineAgent.js';
import { assertSessionId } from '../actors/sessionId.js';
import { isPriority, type Priority } from '../actors/types.js';
import type { OutboxRecord, ScheduleRecord, Store } from '../persistence/types.js';
import type { RuntimeConfig } from './config.js';
import { nextRunAfter, parseCron } from './cron.js';
import { settleWithin } from './deadline.js';
import { parsePayload } from './inbox.js';
import { storableText, toStorable } from '../persistence/storable.js';
import type { Logger } from './logger.js';
import { partitionOf } from './partition.js';
import { Scheduler } from './scheduler.js';
import type { Clock } from './clock.js';
import type { SessionHost } from './host/sessionHost.js';
import { DLQ_SUBJECT, H, INBOX_SUBJECT, type Transport } from './transport.js';

/** Events one router pull asks for: few, so that the last of a batch is not held long before its route (RouteHold). */
const ROUTER_BATCH = 16;

/** Inbox publishes of one event in flight at once, and how long their acknowledgements may take. */
const ROUTE_CHUNK = 1000;
const ROUTE_CHUNK_TIMEOUT_MS = 10_000;

/**
 * How long before its due time a wake's session is loaded (`SessionHost.prefetchWake`), so the
 * wake at its due time starts the handler without a store round trip. Bounded by what a node
 * can hold: at 3,333 wakes/s this is ~700 sessions loaded ahead.
 */
const WAKE_LEAD_MS = 200;

/** How long a start keeps retrying the event router's consumer before it gives up. */
const ROUTER_START_DEADLINE_MS = 60_000;

/** How often the router's ack floor is read: where a re-created router consumer resumes. */
const ROUTER_FLOOR_EVERY_MS = 30_000;
/** The event history's size is looked at this often; past `TRIM_AT` of `eventsMaxBytes` routed events are trimmed to `TRIM_TO`. */
const TRIM_EVERY_MS = 5_000;
const TRIM_AT = 0.8;
const TRIM_TO = 0.6;

/**
 * Header on events a node of an earlier version routed itself in `publishEvent`: the router skips
 * them (a rolling deploy must not route them twice). No current code sets it.
 */
const ROUTED = 'Agentry-Routed';

/** One event from the history. */
export interface EventRecord {
  readonly seq: number;
  readonly type: string;
  readonly data: unknown;
  readonly priority: Priority;
  readonly from: string | null;
  readonly at: number;
}

export interface Wakeups {
  readonly scheduler: Scheduler;
  start(): Promise<void>;
  stop(): Promise<void>;
  scheduleTask(agentId: string, task: unknown, schedule: string, opts?: { timezone?: string; taskId?: string }): Promise<{ taskId: string; nextRunAt: number | null }>;
  cancelTask(taskId: string): Promise<{ cancelled: boolean }>;
  /**
   * Stores an event for the router to deliver; resolves with its stream sequence and how many
   * sessions it goes to (its recipients now). With `msgId`, a repeat within 2 minutes is the same
   * event (same `seq`, `duplicate: true`): a caller retrying after an error cannot deliver it twice.
   */
  publishEvent(type: string, data?: unknown, opts?: PublishEventOptions): Promise<{ seq: number; recipients: number; duplicate?: boolean }>;
  /** Event history from the stream, oldest first. */
  listEvents(opts?: { type?: string; since?: number; limit?: number }): Promise<EventRecord[]>;
}

/** Options of `publishEvent`. */
export interface PublishEventOptions {
  readonly priority?: Priority;
  readonly from?: string;
  /** De-duplication id (`Nats-Msg-Id` on the events stream): a repeat within 2 minutes is dropped. */
  readonly msgId?: string;
}

export interface WakeupDeps {
  readonly config: RuntimeConfig;
  readonly store: Store;
  readonly transport: Transport;
  readonly host: SessionHost;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Partitions whose timers this node runs (null: all). */
  readonly partitions?: () => readonly number[] | null;
}

/** Wires the scheduler, cron and the event bus to a host. */
export function createWakeups(deps: WakeupDeps): Wakeups {
  const { config, store, transport, host, clock, logger } = deps;
  let router: ConsumerMessages | undefined;
  let routing = Promise.resolve();
  let stopped = false;

  const scheduler = new Scheduler({
    store, clock, logger, horizonMs: config.timerHorizonMs,
    partitions: deps.partitions ?? (() => null),
    onWakeDue: (sid, dueAt) => { fireWake(sid, dueAt); },
    onCronDue: (taskId, dueAt) => { cronDue(taskId, dueAt, 0); },
    // Never early: this only loads the session; the wake itself is `onWakeDue` at the due time.
    onWakeSoon: (sid) => { host.prefetchWake(sid); },
    leadMs: WAKE_LEAD_MS,
  });

  /**
   * Hands a due wake to the host; one it could not deliver (its session was dropped or could
   * not be loaded, e.g. its partition moved) is armed again after a second, while this node
   * still owns the partition. Otherwise the scheduler's fired-suppression would hold it back
   * until a full read (30 s to 5 min later).
   */
  function fireWake(sid: string, dueAt: number): void {
    const key = `wake:${sid}` as const;
    const retry = (): void => {
      const t = setTimeout(() => {
        const part = partitionOf(sid, config.partitions);
        const owned = deps.partitions?.();
        if (owned && !owned.includes(part)) return; // the new owner's scheduler has it
        scheduler.rearm(key, dueAt, part);
      }, 1_000);
      t.unref();
    };
    void host.wakeDue(sid, dueAt, retry).then((ok) => { if (!ok) retry(); }, retry);
  }

  /**
   * Fires a cron task; a firing the store could not take (an outage) is armed again after a
   * backoff (1 s doubling to 30 s), since the scheduler marked it fired and would otherwise hold
   * it back until a full read, up to 5 minutes. The firing is a compare-and-set on the task's
   * due time, so a retry that meets another node's firing (the partition moved) does nothing.
   * An error that is not the store's being away (a data error) is left to the full read.
   */
  function cronDue(taskId: string, dueAt: number, attempt: number): void {
    void fireCron(taskId, dueAt).catch((err: unknown) => {
      if (stopped) return;
      if ((err as { retryable?: boolean }).retryable !== true) {
        logger.error({ err, taskId }, 'cron firing failed; retried at the next full timer read');
        return;
      }
      const delay = Math.min(30_000, 1_000 * 2 ** attempt);
      if (attempt === 0) logger.warn({ err: (err as Error).message, taskId, retryInMs: delay }, 'cron firing failed (store unavailable); retrying');
      const key = `cron:${taskId}` as const;
      const t = setTimeout(() => {
        if (stopped || scheduler.nextFor(key) !== null) return; // re-read or re-noted meanwhile: it fires from there
        // Only clears the fired mark: this retry fires it itself, keeping its backoff (a
        // `rearm` would fire it through the scheduler, with the backoff back at 1 s).
        scheduler.note(key, null);
        cronDue(taskId, dueAt, attempt + 1);
      }, delay);
      t.unref();
    });
  }

  // Sleep deadlines and wait timeouts reach the scheduler with the commit that stores them. A run
  // under way that carries a wake (status `active` with a wake time: commitRecordOf) is left as
  // it is: this node runs it, and the run's own commit notes what comes next; its stored wake
  // time is for the next owner, should this node die first.
  host.listen({
    onCommitted(r) {
      if (r.status === 'active' && r.wakeAt !== null) return;
      scheduler.note(`wake:${r.sessionId}`, r.status === 'sleeping' || r.status === 'waiting' ? r.wakeAt : null, r.partition);
    },
    onDropped(sid, part) { rearmFromStore(sid, part); },
  });

  /**
   * A dropped live session (a failed commit, new agent code) may have taken a due wake with it:
   * the scheduler marked it fired and would hold it back until a full read (up to 5 minutes).
   * Its stored row says what is still due; arm that again (for a partition this node serves).
   */
  function rearmFromStore(sid: string, part: number): void {
    const owned = deps.partitions?.();
    if (owned && !owned.includes(part)) return; // the partition's owner reads it
    const key = `wake:${sid}` as const;
    void store.loadSession(sid).then((rec) => {
      if (!rec || rec.wakeAt === null || (rec.status !== 'sleeping' && rec.status !== 'waiting' && rec.status !== 'active')) return;
      scheduler.rearm(key, rec.wakeAt, part);
    }, (err: unknown) => { logger.warn({ err, sessionId: sid }, 'could not read a dropped session\'s wake time; the next full timer read arms it'); });
  }

  /**
   * One cron firing: CAS next_run_at and write its outbox row in one transaction, then publish.
   *
   * A firing that finds the task's stored due time is not its own (a retry of a firing whose
   * commit went through although its answer was lost; a firing put back by the late note of a
   * slower firing before it, whose publish hung in a NATS outage; a CAS another firing won) holds
   * the stored due time again. It used to just return: the scheduler then held nothing for the
   * task, and its periodic read covers only times past its horizon, so the task stopped until the
   * next full read, up to 5 minutes (chaos seed 909; test/wakeups/cron.test.ts).
   */
  async function fireCron(taskId: string, dueAt: number): Promise<void> {
    const sched = await store.getSchedule(taskId);
    if (!sched) return;
    if (sched.nextRunAt !== dueAt) { holdStored(sched); return; }
    const now = clock.now();
    const missed = now - dueAt > Math.max(60_000, config.timerHorizonMs);
    const next = nextRunAfter(sched.cron, sched.timezone, Math.max(dueAt, now));
    const row: OutboxRecord | null = missed && config.cronCatchUp === 'skip' ? null : {
      id: `${taskId}:${dueAt}`, sessionId: sched.sessionId, subject: INBOX_SUBJECT(sched.sessionId),
      headers: { [H.kind]: 'task', [H.priority]: 'normal', [H.from]: `cron:${taskId}` },
      body: JSON.stringify({ taskId, task: sched.task, scheduledFor: dueAt, schedule: sched.cron, timezone: sched.timezone }),
      createdAt: now,
    };
    const won = await store.fireSchedule(taskId, dueAt, next, now, row);
    if (!won) {
      const cur = await store.getSchedule(taskId);
      if (cur) holdStored(cur);
      return;
    }
    // The next due time is held before the publish: a publish that hangs (NATS paused or
    // restarting, up to its timeout) must not hold the next firings back. Stored with the firing:
    // a failed publish stays in the outbox and goes out with a later sweep.
    scheduler.note(`cron:${taskId}`, next, sched.partition);
    if (row) await host.outbox.publish([row]);
  }

  /**
   * Holds a task's stored due time in the scheduler (a no-op while this node is firing that very
   * time: its fired mark holds it back). A due time already past fires at once, as a catch-up.
   */
  function holdStored(sched: Pick<ScheduleRecord, 'id' | 'nextRunAt' | 'partition'>): void {
    if (sched.nextRunAt !== null) scheduler.note(`cron:${sched.id}`, sched.nextRunAt, sched.partition);
  }

  /**
   * Delivers one event to every recipient's inbox (see the module comment). `hold` is asked
   * before each chunk: it keeps the router's ack deadline from passing mid-route, and refuses
   * once the event may have gone to another node (see `RouteHold`), which ends the route here.
   */
  async function route(type: string, body: string, priority: Priority, from: string | null, eventSeq: number, eventAtMs: number, hold: () => boolean): Promise<number> {
    // Renewed first, so that the recipients' read does not eat into the hold of an event that
    // came late in its pull.
    if (!hold()) throw new RouteAbandoned(eventSeq, 0, 0);
    const recipients = await store.eventRecipients(type);
    if (recipients.length === 0) {
      const dl = {
        // Stored as Postgres can take it: a poison event (a NUL, a lone surrogate) must not be
        // refused here and redelivered forever.
        id: `event:${eventSeq}`, sessionId: '_events', reason: 'no-recipient', error: storableText(`no session sleeps on, waits for or subscribes to ${type}`),
        attempts: 0, payload: toStorable({ type, data: parsePayload(Buffer.from(body)), priority, from }), createdAt: clock.now(), replayedAt: null,
      };
      await store.addDeadLetter(dl);
      transport.publishCore(DLQ_SUBJECT('_events'), JSON.stringify(dl));
      return 0;
    }
    // The copies' msgId names the event by its id (sequence and stream time), not its sequence alone:
    // an event stream deleted and created again from sequence 1 must not have its events' copies
    // dropped by the inbox as repeats of the old stream's.
    const eventId = eventIdOf(eventSeq, eventAtMs);
    const hdrs: Record<string, string> = { [H.kind]: 'event', [H.priority]: priority, [H.eventType]: type, [H.eventId]: eventId };
    if (from) hdrs[H.from] = from;
    // A chunk must finish well inside the ack deadline the hold renewed before it.
    const chunkTimeoutMs = Math.min(ROUTE_CHUNK_TIMEOUT_MS, Math.floor(config.ackWaitMs / 2));
    for (let i = 0; i < recipients.length; i += ROUTE_CHUNK) {
      if (i > 0 && !hold()) throw new RouteAbandoned(eventSeq, i, recipients.length);
      const chunk = recipients.slice(i, i + ROUTE_CHUNK);
      await transport.publishInboxMany(chunk, chunk.map((sid) => `evt:${eventId}:${sid}`), body, hdrs, chunkTimeoutMs);
    }
    return recipients.length;
  }

  /** Routes events that producers published straight to `agentry.events.<type>` (and outbox events). */
  const durable = 'router';
  /** Every event up to this sequence was acked by some node, as the router's consumer said last (null: not read yet). */
  let routerFloor: number | null = null;
  let floorTimer: ReturnType<typeof setInterval> | undefined;
  let routerStopped = false;
  let recreating: Promise<void> | null = null;

  let signalStop: () => void = () => {};
  const routerStopping = new Promise<void>((r) => { signalStop = r; });

  /** The router consumer's info, or null when it does not exist. */
  async function routerConsumerInfo(): Promise<Awaited<ReturnType<typeof transport.jsm.consumers.info>> | null> {
    try { return await transport.jsm.consumers.info(transport.eventStream, durable); } catch (err) {
      if (isConsumerNotFound(err)) return null;
      throw err;
    }
  }

  /** Creates the router's durable consumer when it is missing: from `resumeAt`, else from the stored mark, else new events only. */
  async function ensureRouterConsumer(resumeAt: number | null): Promise<void> {
    // An event a node took and did not ack (it died mid-route) comes again after ack_wait: the
    // node's ackWaitMs, as for inbox messages (long routes call working()).
    const ackWait = config.ackWaitMs * 1_000_000;
    const infoOf = routerConsumerInfo;
    let info = await infoOf();
    if (!info) {
      if (resumeAt === null) {
        resumeAt = await storedResume();
        if (resumeAt !== null) logger.warn({ resumeAt }, 'event router consumer missing at start; re-creating it from the floor stored in Postgres');
      }
      try {
        await transport.jsm.consumers.add(transport.eventStream, {
          durable_name: durable, filter_subject: 'agentry.events.>', ack_policy: AckPolicy.Explicit,
          ...(resumeAt === null ? { deliver_policy: DeliverPolicy.New } : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: resumeAt }),
          ack_wait: ackWait, max_deliver: -1,
        });
      } catch (err) {
        // Another node re-created it first (its start differs from ours): use theirs.
        if (!(await infoOf())) throw err;
      }
      info = await infoOf();
    } else if (info.config.ack_wait !== ackWait) {
      await transport.jsm.consumers.update(transport.eventStream, durable, { ack_wait: ackWait });
    }
    if (info) routerFloor = routerAckedThrough(info);
  }

  async function startRouter(resumeAt: number | null = null): Promise<void> {
    await ensureRouterConsumer(resumeAt);
    const consumer = await transport.js.consumers.get(transport.eventStream, durable);
    routing = routerLoop(consumer);
  }

  /**
   * Pulls events in small batches and routes them one at a time. A pull, not `consume()`: every
   * event of a batch was delivered after the batch was asked for, so its hold (`RouteHold`) can
   * start then — an event that sat in the socket while this process was paused is known to be
   * possibly stale when it is finally read, and is left to its redelivery instead of routed again.
   */
  async function routerLoop(consumer: Consumer): Promise<void> {
    const expires = Math.max(1_000, Math.min(5_000, Math.floor(config.ackWaitMs / 4)));
    for (let failures = 0; !routerStopped;) {
      const askedAt = monotonicNow();
      try {
        const batch = await consumer.fetch({ max_messages: ROUTER_BATCH, expires });
        router = batch;
        for await (const m of batch) {
          await routeOne(m, new RouteHold(config.ackWaitMs, monotonicNow, askedAt));
          if (routerStopped) break;
        }
        failures = 0;
      } catch (err) {
        if (routerStopped) return;
        failures++;
        if (isConsumerGone(err) || (await routerConsumerInfo().then((i) => i === null, () => false))) {
          recreating ??= recreateRouter((err as Error).message).finally(() => { recreating = null; });
          return;
        }
        if (failures === 1 || failures % 20 === 0) logger.warn({ err: (err as Error).message, failures }, 'event router pull failed; retrying');
        await Promise.race([new Promise((r) => setTimeout(r, Math.min(5_000, 250 * 2 ** Math.min(failures, 5)))), routerStopping]);
      }
    }
  }

  /** Routes one event and acks it; see `RouteHold` for when it is left to another node instead. */
  async function routeOne(m: JsMsg, hold: RouteHold): Promise<void> {
    if (m.headers?.get(ROUTED)) { m.ack(); return; }
    const type = m.subject.slice('agentry.events.'.length);
    const p = m.headers?.get(H.priority);
    try {
      await route(type, new TextDecoder().decode(m.data), isPriority(p) ? p : 'normal', m.headers?.get(H.from) || null, m.seq, Math.floor(m.info.timestampNanos / 1e6), () => hold.renew(() => { m.working(); }));
      m.ack();
    } catch (err) {
      if (err instanceof RouteAbandoned || !hold.held()) {
        // Neither ack nor nak: the event is another node's now (or comes back to one after its
        // ack wait), and a nak of this stale delivery could have it routed once more.
        logger.warn({ eventSeq: m.seq, type, err: (err as Error).message }, 'event route abandoned: this node held the event too long for its ack wait (a pause or a stall); another node routes it');
        return;
      }
      logger.warn({ err, type }, 'event routing failed; it is redelivered');
      m.nak(1000);
    }
  }

  async function recreateRouter(why: string): Promise<void> {
    const resumeAt = routerFloor === null ? null : routerFloor + 1;
    logger.warn({ reason: why, resumeAt }, 'event router consumer gone; re-creating it from its last known ack floor');
    router = undefined;
    for (let delay = 250; !routerStopped; delay = Math.min(delay * 2, 5_000)) {
      try {
        await startRouter(resumeAt);
        return;
      } catch (err) {
        logger.warn({ err: (err as Error).message }, 'could not re-create the event router consumer yet; retrying');
        await Promise.race([new Promise((r) => setTimeout(r, delay)), routerStopping]);
      }
    }
  }

  let trimTimer: ReturnType<typeof setInterval> | undefined;
  /** The oldest event was not routed yet when the history needed trimming (logged once per episode). */
  let trimBlocked = false;

  /**
   * Keeps the event history under `eventsMaxBytes` (see the module comment): past `TRIM_AT` of
   * it, drops the oldest events down to `TRIM_TO`, but never one the router has not acked (a
   * purge up to its floor, freshly read). The stream discards new, so when the events not routed
   * yet fill it, publishers are refused (retryable) and nothing acknowledged is dropped.
   */
  async function trimEventHistory(): Promise<void> {
    // The stream's own limit: the keeper may have set a smaller one than configured (runtime/streamKeeper.ts `fitted`).
    const { config: sc, state } = await transport.jsm.streams.info(transport.eventStream);
    const cap = sc.max_bytes ?? -1;
    if (cap <= 0) return;
    if (state.bytes < TRIM_AT * cap || state.messages === 0) { trimBlocked = false; return; }
    await readRouterFloor();
    if (routerFloor === null) return;
    const drop = Math.ceil((state.bytes - TRIM_TO * cap) / (state.bytes / state.messages));
    const keepFrom = Math.min(routerFloor + 1, state.first_seq + drop);
    if (keepFrom <= state.first_seq) {
      if (!trimBlocked) logger.warn({ bytes: state.bytes, maxBytes: cap, firstSeq: state.first_seq, routerFloor }, 'event history nearly full and its oldest events are not routed yet: nothing trimmed; events are refused once it is full');
      trimBlocked = true;
      return;
    }
    trimBlocked = false;
    const r = await transport.jsm.streams.purge(transport.eventStream, { seq: keepFrom });
    logger.info({ purged: r.purged, keepFrom, bytes: state.bytes, maxBytes: cap }, 'event history trimmed: routed events dropped, oldest first, to keep room under eventsMaxBytes');
  }

  /** Reads the router's ack floor (a failed read keeps the last one) and stores it when it moved. */
  async function readRouterFloor(): Promise<void> {
    try {
      routerFloor = routerAckedThrough(await transport.jsm.consumers.info(transport.eventStream, durable));
    } catch { return; /* NATS away or the consumer gone: the last floor stands */ }
    await saveRouterFloor();
  }

  /** The floor last stored (this node's writes), so an unchanged one is not written again. */
  let savedFloor: RouterMark | null = null;
  /** The mark's key names the events stream (several runtimes may share a database under other stream prefixes). */
  const markKey = `${ROUTER_MARK}:${transport.eventStream}`;

  /**
   * Stores the router's floor with the events stream's creation time (`ROUTER_MARK`), so a node
   * that starts with the consumer gone resumes where it stood. Failures are left to the next
   * round (the mark only bounds what a later start may skip).
   */
  async function saveRouterFloor(): Promise<void> {
    // An unchanged floor needs no write, nor the stream read (a stream made anew moves the floor).
    if (routerFloor === null || savedFloor?.seq === routerFloor) return;
    try {
      const streamCreated = (await transport.jsm.streams.info(transport.eventStream)).created;
      const mark: RouterMark = { seq: routerFloor, streamCreated };
      await store.saveMark(markKey, mark);
      savedFloor = mark;
    } catch (err) {
      logger.debug({ err: (err as Error).message }, 'could not store the event router floor; the next round tries again');
    }
  }

  /**
   * Where a router consumer missing at start resumes, from the stored mark: right after its floor
   * in the same stream; the stream's first event when the stream was made anew since (another
   * creation time, or fewer events than the floor: none of its events was routed); null (new
   * events only) when no floor was ever stored — a first start. Throws while the store or NATS
   * does not answer: starting "new events only" then would skip events for good.
   */
  async function storedResume(): Promise<number | null> {
    const mark = routerMarkOf(await store.loadMark(markKey));
    if (!mark) return null;
    const { created, state } = await transport.jsm.streams.info(transport.eventStream);
    const first = Math.max(1, state.first_seq);
    if (mark.streamCreated !== created || mark.seq > state.last_seq) return first;
    return Math.max(first, mark.seq + 1);
  }

  return {
    scheduler,
    async start() {
      await scheduler.start();
      // A busy server (a node starting in front of a deep backlog) can let a JetStream API
      // request time out: retry for a while instead of failing the whole start.
      const deadline = Date.now() + ROUTER_START_DEADLINE_MS;
      for (let delay = 250; ; delay = Math.min(delay * 2, 4_000)) {
        try {
          await startRouter();
          floorTimer = setInterval(() => { if (!recreating) void readRouterFloor(); }, ROUTER_FLOOR_EVERY_MS);
          floorTimer.unref();
          if (config.eventsMaxBytes > 0) {
            let trimming = false;
            trimTimer = setInterval(() => {
              if (trimming || recreating) return;
              trimming = true;
              trimEventHistory().catch((err: unknown) => { logger.debug({ err: (err as Error).message }, 'event history trim failed; the next round tries again'); }).finally(() => { trimming = false; });
            }, TRIM_EVERY_MS);
            trimTimer.unref();
          }
          return;
        } catch (err) {
          if (Date.now() + delay > deadline) throw err;
          logger.warn({ err: (err as Error).message }, 'could not start the event router yet; retrying');
          await new Promise((r) => setTimeout(r, delay));
        }
      }
    },
    async stop() {
      stopped = true;
      scheduler.stop();
      routerStopped = true;
      signalStop();
      clearInterval(floorTimer);
      clearInterval(trimTimer);
      await recreating;
      await router?.close();
      await routing;
      // The floor as this node leaves it: a start that finds the consumer gone resumes there.
      await settleWithin(readRouterFloor(), 2_000);
    },
    async scheduleTask(agentId, task, schedule, opts = {}) {
      assertSessionId(agentId);
      const timezone = opts.timezone ?? 'UTC';
      parseCron(schedule, timezone);
      const taskId = opts.taskId ?? randomUUID();
      if (!/^[A-Za-z0-9_:-]{1,128}$/.test(taskId)) throw new AgentryError('INVALID_ARGUMENT', 'taskId must be 1-128 characters of [A-Za-z0-9_:-]');
      if (await store.getSchedule(taskId)) throw new AgentryError('INVALID_ARGUMENT', `task ${taskId} already exists`);
      const now = clock.now();
      const nextRunAt = nextRunAfter(schedule, timezone, now);
      const partition = partitionOf(agentId, config.partitions);
      await store.addSchedule({
        id: taskId, sessionId: agentId, partition, task: task ?? null,
        cron: schedule, timezone, nextRunAt, lastRunAt: null, createdAt: now,
      });
      scheduler.note(`cron:${taskId}`, nextRunAt, partition);
      return { taskId, nextRunAt };
    },
    async cancelTask(taskId) {
      const cancelled = await store.deleteSchedule(taskId);
      scheduler.note(`cron:${taskId}`, null);
      return { cancelled };
    },
    async publishEvent(type, data, opts = {}) {
      if (!isEventType(type)) throw new AgentryError('INVALID_ARGUMENT', `invalid event type ${JSON.stringify(type)}: dot-separated tokens of [A-Za-z0-9_-]`);
      const priority = opts.priority ?? 'normal';
      if (!isPriority(priority)) throw new AgentryError('INVALID_ARGUMENT', 'priority must be low, normal, high or urgent');
      if (opts.msgId !== undefined && (opts.msgId.length === 0 || opts.msgId.length > 256)) throw new AgentryError('INVALID_ARGUMENT', 'msgId must be 1-256 characters');
      const body = JSON.stringify(data ?? null);
      if (Buffer.byteLength(body) > config.maxPayloadBytes) throw new AgentryError('PAYLOAD_TOO_LARGE', `event data is larger than ${config.maxPayloadBytes} bytes`);
      const hdrs: Record<string, string> = { [H.kind]: 'event', [H.priority]: priority, [H.eventType]: type };
      if (opts.from) hdrs[H.from] = opts.from;
      // Read before the event is stored: a store that is down fails the call with nothing published.
      const recipients = (await store.eventRecipients(type)).length;
      const ack = await transport.publishEventAck(type, body, hdrs, opts.msgId);
      return { seq: ack.seq, recipients, ...(ack.duplicate ? { duplicate: true } : {}) };
    },
    async listEvents(opts = {}) {
      const filter = `agentry.events.${opts.type ?? '>'}`;
      const consumer = await transport.js.consumers.get(transport.eventStream, {
        filter_subjects: filter,
        ...(opts.since !== undefined ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(opts.since).toISOString() } : {}),
      });
      const limit = Math.min(opts.limit ?? 100, 1000);
      const out: EventRecord[] = [];
      const info = await transport.jsm.streams.info(transport.eventStream);
      if (info.state.messages === 0) return out;
      const batch = await consumer.fetch({ max_messages: limit, expires: 1000 });
      for await (const m of batch) {
        const p = m.headers?.get(H.priority);
        out.push({
          seq: m.seq, type: m.subject.slice('agentry.events.'.length), data: parsePayload(m.data),
          priority: isPriority(p) ? p : 'normal', from: m.headers?.get(H.from) || null, at: Math.floor(m.info.timestampNanos / 1e6),
        });
        if (out.length >= limit || m.info.pending === 0) break;
      }
      await consumer.delete().catch(() => undefined);
      return out;
    },
  };
}

/** A pull's error that says the router's consumer was deleted or does not exist. */
function isConsumerGone(err: unknown): boolean {
  return isConsumerNotFound(err) || /consumer (deleted|not found)/i.test((err as Error)?.message ?? '');
}

/** The JetStream API said the consumer does not exist (10014). */
function isConsumerNotFound(err: unknown): boolean {
  const e = err as { name?: string; code?: number; api_error?: { err_code?: number } };
  return e.name === 'ConsumerNotFoundError' || e.api_error?.err_code === 10014 || e.code === 404;
}

/**
 * An event's id on its copies: its stream sequence and its stream time, so that a sequence the
 * stream hands out again after it was deleted and re-created is a different id.
 */
export function eventIdOf(eventSeq: number, eventAtMs: number): string {
  return `${eventSeq}.${eventAtMs.toString(36)}`;
}

/** Milliseconds of a clock that a wall-clock change cannot move, but a pause of the process does. */
function monotonicNow(): number { return performance.now(); }

/** The share of the ack wait a route may go without renewing its hold; the rest is the renewal's margin. */
const HOLD_SHARE = 0.8;

/** A route stopped before its next chunk because the event may have been redelivered elsewhere. */
class RouteAbandoned extends Error {
  constructor(readonly eventSeq: number, readonly reached: number, readonly recipients: number) {
    super(`route of event ${eventSeq} abandoned after ${reached} of ${recipients} recipients`);
  }
}

/**
 * Whether an event this node took is still its own to route. JetStream hands an event not acked
 * within the ack wait to another node, which routes it again; copies both publish are one copy
 * only inside the inbox's duplicate window. A node that resumes a route after a pause (SIGSTOP,
 * a VM freeze, a stalled event loop) past that would deliver every copy it still publishes twice.
 * So when it starts and before each later chunk the route renews its ack deadline (`working()`),
 * unless 80 % of the ack wait has passed since the delivery or the last renewal: then the
 * deadline may be gone (the rest is the renewal's margin to reach the server) and the route stops. Measured on a monotonic clock, which runs on while the process is paused.
 * The delivery time is not on the message, and a message read after a pause may have waited in the
 * socket all along: so the hold starts when the pull that brought the event was sent (`heldSince`),
 * which no delivery to it can precede.
 */
export class RouteHold {
  private last: number;
  constructor(private readonly ackWaitMs: number, private readonly now: () => number, heldSince: number) {
    this.last = heldSince;
  }

  /** Whether the event is still this node's (no renewal): a failure after the hold lapsed must not nak a stale delivery. */
  held(): boolean {
    return this.now() - this.last <= this.ackWaitMs * HOLD_SHARE;
  }

  /** True (after renewing through `working`) while the event is still this node's; false once it may not be. */
  renew(working: () => void): boolean {
    if (!this.held()) return false;
    const t = this.now();
    working();
    this.last = t;
    return true;
  }
}

/** Key prefix of the event router's stored floor (`Store.saveMark`; `<prefix>:<events stream>`). */
export const ROUTER_MARK = 'event-router';

/** The event router's stored floor: every event up to `seq` of the stream created at `streamCreated` was routed. */
export interface RouterMark { readonly seq: number; readonly streamCreated: string }

/** A stored router mark, or null when it is missing or not of that shape. */
export function routerMarkOf(v: unknown): RouterMark | null {
  const m = v as Partial<RouterMark> | null;
  return m && typeof m.seq === 'number' && Number.isInteger(m.seq) && m.seq >= 0 && typeof m.streamCreated === 'string' ? { seq: m.seq, streamCreated: m.streamCreated } : null;
}

/** What `routerAckedThrough` reads of a consumer's info. */
export interface RouterConsumerState {
  readonly ack_floor: { readonly stream_seq: number };
  readonly delivered: { readonly stream_seq: number; readonly consumer_seq: number };
  readonly num_ack_pending: number;
}

/**
 * Every event up to this stream sequence was acked by the router's consumer: where a re-created
 * one resumes. The server reports an ack floor of 0 until the consumer's first ack (one created
 * with "new events only" over a long history too), so then it is the sequence before the first
 * delivery — the last delivered sequence less the deliveries (exact without redeliveries,
 * earlier with them: the events stream holds only events, its sequences have no gaps); with
 * nothing awaiting an ack, everything delivered.
 */
export function routerAckedThrough(info: RouterConsumerState): number {
  if (info.num_ack_pending === 0) return info.delivered.stream_seq;
  if (info.ack_floor.stream_seq > 0) return info.ack_floor.stream_seq;
  return Math.max(0, info.delivered.stream_seq - info.delivered.consumer_seq);
}
