/**
 * Owns reading the event history (stream `<prefix>_EVENTS`) newest first, the way the
 * inspector's Events page and `listEvents { order: 'newest' }` page through it: filtered by type
 * pattern, sender and time range, `limit` events per page, with a cursor (a stream sequence)
 * for the next, older page. Nothing is loaded whole: JetStream reads forward only, so the
 * reader walks back in windows of sequences, each read by a short-lived consumer that starts at
 * the window's first sequence. A consumer's `num_pending` counts the matching events from its
 * start to the end of the stream, so the difference between two windows' counts says how many
 * to fetch: a fetch never waits for events that are not there.
 *
 * Bounds: at most `scanBudget` events are fetched and 2,000,000 sequences spanned per call (a
 * rare sender over a long history answers a partial page with a `next` cursor rather than
 * reading everything; a type filter is applied by the server, so rare types cost little);
 * a window is fetched in batches and only the newest matches a page can use are kept, so memory
 * follows the page size, not the window; every JetStream request has its own deadline.
 *
 * Faults: a consumer left behind by a crash disappears by itself (`inactive_threshold`); events
 * removed by retention while a page is read are simply missing from it (the fetch ends at its
 * deadline, never hangs).
 */
import { AckPolicy, DeliverPolicy, type ConsumerConfig } from '@nats-io/jetstream';
import { isPriority } from '../actors/types.js';
import { parsePayload } from './inbox.js';
import { H, type Transport } from './transport.js';
import type { EventRecord } from './wakeups.js';

const EVENT_PREFIX = 'agentry.events.';
/** Events fetched per call, at most (the sender filter is applied to fetched events). */
export const EVENT_SCAN_BUDGET = 10_000;
/** Events one window fetches, at most (a denser window is narrowed first). */
const MAX_FETCH = 5_000;
/** Sequences one window spans, at most, and all windows of a call together. */
const MAX_WINDOW = 200_000;
const MAX_SPAN = 2_000_000;
/** Events per fetch request: bounds what one request holds in memory at once. */
const FETCH_BATCH = 1000;
/** Deadline of one fetch (the events are known to be there). */
const FETCH_EXPIRES_MS = 5_000;
/** A consumer left behind (a crash mid-page) is removed by the server after this (ns). */
const INACTIVE_NS = 30_000 * 1e6;

/** What `readEventsNewestFirst` returns. */
export interface EventLogQuery {
  /** Event type or pattern (`invoice.*`, `>`); default all. */
  readonly pattern?: string;
  /** Only events whose sender (`Agentry-From`: the publishing session, `cron:…`, …) is this. */
  readonly from?: string;
  /** Only events stored at or after this time (ms). */
  readonly since?: number;
  /** Only events stored before this time (ms). */
  readonly until?: number;
  /** Cursor: only events with a lower stream sequence (the `next` of the previous page). */
  readonly before?: number;
  readonly limit: number;
}

/** One page of the event log. */
export interface EventLogPage {
  /** Newest first. */
  readonly events: EventRecord[];
  /** Pass as `before` for the next (older) page; null when there is none. */
  readonly next: number | null;
}

/**
 * One page of the event history, newest first.
 *
 * @example
 * const p1 = await readEventsNewestFirst(transport, { pattern: 'invoice.*', limit: 50 });
 * const p2 = p1.next === null ? null : await readEventsNewestFirst(transport, { pattern: 'invoice.*', limit: 50, before: p1.next });
 */
