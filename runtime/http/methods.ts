/**
 * Owns what each JSON-RPC method does: validates params against its schema in
 * `client/protocol.ts`, calls the `Runtime` (which routes session commands to the owning node),
 * and shapes the result as the schema says. Registered under the canonical name and the
 * `async.` alias.
 */
import type { JSONRPCServer } from 'json-rpc-2.0';
import type { z } from 'zod';
import { AgentryError } from '../../actors/errors.js';
import { fateOf, type MessageFate } from '../../actors/types.js';
import { assertSessionId } from '../../actors/sessionId.js';
import { ALIAS_PREFIX, METHOD_NAMES, PROTOCOL_VERSION, methods, type MethodName, type ResultOf } from '../../client/index.js';
import type { Runtime } from '../runtime.js';
import type { SessionView } from '../host/sessionHost.js';
import type { HistoryEntry } from '../../persistence/types.js';
import { settleWithin } from '../deadline.js';
import { encodeCursor, listQueryOf, type ListParams } from './listCursor.js';
import { invalidParams } from './rpcErrors.js';
import type { RpcConnection } from './rpcConnection.js';
import { openNatsSubscriptions } from './subscriptions.js';

type ParsedParams<M extends MethodName> = z.output<(typeof methods)[M]['params']>;
type Impl<M extends MethodName> = (p: ParsedParams<M>, conn: RpcConnection) => Promise<ResultOf<M>>;
/** One implementation per method. */
export type MethodTable = { readonly [M in MethodName]: Impl<M> };

/** An ISO time or epoch milliseconds as epoch milliseconds; INVALID_ARGUMENT naming the param otherwise. */
function epochOf(v: string | number, name: string): number {
  const ms = typeof v === 'number' ? v : Date.parse(v);
  if (!Number.isFinite(ms)) throw new AgentryError('INVALID_ARGUMENT', `${name} must be an ISO 8601 time or epoch milliseconds`);
  return ms;
}

/** A `<createdAt>:<id>` cursor (dead letters, tasks) as its parts; INVALID_ARGUMENT naming the param otherwise. */
function rowCursorOf(v: string, name: string): { createdAt: number; id: string } {
  const m = /^(\d{1,16}):(.+)$/s.exec(v);
  if (!m) throw new AgentryError('INVALID_ARGUMENT', `${name} must be the \`next\` of a previous page`);
  return { createdAt: Number(m[1]), id: m[2]! };
}

/** The cursor of a page whose last row is `row` (null: the page was not full, so it is the last). */
function rowCursor(row: { createdAt: number; id: string } | undefined, full: boolean): string | null {
  return full && row ? `${row.createdAt}:${row.id}` : null;
}

/** `listAgents`' `count` stops here: a count costs at most this many index entries, however large the fleet. */
const LIST_COUNT_CAP = 10_000;

function viewResult(v: SessionView): ResultOf<'getAgent'> {
  return {
    agentId: v.agentId, type: v.type, tenant: v.tenant, tags: [...v.tags], state: v.state, stateValue: v.stateValue, policy: v.policy, userState: v.userState, lastSeq: v.lastSeq,
    wake: v.wake ? { until: v.wake.until, events: [...v.wake.events], mailPriority: v.wake.mailPriority, ...(v.wake.budget ? { budget: { ...v.wake.budget } } : {}) } : null,
    wait: v.wait ? { event: v.wait.event, replyFrom: v.wait.replyFrom, timeoutAt: v.wait.timeoutAt, waitpointId: v.wait.waitpoint?.id ?? null } : null,
    mailbox: { pending: v.mailbox.pending, running: v.mailbox.running, rejected: v.mailbox.rejected, deferred: v.mailbox.deferred.map((d) => ({ ...d })) },
    lastError: v.lastError ? { message: v.lastError.message, code: v.lastError.code, terminal: v.lastError.terminal } : null,
    live: v.live, updatedAt: v.updatedAt,
    ...(v.agentVersion !== undefined ? { agentVersion: v.agentVersion } : {}), ...(v.migrationError ? { migrationError: { ...v.migrationError } } : {}),
  };
}

