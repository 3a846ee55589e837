/**
 * Owns the NATS side of API subscriptions: one core-NATS subscription per requested kind on the
 * subjects every node publishes to (`agentry.state.<id|*>`, `agentry.out.<id|*>`,
 * `agentry.events.<pattern>`), so a client sees a session's changes whichever node owns it.
 * Decodes each message into the `data` of a `notify` notification.
 */
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { EventData, OutputData, SubscriptionKind } from '../../client/index.js';
import { EVENT_SUBJECT, H, OUT_SUBJECT, STATE_SUBJECT } from '../transport.js';

/** What the subscription hands to the connection for each message. */
export type NotificationSink = (kind: SubscriptionKind, agentId: string | undefined, data: unknown) => void;

/** An open set of NATS subscriptions backing one API subscription. */
export interface NatsSubscriptionSet {
  close(): void;
}

function body(m: Msg): unknown {
  const text = m.string();
  try { return JSON.parse(text) as unknown; } catch { return text; }
}

function tokenAt(subject: string, i: number): string | undefined {
  return subject.split('.')[i];
}

/**
 * Subscribes on NATS for `kinds`; `agentId` narrows state and output to one session (default
 * all), `pattern` narrows events (default all). `sink` is called for every message, in order.
 */
export function openNatsSubscriptions(
  nc: NatsConnection, opts: { agentId?: string; pattern?: string; kinds: readonly SubscriptionKind[] }, sink: NotificationSink,
): NatsSubscriptionSet {
  const subs: Subscription[] = [];
  const kinds = new Set(opts.kinds);
  try {
    if (kinds.has('state')) {
      subs.push(nc.subscribe(STATE_SUBJECT(opts.agentId ?? '*'), {
        callback: (err, m) => {
          if (err) return;
          sink('state', tokenAt(m.subject, 2), body(m));
        },
      }));
    }
    if (kinds.has('output')) {
      subs.push(nc.subscribe(OUT_SUBJECT(opts.agentId ?? '*'), {
        callback: (err, m) => {
          if (err) return;
          const k = m.headers?.get(H.kind);
          const kind = k === 'chunk' || k === 'retracted' ? k : 'reply';
          const run = Number(m.headers?.get(H.run) ?? '');
          const data: OutputData = { kind, body: body(m), ...(Number.isFinite(run) && run > 0 ? { run } : {}) };
          sink('output', tokenAt(m.subject, 2), data);
        },
      }));
    }
    if (kinds.has('event')) {
      subs.push(nc.subscribe(EVENT_SUBJECT(opts.pattern ?? '>'), {
        callback: (err, m) => {
          if (err) return;
          const data: EventData = {
            type: m.subject.slice('agentry.events.'.length), body: body(m),
            priority: m.headers?.get(H.priority) || null, from: m.headers?.get(H.from) || null,
          };
          sink('event', undefined, data);
        },
      }));
    }
  } catch (e) {
    for (const s of subs) s.unsubscribe();
    throw e;
  }
  return { close() { for (const s of subs) s.unsubscribe(); } };
}
