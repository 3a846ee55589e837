/**
 * Owns the answer to "is this NATS connection up right now?" for code that must not send while it
 * is down. nats.js (3.4) clears a connection's outbound buffer at every (re)connect attempt, so a
 * request sent while a connection is down is never sent and only waits out its deadline (a
 * publish is silently dropped). The runtime's admin connection (consumer opens) and control
 * connection (lease renewals and confirmations) wait for their connection with this. A request
 * made during the last, successful connect attempt is sent after all, so "down" here means "do
 * not send now", never "what was sent is lost".
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { settleWithin } from './deadline.js';

export interface ConnectionUp {
  /** False from a `disconnect` status until the next `reconnect`. */
  up(): boolean;
  /** Resolves when the connection is up, or after `ms` (then a request may still be dropped and time out). */
  whenUp(ms: number): Promise<void>;
  /** Stops following the status (also ended when the connection closes); waiters are let go. */
  stop(): void;
}

/** Follows `nc`'s status events from now on (see the module comment). */
export function followConnection(nc: NatsConnection): ConnectionUp {
  let isUp = true;
  let waiters: (() => void)[] = [];
  const release = (): void => { const ws = waiters; waiters = []; for (const w of ws) w(); };
  const it = nc.status() as ReturnType<NatsConnection['status']> & { stop?: () => void };
  void (async () => {
    for await (const st of it) {
      if (st.type === 'disconnect') isUp = false;
      if (st.type === 'reconnect') { isUp = true; release(); }
    }
  })();
  return {
    up: () => isUp,
    async whenUp(ms) {
      if (isUp) return;
      await settleWithin(new Promise<void>((r) => { waiters.push(r); }), ms);
    },
    stop() { it.stop?.(); release(); },
  };
}