function historyResult(h: HistoryEntry): ResultOf<'getHistory'>['messages'][number] {
  return { seq: h.seq, kind: h.kind, body: h.body, priority: h.priority, from: h.from, batchId: h.batchId, outcome: h.outcome, fate: (h.fate ?? fateOf(h.outcome, 1)) as MessageFate, at: h.at };
}

/**
 * Reads the cluster view from the lease bucket. Any failure there (NATS unreachable, the bucket
 * read timing out, leases not started yet) is NOT_READY and retryable, as other paths to an
 * unavailable NATS are: never INTERNAL, which would hide a passing outage behind a request id.
 */
async function clusterRead<T>(read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (e) {
    if (e instanceof AgentryError) throw e;
    throw new AgentryError('NOT_READY', `the lease bucket could not be read: ${(e as Error | null)?.message ?? String(e)}`, { retryable: true, cause: e });
  }
}

/**
 * The implementations over `runtime`. `openRpc` supplies the discovery document. Messages, mail
 * and cron tasks for a stopped session are refused here (instead of being dead-lettered later).
 * For an unknown session, a message or mail is accepted when the runtime has a default agent
 * type (its delivery creates the session, as in `agentry dev`); a cron task never is: a schedule
 * is a standing order that fires later, so like a Temporal schedule or a Restate delayed call it
 * needs a target that exists now (a typo in the id would otherwise create a session per firing).
 */