export async function readEventsNewestFirst(
  transport: Transport, q: EventLogQuery, bounds: { readonly scanBudget?: number; readonly maxFetch?: number } = {},
): Promise<EventLogPage> {
  const scanBudget = bounds.scanBudget ?? EVENT_SCAN_BUDGET;
  const maxFetch = bounds.maxFetch ?? MAX_FETCH;
  const { jsm, js, eventStream: stream } = transport;
  const filter = `${EVENT_PREFIX}${q.pattern ?? '>'}`;
  const info = await jsm.streams.info(stream);
  const { first_seq: first, last_seq: last, messages } = info.state;
  if (messages === 0 || q.limit < 1) return { events: [], next: null };

  /** A consumer from `start` on (with the filter, or none: time lookups); its name and matching count. */
  const open = async (cfg: Partial<ConsumerConfig>): Promise<{ name: string; pending: number }> => {
    const ci = await jsm.consumers.add(stream, {
      ack_policy: AckPolicy.None, mem_storage: true, inactive_threshold: INACTIVE_NS, num_replicas: 1, ...cfg,
    });
    return { name: ci.name, pending: ci.num_pending };
  };
  const close = (name: string): Promise<unknown> => jsm.consumers.delete(stream, name).catch(() => undefined);
  /** The first stream sequence stored at or after `ms` (last + 1: none). */
  const seqAt = async (ms: number): Promise<number> => {
    const c = await open({ deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(ms).toISOString() });
    try {
      if (c.pending === 0) return last + 1;
      const consumer = await js.consumers.get(stream, c.name);
      for await (const m of await consumer.fetch({ max_messages: 1, expires: FETCH_EXPIRES_MS })) return m.seq;
      return last + 1;
    } finally {
      await close(c.name);
    }
  };

  let hi = Math.min(last, (q.before ?? Number.MAX_SAFE_INTEGER) - 1);
  if (q.until !== undefined) hi = Math.min(hi, (await seqAt(q.until)) - 1);
  const lo = Math.max(first, q.since !== undefined ? await seqAt(q.since) : first);
  if (hi < lo) return { events: [], next: null };

  /** Matching events from `seq` to the end of the stream. */
  const pendingFrom = async (seq: number): Promise<number> => {
    if (seq > last) return 0;
    const c = await open({ filter_subject: filter, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: seq });
    await close(c.name);
    return c.pending;
  };

  const out: EventRecord[] = [];
  let above = await pendingFrom(hi + 1); // matching events above the range (arrived since `info`)
  let end = hi;
  let window = Math.max(64, q.limit * 2);
  let fetched = 0;
  let span = 0;
  while (end >= lo && out.length < q.limit && fetched < scanBudget && span < MAX_SPAN) {
    const start = Math.max(lo, end - window + 1);
    const c = await open({ filter_subject: filter, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: start });
    const count = c.pending - above;
    if (count > maxFetch && start < end) {
      // More matches than one window should fetch: narrow it (the server filtered by type, so
      // the count says how dense the matches are here) and try again from the same end.
      await close(c.name);
      window = Math.max(1, Math.floor(((end - start + 1) * maxFetch) / count / 2));
      continue;
    }
    try {
      // Only the newest `need` matches of the window can be on this page: older ones are dropped
      // as the window is read, so memory stays bounded by the page, not by the window.
      const need = q.limit + 1 - out.length;
      const found: EventRecord[] = [];
      if (count > 0) {
        const consumer = await js.consumers.get(stream, c.name);
        let got = 0;
        let done = false;
        while (!done && got < count) {
          let n = 0;
          for await (const m of await consumer.fetch({ max_messages: Math.min(count - got, FETCH_BATCH), expires: FETCH_EXPIRES_MS })) {
            n++;
            if (m.seq <= end) {
              const from = m.headers?.get(H.from) || null;
              if (q.from === undefined || from === q.from) {
                const p = m.headers?.get(H.priority);
                found.push({
                  seq: m.seq, type: m.subject.slice(EVENT_PREFIX.length), data: parsePayload(m.data),
                  priority: isPriority(p) ? p : 'normal', from, at: Math.floor(m.info.timestampNanos / 1e6),
                });
                if (found.length > need) found.shift();
              }
            }
            if (m.seq >= end || m.info.pending === 0) { done = true; break; }
          }
          got += n;
          if (n === 0) break; // removed by retention meanwhile: the fetch ended at its deadline
        }
      }
      out.push(...found.reverse());
      above = c.pending;
      fetched += count;
      span += end - start + 1;
      // Sparse matches (a rare type): widen faster; the server skips what the filter excludes.
      window = Math.min(count < q.limit ? window * 4 : window * 2, MAX_WINDOW);
    } finally {
      await close(c.name);
    }
    end = start - 1;
  }
  if (out.length > q.limit) {
    const page = out.slice(0, q.limit);
    return { events: page, next: page[page.length - 1]!.seq };
  }
  return { events: out, next: end >= lo ? end + 1 : null };
}
