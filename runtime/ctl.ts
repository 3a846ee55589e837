/**
 * Owns session-command routing between nodes. A command for a session (create, get, sleep,
 * wake, stop, interrupt, …) must run on the node that owns the session's partition, where its
 * live actor is. `nats.conf` maps `agentry.ctl.<sessionId>` to `agentry.ctlpart.<p>.<sessionId>`
 * exactly as it maps the inbox, the owner answers on its partitions' subjects, and so any node
 * (and its control plane) can serve any client. Errors cross the wire with their code.
 */
import { NoRespondersError, RequestError, TimeoutError, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { AgentryError, codes, type ErrorCode } from '../actors/errors.js';

interface WireError { code: string; message: string; retryable: boolean; details?: Record<string, unknown> }
type Reply = { ok: true; result: unknown } | { ok: false; error: WireError };

/** Answers the commands of partition p with `handle(op, args)`. */
export function serveCtl(nc: NatsConnection, p: number, handle: (sessionId: string, op: string, args: unknown[]) => Promise<unknown>): Subscription {
  return nc.subscribe(`agentry.ctlpart.${p}.*`, {
    callback: (err, m) => {
      if (err) return;
      const sid = m.subject.slice(m.subject.indexOf('.', 'agentry.ctlpart.'.length) + 1);
      if (sid.startsWith('_agentry-probe-')) return;
      void (async () => {
        let reply: Reply;
        try {
          const { op, args } = m.json<{ op: string; args?: unknown[] }>();
          reply = { ok: true, result: (await handle(sid, op, args ?? [])) ?? null };
        } catch (e) {
          const x = e as { code?: string; message?: string; retryable?: boolean; details?: Record<string, unknown> };
          reply = { ok: false, error: { code: x.code && x.code in codes ? x.code : 'INTERNAL', message: x.message ?? String(e), retryable: x.retryable ?? false, ...(x.details ? { details: x.details } : {}) } };
        }
        m.respond(JSON.stringify(reply));
      })();
    },
  });
}

/**
 * Sends a command to the owner of `sessionId` and returns its result, rethrowing its error with
 * the same code. Retries briefly while the partition has no owner (failover, rebalancing).
 */
export async function requestCtl<T>(nc: NatsConnection, sessionId: string, op: string, args: unknown[], timeoutMs: number): Promise<T> {
  // JSON turns a trailing `undefined` into `null`, which means something else to the callee.
  const sent = [...args];
  while (sent.length > 0 && sent[sent.length - 1] === undefined) sent.pop();
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const m = await nc.request(`agentry.ctl.${sessionId}`, JSON.stringify({ op, args: sent }), { timeout: timeoutMs });
      const r = m.json<Reply>();
      if (r.ok) return r.result as T;
      const err = new AgentryError(r.error.code as ErrorCode, r.error.message, { retryable: r.error.retryable, ...(r.error.details ? { details: r.error.details } : {}) });
      if (r.error.code !== 'NOT_READY') throw err;
      lastError = err;
    } catch (e) {
      if (e instanceof AgentryError) throw e;
      // The client's own error classes, not its messages (their wording may change between releases).
      const timedOut = e instanceof TimeoutError || (e instanceof RequestError && e.cause instanceof TimeoutError);
      const noResponders = e instanceof NoRespondersError || (e instanceof RequestError && e.isNoResponders());
      if (!timedOut && !noResponders) throw e;
      lastError = new AgentryError(timedOut ? 'TIMEOUT' : 'NOT_READY',
        timedOut ? `the node owning session ${sessionId} did not answer within ${timeoutMs} ms` : `no node owns the partition of session ${sessionId} right now`,
        { retryable: true, cause: e });
      if (timedOut) throw lastError;
    }
    await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
  }
  throw lastError;
}