export function createMethodTable(runtime: Runtime, openRpc: () => Record<string, unknown>): MethodTable {
  /** Refuses messages for a stopped session; returns the session's view (null: it is created on delivery). */
  const acceptsMessages = async (agentId: string, verb: string, createsSession = true): Promise<SessionView | null> => {
    let v: SessionView;
    try {
      v = await runtime.getAgent(agentId);
    } catch (e) {
      if ((e as { code?: unknown }).code !== 'UNKNOWN_SESSION') throw e;
      if (createsSession && runtime.config.defaultAgentType !== undefined) return null;
      if (!createsSession) throw new AgentryError('UNKNOWN_SESSION', `no session ${agentId}: create it (createAgent) before you schedule tasks for it`);
      throw e;
    }
    if (v.state === 'stopped') throw new AgentryError('SESSION_STOPPED', `session ${agentId} is stopped: cannot ${verb}`, { details: { state: 'stopped' } });
    // The agent type's maxMailbox, as the owner sees the session now (a message that still finds it full on delivery is dead-lettered mailbox-full).
    const max = runtime.host.maxMailboxOf(v.type);
    const size = v.mailbox.pending + v.mailbox.running + v.mailbox.deferred.length;
    if (max !== undefined && size >= max) {
      throw new AgentryError('MAILBOX_FULL', `session ${agentId} holds ${size} messages not yet handled (maxMailbox ${max}): retry later`, { retryable: true, details: { size, maxMailbox: max } });
    }
    return v;
  };

  return {
    async setBudget(p) {
      const { limits, wait, ...ref } = p;
      return runtime.setBudget(ref, limits, wait ? { wait } : {});
    },
    async getBudget(p) {
      const r = await runtime.getBudget(p);
      return { ...r, limits: r.limits.map((l) => ({ ...l })), usage: r.usage.map((u) => ({ ...u, totals: { ...u.totals } })) };
    },
    async createAgent(p) {
      const v = await runtime.createAgent(p.agentId, p.type, p.state, p.policy || p.tenant || p.tags ? {
        ...(p.policy ? { policy: p.policy } : {}), ...(p.tenant ? { tenant: p.tenant } : {}), ...(p.tags ? { tags: p.tags } : {}),
      } : undefined);
      return { agentId: v.agentId, type: v.type, state: v.state };
    },
    async getAgent(p) {
      return viewResult(await runtime.getAgent(p.agentId));
    },
    async listAgents(p) {
      const limit = p.limit ?? 100;
      const params: ListParams = {
        ...p,
        ...(p.updatedAfter !== undefined ? { updatedAfter: epochOf(p.updatedAfter, 'updatedAfter') } : {}),
        ...(p.updatedBefore !== undefined ? { updatedBefore: epochOf(p.updatedBefore, 'updatedBefore') } : {}),
      } as ListParams;
      const query = listQueryOf(params);
      const filters = { ...query, from: undefined }; // the count ignores the cursor
      const [rows, total, stateCounts] = await Promise.all([
        runtime.listAgents({ ...query, limit: limit + 1 }),
        p.count ? runtime.store.countSessions(filters, LIST_COUNT_CAP + 1) : undefined,
        p.countByState ? runtime.store.countSessionsByStatus() : undefined,
      ]);
      const page = rows.slice(0, limit);
      return {
        agents: page.map((r) => ({ agentId: r.id, type: r.type, state: r.status, wakeAt: r.wakeAt, updatedAt: r.updatedAt, tenant: r.tenant, tags: [...r.tags] })),
        next: rows.length > limit ? encodeCursor(params, page[page.length - 1]!) : null,
        ...(total !== undefined ? { total: Math.min(total, LIST_COUNT_CAP), totalCapped: total > LIST_COUNT_CAP } : {}),
        ...(stateCounts ? { stateCounts: { ...stateCounts } } : {}),
      };
    },
    async sendMessage(p) {
      const v = await acceptsMessages(p.agentId, 'receive messages');
      const tenantOfMessage = p.tenant ?? v?.tenant ?? null;
      // Before anything is published; the message is stamped as charged, so this node's host does not count it again.
      const rate = tenantOfMessage !== null ? runtime.tenantRate : null;
      rate?.take(tenantOfMessage!);
      const rateCharged = rate !== null;
      if (p.tenant !== undefined && v && v.tenant !== p.tenant) {
        throw new AgentryError('TENANT_MISMATCH', `session ${p.agentId} ${v.tenant === null ? 'has no tenant' : `belongs to tenant ${v.tenant}`}, not ${p.tenant} (a session's tenant is set once, at creation)`, { details: { tenant: v.tenant } });
      }
      // A session whose own policy is reject answers its API senders as a per-message reject would.
      const policy = p.policy ?? (v?.policy === 'reject' ? 'reject' : undefined);
      return runtime.sendMessage(p.agentId, p.message, {
        ...(p.kind ? { kind: p.kind } : {}), ...(p.priority ? { priority: p.priority } : {}),
        ...(p.from ? { from: p.from } : {}), ...(p.msgId ? { msgId: p.msgId } : {}), ...(policy ? { policy } : {}),
        ...(p.traceparent ? { traceparent: p.traceparent } : {}), ...(p.tracestate ? { tracestate: p.tracestate } : {}),
        ...(p.expiresAt !== undefined ? { expiresAt: epochOf(p.expiresAt, 'expiresAt') } : {}),
        ...(p.tenant ? { tenant: p.tenant } : {}), ...(rateCharged ? { rateCharged } : {}),
      });
    },
    async sendMail(p) {
      const v = await acceptsMessages(p.to, 'receive mail');
      const rate = v?.tenant ? runtime.tenantRate : null;
      if (v?.tenant) rate?.take(v.tenant);
      const rateCharged = rate !== null;
      return runtime.sendMail(p.to, p.body, { priority: p.priority ?? 'normal', ...(p.from ? { from: p.from } : {}), ...(rateCharged ? { rateCharged } : {}) });
    },
    async sleepAgent(p) {
      const v = await runtime.sleepAgent(p.agentId, {
        ...(p.until !== undefined ? { until: p.until } : {}), ...(p.untilTime !== undefined ? { untilTime: p.untilTime } : {}),
        ...(p.durationMs !== undefined ? { durationMs: p.durationMs } : {}),
        ...(p.wakeEvents ? { wakeEvents: p.wakeEvents } : {}), ...(p.wakeOnMailPriority ? { wakeOnMailPriority: p.wakeOnMailPriority } : {}),
      });
      return { agentId: v.agentId, state: v.state, wakeAt: v.wake?.until ?? null };
    },
    async wakeAgent(p) {
      const v = await runtime.wakeAgent(p.agentId);
      return { agentId: v.agentId, state: v.state };
    },
    async stopAgent(p) {
      const v = await runtime.stopAgent(p.agentId, p.reason);
      return { agentId: v.agentId, state: v.state };
    },
    async interruptAgent(p) {
      const v = await runtime.interruptAgent(p.agentId, p.reason);
      return { agentId: v.agentId, state: v.state, interrupted: v.interrupted };
    },
    async scheduleTask(p) {
      await acceptsMessages(p.agentId, 'receive tasks', false); // each firing is an inbox message, to a session that exists now
      return runtime.scheduleTask(p.agentId, p.task, p.schedule, { ...(p.timezone ? { timezone: p.timezone } : {}), ...(p.taskId ? { taskId: p.taskId } : {}) });
    },
    async cancelTask(p) {
      return runtime.cancelTask(p.taskId);
    },
    async listTasks(p) {
      if (p.agentId !== undefined) assertSessionId(p.agentId);
      const limit = p.limit ?? 1000;
      const rows = await runtime.listTasks(p.agentId, {
        ...(p.tenant ? { tenant: p.tenant } : {}), ...(p.after !== undefined ? { after: rowCursorOf(p.after, 'after') } : {}), limit: limit + 1,
      });
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return { tasks: page.map((t) => ({ ...t })), next: rowCursor(last && { createdAt: last.createdAt, id: last.taskId }, rows.length > limit) };
    },
    async listTenants(p) {
      const limit = p.limit ?? 100;
      const rows = await runtime.listTenants({ ...(p.after !== undefined ? { after: p.after } : {}), limit: limit + 1 });
      const page = rows.slice(0, limit);
      return {
        tenants: page.map((t) => ({ tenant: t.tenant, sessions: t.sessions, byState: { ...t.byStatus } })),
        next: rows.length > limit ? page[page.length - 1]!.tenant : null,
      };
    },
    async completeWaitpoint(p) {
      return runtime.waitpoints.complete(p.id, p.value ?? null);
    },
    async cancelWaitpoint(p) {
      return runtime.waitpoints.cancel(p.id);
    },
    async listWaitpoints(p) {
      if (p.agentId !== undefined) assertSessionId(p.agentId);
      const r = await runtime.waitpoints.list({
        status: p.status === 'any' ? null : (p.status ?? 'pending'), ...(p.agentType ? { agentType: p.agentType } : {}),
        ...(p.agentId ? { sessionId: p.agentId } : {}), ...(p.tag ? { tag: p.tag } : {}),
        ...(p.olderThanMs !== undefined ? { olderThanMs: p.olderThanMs } : {}), ...(p.after !== undefined ? { after: p.after } : {}),
        ...(p.limit !== undefined ? { limit: p.limit } : {}),
      });
      return { waitpoints: r.waitpoints.map((w) => ({ ...w, tags: [...w.tags] })), next: r.next };
    },
    async publishEvent(p) {
      return runtime.publishEvent(p.type, p.data, { ...(p.priority ? { priority: p.priority } : {}), ...(p.from ? { from: p.from } : {}), ...(p.msgId ? { msgId: p.msgId } : {}) });
    },
    async scheduleWake(p) {
      const v = await runtime.scheduleWake(p.agentId, epochOf(p.at, 'at'));
      return { agentId: v.agentId, state: v.state, wakeAt: v.wake?.until ?? null };
    },
    async cancelWake(p) {
      const v = await runtime.cancelWake(p.agentId);
      return { agentId: v.agentId, state: v.state, wakeAt: v.wake?.until ?? null };
    },
    async getNextWakeTime(p) {
      return { agentId: p.agentId, wakeAt: await runtime.getNextWakeTime(p.agentId) };
    },
    async listEvents(p) {
      if (p.order === 'newest') {
        const page = await runtime.eventLog({
          ...(p.type !== undefined ? { pattern: p.type } : {}), ...(p.from !== undefined ? { from: p.from } : {}),
          ...(p.since !== undefined ? { since: epochOf(p.since, 'since') } : {}), ...(p.until !== undefined ? { until: epochOf(p.until, 'until') } : {}),
          ...(p.before !== undefined ? { before: p.before } : {}), limit: p.limit ?? 100,
        });
        return { events: page.events.map((e) => ({ seq: e.seq, type: e.type, data: e.data, priority: e.priority, from: e.from, at: e.at })), next: page.next };
      }
      for (const k of ['until', 'from', 'before'] as const) {
        if (p[k] !== undefined) throw new AgentryError('INVALID_ARGUMENT', `${k} needs order 'newest' (the oldest-first history takes type, since and limit)`);
      }
      const events = await runtime.listEvents({
        ...(p.type !== undefined ? { type: p.type } : {}), ...(p.since !== undefined ? { since: epochOf(p.since, 'since') } : {}), limit: p.limit ?? 100,
      });
      return { events: events.map((e) => ({ seq: e.seq, type: e.type, data: e.data, priority: e.priority, from: e.from, at: e.at })) };
    },
    async getHistory(p) {
      const rows = await runtime.getHistory(p.agentId, { limit: p.limit ?? 50, ...(p.before !== undefined ? { before: p.before } : {}) });
      return { messages: rows.map(historyResult) };
    },
    async getTransitions(p) {
      const rows = await runtime.getTransitions(p.agentId, { limit: p.limit ?? 100, ...(p.after !== undefined ? { after: p.after } : {}), ...(p.frames ? { frames: true } : {}) });
      return { transitions: rows.map((t) => ({ ...(t.id !== undefined ? { id: t.id } : {}), at: t.at, event: t.event, from: t.from, to: t.to, ...(p.frames ? { frame: t.frame ?? null } : {}) })) };
    },
    async getSessionAt(p) {
      const r = await runtime.getSessionAt(p.agentId, p.transition, { ...(p.until !== undefined ? { until: p.until } : {}), historyLimit: p.historyLimit ?? 200 });
      const step = (t: typeof r.step) => ({ ...(t.id !== undefined ? { id: t.id } : {}), at: t.at, event: t.event, from: t.from, to: t.to });
      const wp = r.agent?.wait?.waitpoint;
      return {
        step: step(r.step), agent: r.agent ? viewResult(r.agent) : null, userStateRecorded: r.userStateRecorded, event: r.event,
        waitpoint: wp ? { id: wp.id, schema: wp.schema, hasDefault: wp.hasDefault, default: wp.default, tags: [...wp.tags] } : null,
        mailbox: r.mailbox ? {
          pending: [...r.mailbox.pending], running: [...r.mailbox.running], deferred: [...r.mailbox.deferred], rejected: [...r.mailbox.rejected],
          ...(r.mailbox.pendingOmitted ? { pendingOmitted: { ...r.mailbox.pendingOmitted } } : {}),
        } : null,
        previous: r.previous ? { step: step(r.previous.step), agent: r.previous.agent ? viewResult(r.previous.agent) : null } : null,
        history: r.history.map(historyResult),
      };
    },
    async replaySession(p) {
      const r = await runtime.replaySession(p.agentId, p.maxMessages !== undefined ? { maxMessages: p.maxMessages } : {});
      return { ...r, differences: r.differences.map((d) => ({ ...d, seqs: [...d.seqs], paths: [...d.paths] })) };
    },
    async forkSession(p) {
      return runtime.forkSession(p.agentId, { at: p.at, ...(p.newId ? { newId: p.newId } : {}) });
    },
    async listDeadLetters(p) {
      if (p.agentId !== undefined) assertSessionId(p.agentId);
      const limit = p.limit ?? 100;
      const rows = await runtime.listDeadLetters({
        ...(p.agentId !== undefined ? { sessionId: p.agentId } : {}), ...(p.reason ? { reason: p.reason } : {}),
        ...(p.agentType ? { agentType: p.agentType } : {}), ...(p.tenant ? { tenant: p.tenant } : {}),
        ...(p.since !== undefined ? { since: epochOf(p.since, 'since') } : {}), ...(p.until !== undefined ? { until: epochOf(p.until, 'until') } : {}),
        ...(p.replayed !== undefined ? { replayed: p.replayed } : {}), ...(p.before !== undefined ? { before: rowCursorOf(p.before, 'before') } : {}),
        limit: limit + 1,
      });
      const page = rows.slice(0, limit);
      return {
        deadLetters: page.map((d) => ({
          id: d.id, agentId: d.sessionId, reason: d.reason, error: d.error, attempts: d.attempts, payload: d.payload, createdAt: d.createdAt, replayedAt: d.replayedAt,
          agentType: d.agentType ?? null,
        })),
        next: rowCursor(page[page.length - 1], rows.length > limit),
      };
    },
    async replayDeadLetters(p) {
      return { results: (await runtime.replayDeadLetters(p.ids, { force: p.force === true })).map((r) => ({ ...r })) };
    },
    async discardDeadLetters(p) {
      return { results: (await runtime.discardDeadLetters(p.ids)).map((r) => ({ ...r })) };
    },
    async replayDeadLetter(p) {
      return runtime.replayDeadLetter(p.id);
    },
    async deadLetterInboxMessage(p) {
      return runtime.deadLetterInboxMessage(p.seq, p.reason);
    },
    async listNodes() {
      const nodes = await clusterRead(() => runtime.listNodes());
      return { nodes: nodes.map((n) => ({ ...n, partitions: [...n.partitions] })), leaseTtlMs: runtime.config.leaseTtlMs };
    },
    async getPartitions() {
      const partitions = await clusterRead(() => runtime.getPartitions());
      return { partitions: partitions.map((p) => ({ ...p })), leaseTtlMs: runtime.config.leaseTtlMs };
    },
    async subscribe(p, conn) {
      if (p.agentId !== undefined) assertSessionId(p.agentId);
      const nc = runtime.transport.nc;
      if (nc.isClosed()) throw new AgentryError('NOT_READY', 'the NATS connection is closed', { retryable: true });
      const subscriptionId = conn.addSubscription((sink) => openNatsSubscriptions(nc, {
        kinds: p.kinds, ...(p.agentId !== undefined ? { agentId: p.agentId } : {}), ...(p.pattern !== undefined ? { pattern: p.pattern } : {}),
      }, sink));
      // Answer once the NATS server has the subscriptions (a flush is a round trip behind them):
      // then whatever any node publishes after the answer reaches them. A server that does not
      // answer in time (NATS down) gets the answer anyway: nothing would arrive before it is back.
      await settleWithin(nc.flush(), 2_000);
      return { subscriptionId };
    },
    unsubscribe(p, conn) {
      return Promise.resolve({ unsubscribed: conn.removeSubscription(p.subscriptionId) });
    },
    ping() {
      return Promise.resolve({ pong: true as const, at: Date.now(), protocol: PROTOCOL_VERSION });
    },
    'rpc.discover'() {
      return Promise.resolve(openRpc());
    },
  };
}

/** Adds every method (and its `async.` alias) to the JSON-RPC server, with params validation. */
export function registerMethods(server: JSONRPCServer<RpcConnection>, table: MethodTable): void {
  for (const name of METHOD_NAMES) {
    const schema = methods[name].params;
    const impl = table[name] as (p: unknown, conn: RpcConnection) => Promise<unknown>;
    const handler = (params: unknown, conn: RpcConnection): Promise<unknown> => {
      const parsed = schema.safeParse(params ?? {});
      if (!parsed.success) throw invalidParams(parsed.error, schema);
      return impl(parsed.data, conn);
    };
    server.addMethod(name, handler);
    server.addMethod(`${ALIAS_PREFIX}${name}`, handler);
  }
}
