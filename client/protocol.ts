/**
 * Owns the wire contract of the control API: the zod schema of every JSON-RPC method's params
 * and result, the notification shape, and the error codes each method can return. The server
 * validates params with these schemas, `/openrpc.json` is generated from them, and the typed
 * client derives its signatures from them, so the three cannot drift apart.
 *
 * Conventions: times are epoch milliseconds; params objects are strict (an unknown key is
 * -32602, so a typo such as `untill` for `until` never passes silently); results may grow
 * new fields. Params Postgres could not store — a NUL character or a lone UTF-16 surrogate in
 * any string or key, or a value nested deeper than the server's `maxJsonDepth` (64) — are
 * refused by every method as -32602 with `data.type` UNSTORABLE_INPUT (`data.problem`,
 * `data.path`); the methods that carry payloads list it among their errors.
 */
import { z } from 'zod';

// In browsers, skip zod's compiled fast path: it probes `new Function`, which a page with a strict
// Content-Security-Policy (such as the inspector's) reports as a violation. Node keeps the JIT.
if (typeof (globalThis as { document?: unknown }).document !== 'undefined') z.config({ jitless: true });

/** Version of this contract, reported by `ping` and in the OpenRPC document. */
export const PROTOCOL_VERSION = '1.0.0';

const priority = z.enum(['low', 'normal', 'high', 'urgent']).describe('message priority; sleepers wake for mail at or above their threshold');
const sessionState = z.enum(['idle', 'active', 'sleeping', 'waiting', 'stopped']);
const turnPolicy = z.enum(['queue', 'cancel-and-merge', 'latest', 'reject', 'debounce', 'rollback'])
  .describe('what a message arriving during a turn does: queue, cancel-and-merge (default), latest, reject, debounce, rollback');
const agentId = z.string().describe("session id: 1-128 characters, no '.', '*', '>' or whitespace (it becomes a NATS subject token)");
const epochMs = z.number().describe('epoch milliseconds');
const limit = (max: number, dflt: number) => z.number().int().min(1).max(max).optional().describe(`page size (default ${dflt}, at most ${max})`);

// ---- result pieces -------------------------------------------------------------------------

const wakeCondition = z.object({
  until: epochMs.nullable(),
  events: z.array(z.string()),
  mailPriority: priority.nullable(),
  budget: z.lazy(() => budgetHold).nullable().optional().describe('set when a budget limit with policy pause holds the session: raising it (setBudget) resumes it'),
});
const waitCondition = z.object({
  event: z.string().nullable(),
  replyFrom: z.string().nullable(),
  timeoutAt: epochMs.nullable(),
  waitpointId: z.string().nullable().optional().describe('the waitpoint the session waits on (ctx.waitFor({ waitpoint }))'),
});
const tenant = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1-64 characters of [A-Za-z0-9_-]').describe('tenant: set once, when the session is created; 1-64 characters of [A-Za-z0-9_-]');
const tag = z.string().regex(/^[A-Za-z0-9_:.-]{1,64}$/, 'must be 1-64 characters of [A-Za-z0-9_:.-]').describe('a tag: 1-64 characters of [A-Za-z0-9_:.-]');
const budgetHold = z.object({ scope: z.string(), key: z.string(), metric: z.string(), window: z.string(), max: z.string(), policy: z.string() });
const agentView = z.object({
  agentId: z.string(),
  type: z.string(),
  tenant: z.string().nullable().optional().describe("the session's tenant (null: none)"),
  tags: z.array(z.string()).optional().describe("the session's tags (set at creation; empty: none)"),
  state: sessionState,
  stateValue: z.string().describe("full state path, e.g. 'active.retrying'"),
  policy: turnPolicy.describe("the session's turn policy (the agent type's, or the one createAgent set)"),
  userState: z.unknown(),
  lastSeq: z.number(),
  wake: wakeCondition.nullable(),
  wait: waitCondition.nullable(),
  mailbox: z.object({
    pending: z.number(),
    running: z.number(),
    rejected: z.number().describe('messages refused by turn policy reject whose refusal commits with the turn that runs now'),
    deferred: z.array(z.object({ seq: z.number(), kind: z.string(), priority, from: z.string().optional(), at: epochMs })),
  }),
  lastError: z.object({ message: z.string(), code: z.string(), terminal: z.boolean() }).nullable(),
  live: z.boolean().describe('true when the actor is in memory on the serving node'),
  updatedAt: epochMs.nullable().describe('when the last change was committed (live or stored alike)'),
  agentVersion: z.number().optional().describe("the agent version of the session's snapshot (defineAgent version; 1 before versioning)"),
  migrationError: z.object({
    code: z.literal('MIGRATION_FAILED'),
    reason: z.enum(['newer-version', 'no-path', 'migrate-threw', 'invalid-state']),
    fromVersion: z.number(), toVersion: z.number(), message: z.string(),
  }).optional().describe('set when the running code cannot take the stored snapshot: the session keeps it and its messages until a deploy can'),
});
const agentSummary = z.object({ agentId: z.string(), type: z.string(), state: sessionState, wakeAt: epochMs.nullable(), updatedAt: epochMs, tenant: z.string().nullable().optional(), tags: z.array(z.string()).optional() });
const budgetLimit = z.strictObject({
  metric: z.enum(['tokens', 'tokensIn', 'tokensOut', 'cost', 'toolCalls', 'wallMs', 'turns']).describe('what is counted; tokens = reserved + in + out'),
  max: z.union([z.number().int().min(0), z.string().max(40)]).describe('an integer, or for cost a decimal string (at most 12 fraction digits)'),
  window: z.string().max(8).optional().describe("lifetime (default), day (UTC) or <N>h (the rolling last N hours)"),
  policy: z.enum(['warn', 'ask', 'pause', 'abort']).optional().describe('on a breach: warn (event budget.warning), ask (a waitpoint for a person), pause (sleep until raised), abort (dead letter budget; default)'),
});
const budgetRef = {
  agentId: agentId.optional().describe('a session (its own limits; getBudget shows every limit that applies to it)'),
  tenant: tenant.optional().describe('a tenant (limits on all its sessions together)'),
  agentType: z.string().min(1).max(64).optional().describe("an agent type (limits of each of its sessions; replaces defineAgent's)"),
};
const totals = z.record(z.string(), z.string()).describe('tokens, tokensIn, tokensOut, cost, toolCalls, wallMs, turns as decimal strings');
const stateResult = z.object({ agentId: z.string(), state: sessionState });
const seqResult = z.object({ seq: z.number().describe('JetStream sequence of the stored message') });
const taskInfo = z.object({
  taskId: z.string(), agentId: z.string(), task: z.unknown(), schedule: z.string(), timezone: z.string(),
  nextRunAt: epochMs.nullable(), lastRunAt: epochMs.nullable(),
  createdAt: epochMs.optional().describe('when it was scheduled (tasks are listed in this order)'),
});
const historyMessage = z.object({
  seq: z.number(), kind: z.string(), body: z.unknown(), priority: z.string(), from: z.string().nullable(),
  batchId: z.string().describe('handler run the message was part of (merged messages share one)'),
  outcome: z.string(),
  fate: z.enum(['handled', 'merged', 'superseded', 'rejected', 'rolled-back', 'dead-letter', 'interrupted', 'stopped'])
    .describe('what became of the message: handled, merged (one turn with others), superseded (latest), rejected (reject), rolled-back (rollback), or dead-letter / interrupted / stopped'),
  at: epochMs,
});
const mailboxEntry = z.object({ seq: z.number(), kind: z.string(), priority: z.string(), at: epochMs, from: z.string().optional(), eventType: z.string().optional() });
const waitpointId = z.string().min(1).max(64).describe('the waitpoint id (22 base64url characters: the capability that completes it)');
const waitpointInfo = z.object({
  id: z.string(), agentId: z.string(), agentType: z.string(),
  status: z.enum(['pending', 'completed', 'cancelled', 'timed-out']),
  schema: z.unknown().describe('JSON Schema the value must match'),
  default: z.unknown().describe('the value a timeout completes it with (when hasDefault)'),
  hasDefault: z.boolean(),
  tags: z.array(z.string()),
  value: z.unknown().describe('the settled value (null while pending)'),
  createdAt: epochMs, expiresAt: epochMs.nullable(), settledAt: epochMs.nullable(),
});
const transition = z.object({ id: z.number().int().optional().describe('transition id (forkSession at: { transition })'), at: epochMs, event: z.string(), from: z.string(), to: z.string() });
const deadLetter = z.object({
  id: z.string(), agentId: z.string(), reason: z.string(), error: z.string().nullable(), attempts: z.number(),
  payload: z.unknown(), createdAt: epochMs, replayedAt: epochMs.nullable(),
  agentType: z.string().nullable().optional().describe("its session's agent type (null: no such session)"),
});
const timeParam = z.union([z.string().max(64), z.number()]);
const bulkError = z.object({ type: z.string(), message: z.string(), retryable: z.boolean() });
const bulkIds = z.array(z.string().min(1).max(512)).min(1).max(100).describe('dead-letter ids, 1-100 (repeats count once)');

const nodeInfo = z.object({
  nodeId: z.string(),
  self: z.boolean().describe('true for the node that answered'),
  version: z.string().nullable().describe('the agentry-runtime version the node runs (null: not reported)'),
  startedAt: epochMs.nullable(),
  uptimeMs: z.number().nullable(),
  heartbeatAgeMs: z.number().describe('age of its last heartbeat (written every quarter of the lease TTL; a node whose heartbeat is older than the TTL is gone)'),
  partitions: z.array(z.number().int()).describe('partitions whose lease names it now'),
  liveSessions: z.number().nullable().describe('session actors in memory on it'),
  activeSessions: z.number().nullable().describe('sessions whose handler runs on it now'),
  leaseRenewalAgeMs: z.number().nullable().describe('how long ago its oldest lease was renewed, as it last reported: near leaseTtlMs its partitions are suspended'),
  clockOffsetMs: z.number().nullable().optional().describe("Postgres' clock minus the node's wall clock in ms, as it last measured (null: not measured; absent: an older node); the runtime keeps time by the store's clock, a large value means the host's NTP is broken"),
});
const partitionInfo = z.object({
  partition: z.number().int(),
  nodeId: z.string().nullable().describe('the owner; null when the partition is free'),
  epoch: z.number().nullable().describe("fencing epoch of the owner's lease (its commits carry it)"),
  renewalAgeMs: z.number().nullable().describe('how long ago the owner last renewed the lease'),
});
const leaseTtlMs = z.number().describe("the answering node's lease TTL (AGENTRY_LEASE_TTL_MS): a lease not renewed for this long expires");

/** Kinds of notification a subscription can ask for. */
export const SUBSCRIPTION_KINDS = ['state', 'output', 'event'] as const;
export type SubscriptionKind = (typeof SUBSCRIPTION_KINDS)[number];

/** An event-type pattern: dot-separated tokens, `*` for one token, `>` for the rest. */
const eventPattern = z.string().max(256).regex(/^(\*|[A-Za-z0-9_-]+)(\.(\*|[A-Za-z0-9_-]+))*(\.>)?$|^>$/, 'must be dot-separated tokens of [A-Za-z0-9_-], * or a final >');

// ---- methods -------------------------------------------------------------------------------

/** One method: what it does, its params and result schemas, and the application errors it can return. */
export interface MethodSpec {
  readonly summary: string;
  readonly params: z.ZodType;
  readonly result: z.ZodType;
  readonly errors: readonly string[];
}

const SESSION_ERRORS = ['INVALID_SESSION_ID', 'UNKNOWN_SESSION'] as const;

/** Every method of the API, by canonical name (`async.<name>` is accepted as an alias of each). */
export const methods = {
  createAgent: {
    summary: 'Creates a session of a registered agent type; resolves after its first commit.',
    params: z.strictObject({
      agentId,
      type: z.string().min(1).describe('agent type (as registered with defineAgent)'),
      config: z.strictObject({
        checkMailInterval: z.number().optional(),
        maxConcurrentTasks: z.number().int().optional(),
        wakeOnPriority: priority.optional(),
      }).optional().describe('accepted for compatibility with existing clients; not used yet (sleeps take their own wakeOnMailPriority)'),
      state: z.unknown().optional().describe('initial user state (default: the agent\'s initialState())'),
      policy: turnPolicy.optional().describe("this session's turn policy, instead of its agent type's (stored with the session)"),
      tenant: tenant.optional(),
      tags: z.array(tag).max(16, 'at most 16 tags').optional().describe('labels to find the session by (listAgents tag); set once, at creation; duplicates are kept once'),
    }),
    result: z.object({ agentId: z.string(), type: z.string(), state: sessionState }),
    errors: ['INVALID_SESSION_ID', 'UNKNOWN_AGENT_TYPE', 'SESSION_EXISTS', 'UNSTORABLE_INPUT', 'INVALID_ARGUMENT', 'RATE_LIMITED'],
  },
  getAgent: {
    summary: 'Returns the current view of a session (live or stored).',
    params: z.strictObject({ agentId }),
    result: agentView,
    errors: SESSION_ERRORS,
  },
  listAgents: {
    summary: 'Lists sessions a page at a time: filtered (state, type, tenant, tag, id prefix or substring, last activity) and sorted on the server; pass `next` of one page as `after` to get the following page (keyset: no page is skipped or repeated for sessions that did not change meanwhile).',
    params: z.strictObject({
      status: sessionState.optional().describe('one state (older spelling of state)'),
      state: z.union([sessionState, z.array(sessionState).min(1).max(5)]).optional().describe('only sessions in this state, or in any of these states'),
      type: z.string().max(256).optional().describe('only sessions of this agent type'),
      idPrefix: z.string().min(1).max(128).optional().describe('only sessions whose id starts with this (case-sensitive; no wildcards; uses the id index)'),
      idContains: z.string().max(128).optional().describe('only sessions whose id contains this (case-sensitive; reads every row: prefer idPrefix on large fleets)'),
      tenant: tenant.optional().describe('only sessions of this tenant'),
      tag: tag.optional().describe('only sessions carrying this tag'),
      updatedAfter: z.union([z.string().max(64), z.number()]).optional().describe('last activity at or after this time (ISO 8601 or epoch milliseconds)'),
      updatedBefore: z.union([z.string().max(64), z.number()]).optional().describe('last activity before this time (ISO 8601 or epoch milliseconds)'),
      sort: z.enum(['agentId', 'updatedAt', 'type', 'state']).optional().describe("order (default agentId); type and state then list newest activity first within a group; ties break by id"),
      order: z.enum(['asc', 'desc']).optional().describe('direction (default desc for updatedAt, asc otherwise)'),
      after: z.string().max(1024).optional().describe('cursor: `next` of the previous page, with the same sort and order'),
      limit: limit(500, 100),
      count: z.boolean().optional().describe('also return total: the sessions that pass the filters, counted up to 10,000'),
      countByState: z.boolean().optional().describe('also return stateCounts: all sessions by state, ignoring the filters'),
    }),
    result: z.object({
      agents: z.array(agentSummary),
      next: z.string().nullable().describe('cursor of the next page; null on the last page'),
      total: z.number().optional().describe('with count: sessions that pass the filters (at most 10,000; see totalCapped)'),
      totalCapped: z.boolean().optional().describe('with count: true when more than 10,000 pass the filters'),
      stateCounts: z.record(sessionState, z.number()).optional().describe('with countByState: sessions by state'),
    }),
    errors: ['UNSTORABLE_INPUT', 'INVALID_ARGUMENT'],
  },
  sendMessage: {
    summary: "Publishes a message to a session's inbox (JetStream); resolves when it is stored, not when it is handled.",
    params: z.strictObject({
      agentId,
      message: z.unknown().describe('the message: any JSON; strings are delivered as text'),
      priority: priority.optional(),
      kind: z.enum(['message', 'task', 'event', 'control']).optional().describe("Agentry-Kind (default 'message'; use sendMail for mail)"),
      from: z.string().max(256).optional(),
      msgId: z.string().min(1).max(256).optional().describe('de-duplication id: a repeat within 2 minutes is dropped'),
      policy: turnPolicy.optional().describe("this message's turn policy (header Agentry-Turn-Policy), instead of the session's; with reject the call answers once the session took or refused it"),
      traceparent: z.string().regex(/^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/).optional().describe('W3C trace context to continue (stored with the message; the reply carries the run\'s traceparent)'),
      tracestate: z.string().max(512).regex(/^[\x20-\x7e]*$/).optional().describe('W3C tracestate that goes with traceparent'),
      expiresAt: z.union([z.string().max(64), z.number()]).optional().describe('ISO 8601 or epoch milliseconds (header Agentry-Expires-At): a message not yet handled by then is dead-lettered with reason expired, never run late'),
      tenant: tenant.optional().describe("the sender's tenant (header Agentry-Tenant): sets a new session's tenant; another tenant than the session's is TENANT_MISMATCH"),
    }),
    result: seqResult,
    errors: [...SESSION_ERRORS, 'SESSION_STOPPED', 'SESSION_BUSY', 'MAILBOX_FULL', 'MIGRATION_FAILED', 'TENANT_MISMATCH', 'RATE_LIMITED', 'PAYLOAD_TOO_LARGE', 'UNSTORABLE_INPUT', 'NOT_READY'],
  },
  sendMail: {
    summary: "Sends mail (a message with a sender and a priority) to a session's inbox; a sleeper wakes when the priority reaches its threshold.",
    params: z.strictObject({ to: agentId, from: z.string().max(256).optional(), body: z.unknown(), priority: priority.optional().describe("default 'normal'") }),
    result: seqResult,
    errors: [...SESSION_ERRORS, 'SESSION_STOPPED', 'MAILBOX_FULL', 'MIGRATION_FAILED', 'PAYLOAD_TOO_LARGE', 'UNSTORABLE_INPUT', 'NOT_READY'],
  },
  sleepAgent: {
    summary: 'Puts a session to sleep until a time, a listed event, mail at or above a priority, or wakeAgent.',
    params: z.strictObject({
      agentId,
      until: z.union([z.string(), z.number()]).optional().describe('wake at this time: ISO 8601 or epoch milliseconds (as ctx.sleep({ until }))'),
      untilTime: z.union([z.string(), z.number()]).optional().describe('deprecated alias of until (give one of them)').meta({ deprecated: true }),
      durationMs: z.number().int().min(0).optional().describe('alternative to until: wake after this long'),
      wakeEvents: z.array(z.string().min(1).max(256)).max(100).optional(),
      wakeOnMailPriority: priority.optional(),
    }),
    result: z.object({ agentId: z.string(), state: sessionState, wakeAt: epochMs.nullable() }),
    errors: [...SESSION_ERRORS, 'INVALID_ARGUMENT', 'INVALID_TRANSITION'],
  },
  wakeAgent: {
    summary: 'Wakes a sleeping or waiting session now.',
    params: z.strictObject({ agentId }),
    result: stateResult,
    errors: [...SESSION_ERRORS, 'INVALID_TRANSITION'],
  },
  stopAgent: {
    summary: 'Stops a session for good; later messages are dead-lettered; its history stays readable.',
    params: z.strictObject({ agentId, reason: z.string().max(1024).optional() }),
    result: stateResult,
    errors: [...SESSION_ERRORS, 'INVALID_TRANSITION'],
  },
  interruptAgent: {
    summary: 'Aborts the running handler (its batch is kept in history as interrupted); the session returns to idle.',
    params: z.strictObject({ agentId, reason: z.string().max(1024).optional() }),
    result: z.object({ agentId: z.string(), state: sessionState, interrupted: z.boolean() }),
    errors: [...SESSION_ERRORS, 'INVALID_TRANSITION'],
  },
  scheduleTask: {
    summary: "Schedules a cron task (croner syntax, IANA time zone); each firing reaches the session's inbox as a `task`.",
    params: z.strictObject({
      agentId,
      task: z.unknown().describe('the body of each task message: any JSON, null for none'),
      schedule: z.string().min(1).max(256).describe("cron expression, e.g. '0 9 * * 1-5' (seconds field optional)"),
      timezone: z.string().max(64).optional().describe("IANA time zone (default 'UTC')"),
      taskId: z.string().min(1).max(128).optional().describe('stable id (default: generated)'),
    }),
    result: z.object({ taskId: z.string(), nextRunAt: epochMs.nullable() }),
    errors: [...SESSION_ERRORS, 'SESSION_STOPPED', 'INVALID_ARGUMENT', 'UNSTORABLE_INPUT'],
  },
  cancelTask: {
    summary: 'Cancels a scheduled task.',
    params: z.strictObject({ taskId: z.string().min(1).max(128) }),
    result: z.object({ cancelled: z.boolean() }),
    errors: [],
  },
  listTasks: {
    summary: 'Lists scheduled tasks, of one session or all, oldest first; page with `after` (the `next` of the previous page).',
    params: z.strictObject({
      agentId: agentId.optional(),
      tenant: tenant.optional().describe("only tasks of this tenant's sessions"),
      after: z.string().max(256).optional().describe('cursor: `next` of the previous page'),
      limit: limit(1000, 1000),
    }),
    result: z.object({ tasks: z.array(taskInfo), next: z.string().nullable().optional().describe('cursor of the next page; null on the last page') }),
    errors: ['INVALID_SESSION_ID', 'INVALID_ARGUMENT'],
  },
  listTenants: {
    summary: 'Lists tenants (of stored sessions, or with budget limits) in name order with their sessions by state; page with `after`. getBudget({ tenant }) has each one\'s limits and usage.',
    params: z.strictObject({
      after: z.string().max(64).optional().describe('cursor: `next` of the previous page'),
      limit: limit(1000, 100),
    }),
    result: z.object({
      tenants: z.array(z.object({
        tenant: z.string(), sessions: z.number().describe('stored sessions of the tenant'),
        byState: z.record(z.string(), z.number()).describe('idle, active, sleeping, waiting, stopped: sessions in each'),
      })),
      next: z.string().nullable().describe('cursor of the next page; null on the last page'),
    }),
    errors: [],
  },
  setBudget: {
    summary: 'Sets the budget limits of one session, tenant or agent type (null removes them), at once; resumes the sessions the scope held (paused, or asking a person): at once, and in a second pass at secondPassAt (for sessions a node with the old limits held meanwhile).',
    params: z.strictObject({
      ...budgetRef, limits: z.array(budgetLimit).max(50).nullable(),
      wait: z.boolean().optional().describe('also wait for the second pass (about 3 s) and report resumedLater'),
    }),
    result: z.object({
      scope: z.enum(['session', 'tenant', 'type']), key: z.string(),
      limits: z.array(z.object({ metric: z.string(), max: z.string(), window: z.string(), policy: z.string() })).nullable(),
      resumed: z.number().describe('held sessions the first pass resumed, at once (each checks its limits again before its next turn); the second pass is not counted here'),
      secondPassAt: z.number().describe('when the second pass looks for held sessions again (epoch ms)'),
      resumedLater: z.number().optional().describe('with wait: held sessions the second pass resumed (absent if it did not finish within its deadline)'),
    }),
    errors: ['INVALID_ARGUMENT', 'INVALID_SESSION_ID'],
  },
  getBudget: {
    summary: "Returns the budget limits and usage of one session (every limit that applies to it: its type's, its own, its tenant's), tenant or agent type.",
    params: z.strictObject(budgetRef),
    result: z.object({
      scope: z.enum(['session', 'tenant', 'type']), key: z.string(), tenant: z.string().nullable().optional(),
      limits: z.array(z.object({
        scope: z.string(), key: z.string(), source: z.enum(['definition', 'api']),
        metric: z.string(), max: z.string(), window: z.string(), policy: z.string(),
        used: z.string().optional().describe('usage in the current window'), exceeded: z.boolean().optional(),
      })),
      usage: z.array(z.object({ window: z.string(), windowStart: epochMs, totals, open: z.number().describe('reservations not settled yet') })),
      held: z.record(z.string(), z.unknown()).nullable().optional().describe('the limit holding the session (pause or ask)'),
    }),
    errors: [...SESSION_ERRORS, 'INVALID_ARGUMENT'],
  },
  completeWaitpoint: {
    summary: "Completes a pending waitpoint with a value matching its schema; its session resumes with it. Completing again with the same value is a no-op success (duplicate: true); with another value WAITPOINT_CONFLICT. Also POST /waitpoints/<id>, which needs no token.",
    params: z.strictObject({ id: waitpointId, value: z.unknown().describe('the value (JSON), validated against the waitpoint\'s schema') }),
    result: z.object({
      id: z.string(), agentId: z.string(), status: z.literal('completed'),
      duplicate: z.boolean().describe('true when it had been completed with this value before: nothing changed'),
    }),
    errors: ['UNKNOWN_WAITPOINT', 'WAITPOINT_CONFLICT', 'WAITPOINT_CLOSED', 'INVALID_ARGUMENT', 'UNSTORABLE_INPUT'],
  },
  cancelWaitpoint: {
    summary: "Cancels a pending waitpoint; its session resumes with status 'cancelled' and no value. Cancelling twice is a no-op.",
    params: z.strictObject({ id: waitpointId }),
    result: z.object({ id: z.string(), agentId: z.string(), status: z.literal('cancelled') }),
    errors: ['UNKNOWN_WAITPOINT', 'WAITPOINT_CLOSED'],
  },
  listWaitpoints: {
    summary: 'Lists waitpoints, oldest first (default: the pending ones), by agent type, session, tag or age; page with `after`.',
    params: z.strictObject({
      status: z.enum(['pending', 'completed', 'cancelled', 'timed-out', 'any']).optional().describe("default 'pending'"),
      agentType: z.string().max(64).optional(),
      agentId: agentId.optional(),
      tag: z.string().max(128).optional(),
      olderThanMs: z.number().int().min(0).optional().describe('only waitpoints created at least this long ago'),
      after: z.string().max(100).optional().describe('the `next` cursor of the previous page'),
      limit: limit(1000, 100),
    }),
    result: z.object({ waitpoints: z.array(waitpointInfo), next: z.string().nullable().describe('cursor of the next page (null: last page)') }),
    errors: ['INVALID_SESSION_ID', 'INVALID_ARGUMENT'],
  },
  publishEvent: {
    summary: 'Stores an event on the bus (agentry.events.<type>); resolves when it is stored, and the event router delivers it to the sessions waiting for or subscribed to it.',
    params: z.strictObject({
      type: z.string().min(1).max(256).regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'must be dot-separated tokens of [A-Za-z0-9_-]'),
      data: z.unknown().optional(),
      priority: priority.optional(),
      from: z.string().max(256).optional(),
      msgId: z.string().min(1).max(256).optional().describe('de-duplication id: a repeat within 2 minutes is the same event (same seq, duplicate: true), so a retry cannot deliver it twice'),
    }),
    result: z.object({
      seq: z.number(),
      recipients: z.number().describe('sessions the event goes to (its recipients when it was stored); the event router delivers it to each exactly once'),
      duplicate: z.boolean().optional().describe('true: a repeat of msgId, not stored again'),
    }),
    errors: ['INVALID_ARGUMENT', 'PAYLOAD_TOO_LARGE', 'UNSTORABLE_INPUT', 'NOT_READY'],
  },
  scheduleWake: {
    summary: "Moves a sleeping session's wake time, keeping its event and mail conditions.",
    params: z.strictObject({ agentId, at: z.union([z.string(), z.number()]).describe('ISO 8601 time or epoch milliseconds') }),
    result: z.object({ agentId: z.string(), state: sessionState, wakeAt: epochMs.nullable() }),
    errors: [...SESSION_ERRORS, 'INVALID_ARGUMENT', 'INVALID_TRANSITION'],
  },
  cancelWake: {
    summary: "Removes a sleeping session's wake time: only events, mail or wakeAgent wake it then.",
    params: z.strictObject({ agentId }),
    result: z.object({ agentId: z.string(), state: sessionState, wakeAt: epochMs.nullable() }),
    errors: [...SESSION_ERRORS, 'INVALID_TRANSITION'],
  },
  getNextWakeTime: {
    summary: 'When the session wakes next by time (sleep deadline or wait timeout), or null.',
    params: z.strictObject({ agentId }),
    result: z.object({ agentId: z.string(), wakeAt: epochMs.nullable() }),
    errors: SESSION_ERRORS,
  },
  listEvents: {
    summary: "The event history (stream AGENTRY_EVENTS, kept 7 days), oldest first; with order 'newest', newest first in pages (`before` = the `next` of the previous page), also by sender and up to a time.",
    params: z.strictObject({
      type: eventPattern.optional().describe("event type or pattern ('invoice.*'); default all"),
      since: z.union([z.string(), z.number()]).optional().describe('ISO 8601 time or epoch milliseconds'),
      limit: limit(1000, 100),
      order: z.enum(['oldest', 'newest']).optional().describe("default 'oldest'; 'newest' pages backwards and takes until, from and before"),
      until: timeParam.optional().describe("(order 'newest') only events stored before this time: ISO 8601 or epoch milliseconds"),
      from: z.string().min(1).max(256).optional().describe("(order 'newest') only events of this sender (Agentry-From: the publishing session's id, cron:<taskId>, …)"),
      before: z.number().int().min(1).optional().describe("(order 'newest') cursor: only events with a lower sequence (`next` of the previous page)"),
    }),
    result: z.object({
      events: z.array(z.object({ seq: z.number(), type: z.string(), data: z.unknown(), priority: z.string(), from: z.string().nullable(), at: epochMs })),
      next: z.number().nullable().optional().describe("(order 'newest') pass as `before` for the next, older page; null: no more. A page can hold fewer than `limit` events when a sparse filter meets the scan bound"),
    }),
    errors: ['INVALID_ARGUMENT', 'NOT_READY'],
  },
  getHistory: {
    summary: "Returns a session's messages, newest first; page with `before` (exclusive upper bound on seq).",
    params: z.strictObject({ agentId, limit: limit(1000, 50), before: z.number().int().optional() }),
    result: z.object({ messages: z.array(historyMessage) }),
    errors: SESSION_ERRORS,
  },
  forkSession: {
    summary: "Creates a new session from a recorded point of another (its state, context and history as of then), leaving the original untouched.",
    params: z.strictObject({
      agentId,
      at: z.union([
        z.strictObject({ seq: z.number().int().min(0).describe('after this inbox message (the newest recorded state whose lastSeq is at most seq)') }),
        z.strictObject({ transition: z.number().int().min(1).describe('after the commit that wrote this transition (ids from getTransitions)') }),
      ]),
      newId: agentId.optional().describe('id of the new session (default <agentId>-fork-<8 hex>)'),
    }),
    result: z.object({
      agentId: z.string().describe('the new session'), state: sessionState,
      from: z.object({ agentId: z.string(), version: z.number(), lastSeq: z.number(), at: epochMs }).describe('the recorded point used'),
    }),
    errors: [...SESSION_ERRORS, 'POINT_NOT_RECORDED', 'SESSION_EXISTS', 'INVALID_ARGUMENT', 'UNKNOWN_AGENT_TYPE'],
  },
  replaySession: {
    summary: "Runs a session's recorded history through the agent registered for its type in a sandbox (nothing published or committed) and reports the turns whose state differs from the recorded one.",
    params: z.strictObject({ agentId, maxMessages: z.number().int().min(1).max(10_000).optional().describe('most history rows read (newest; default 1000)') }),
    result: z.object({
      agentId: z.string(), type: z.string(),
      start: z.union([z.object({ from: z.literal('checkpoint'), version: z.number() }), z.object({ from: z.literal('initial') })]),
      turns: z.number(), compared: z.number(), outputs: z.number(),
      differences: z.array(z.object({
        batchId: z.string(), seqs: z.array(z.number()),
        expected: z.object({ status: z.string(), userState: z.unknown() }),
        actual: z.object({ status: z.string(), userState: z.unknown(), error: z.string().optional() }),
        paths: z.array(z.string()),
      })),
    }),
    errors: [...SESSION_ERRORS, 'UNKNOWN_AGENT_TYPE'],
  },
  getSessionAt: {
    summary: "Returns a session as it was right after one of its transitions (time travel): its view as getAgent shapes it, the event object that caused the step, the full mailbox, the history as of then, and the step before it for a diff.",
    params: z.strictObject({
      agentId,
      transition: z.number().int().min(1).describe('transition id (from getTransitions)'),
      until: epochMs.optional().describe("history up to this time (default: the step's own time)"),
      historyLimit: limit(1000, 200),
    }),
    result: z.object({
      step: transition,
      agent: agentView.nullable().describe('the session right after the step (live false); null when the step recorded no frame (written before migration 0013)'),
      userStateRecorded: z.boolean().describe('false when the user state of that step is no longer kept (pruned): agent.userState is null'),
      event: z.unknown().describe('the event object that caused the step: { type, … } (null: not recorded)'),
      waitpoint: z.object({ id: z.string(), schema: z.unknown(), hasDefault: z.boolean(), default: z.unknown(), tags: z.array(z.string()) }).nullable()
        .describe('the waitpoint the session waited on then (null: none)'),
      mailbox: z.object({
        pending: z.array(mailboxEntry), running: z.array(mailboxEntry), deferred: z.array(mailboxEntry), rejected: z.array(mailboxEntry),
        pendingOmitted: z.object({ count: z.number(), maxSeq: z.number() }).optional()
          .describe('queued messages past the first 32, left out of pending: how many, and the highest seq among them'),
      }).nullable()
        .describe('every mailbox entry then (null: not recorded)'),
      previous: z.object({ step: transition, agent: agentView.nullable() }).nullable().describe('the step before it (null: the oldest kept)'),
      history: z.array(historyMessage).describe('messages received by then and wake records, newest first'),
    }),
    errors: [...SESSION_ERRORS, 'POINT_NOT_RECORDED'],
  },
  getTransitions: {
    summary: "Returns a session's state transitions, oldest first; page with `after` (exclusive lower bound on `at`).",
    params: z.strictObject({
      agentId, limit: limit(1000, 100), after: z.number().optional(),
      frames: z.boolean().optional().describe("also each step's frame: the event object, the context after it and, on a step that ended a run, what the run sent (null on steps recorded before it was kept)"),
    }),
    result: z.object({ transitions: z.array(transition.extend({ frame: z.unknown().optional() })) }),
    errors: SESSION_ERRORS,
  },
  listDeadLetters: {
    summary: 'Lists dead letters (batches or messages that could not be processed) across sessions, newest first, filtered; page with `before` (the `next` of the previous page).',
    params: z.strictObject({
      agentId: agentId.optional(),
      reason: z.string().min(1).max(64).optional().describe('e.g. handler-failed, no-recipient, expired, operator, budget'),
      agentType: z.string().min(1).max(64).optional().describe("its session's agent type"),
      tenant: tenant.optional().describe("its session's tenant"),
      since: timeParam.optional().describe('created at or after: ISO 8601 or epoch milliseconds'),
      until: timeParam.optional().describe('created before: ISO 8601 or epoch milliseconds'),
      replayed: z.boolean().optional().describe('true: only replayed ones; false: only those never replayed'),
      before: z.string().max(700).optional().describe('cursor: `next` of the previous page'),
      limit: limit(1000, 100),
    }),
    result: z.object({ deadLetters: z.array(deadLetter), next: z.string().nullable().optional().describe('cursor of the next page; null on the last page') }),
    errors: ['INVALID_SESSION_ID', 'INVALID_ARGUMENT'],
  },
  replayDeadLetters: {
    summary: "Replays up to 100 dead letters (replayDeadLetter each), with one outcome per id; one that fails does not stop the others. Those replayed before are skipped unless force, so the same call sent twice delivers nothing twice.",
    params: z.strictObject({ ids: bulkIds, force: z.boolean().optional().describe('replay those replayed before too (default false: skipped)') }),
    result: z.object({
      results: z.array(z.union([
        z.object({ id: z.string(), ok: z.literal(true), published: z.number(), duplicates: z.number(), skipped: z.boolean().describe('replayed before: nothing sent') }),
        z.object({ id: z.string(), ok: z.literal(false), error: bulkError }),
      ])).describe('in the order of ids'),
    }),
    errors: ['INVALID_ARGUMENT'],
  },
  discardDeadLetters: {
    summary: 'Deletes up to 100 dead letters for good, with one outcome per id (discarded: false when it was gone already, so a retry is harmless).',
    params: z.strictObject({ ids: bulkIds }),
    result: z.object({ results: z.array(z.object({ id: z.string(), ok: z.literal(true), discarded: z.boolean() })).describe('in the order of ids') }),
    errors: ['INVALID_ARGUMENT'],
  },
  replayDeadLetter: {
    summary: "Publishes a dead letter's messages to its session's inbox again (once: replay ids are deterministic).",
    params: z.strictObject({ id: z.string().min(1).max(512) }),
    result: z.object({
      published: z.number().describe('messages stored in the inbox by this call'),
      duplicates: z.number().describe('messages JetStream dropped as duplicates: the same replay was stored within its 2-minute window, so they are not published again'),
    }),
    errors: ['INVALID_ARGUMENT', 'NOT_READY'],
  },
  deadLetterInboxMessage: {
    summary: "Moves one stuck message out of the inbox stream into the dead letters (reason 'operator'), so it is never delivered and can be replayed later.",
    params: z.strictObject({
      seq: z.number().int().min(1).describe('stream sequence of the message in the inbox (agentry inbox list/show)'),
      reason: z.string().min(1).max(1024).describe("why: stored as the dead letter's error"),
    }),
    result: z.object({
      id: z.string().describe('the dead letter: <agentId>:<seq>, for replayDeadLetter'),
      agentId: z.string(),
      seq: z.number(),
      removed: z.boolean().describe('false when the message had left the stream by then (its session acked it meanwhile); the dead letter is stored either way'),
    }),
    errors: ['INVALID_ARGUMENT', 'NOT_READY', 'UNSTORABLE_INPUT'],
  },
  listNodes: {
    summary: 'Every live node of the cluster (from the lease bucket: any node answers for all), with its version, uptime, sessions, partitions and lease renewal lag.',
    params: z.strictObject({}),
    result: z.object({ nodes: z.array(nodeInfo).describe('by node id'), leaseTtlMs }),
    errors: ['NOT_READY'],
  },
  getPartitions: {
    summary: 'Every partition with its owner and fencing epoch, or free (from the lease bucket: any node answers for all).',
    params: z.strictObject({}),
    result: z.object({ partitions: z.array(partitionInfo).describe('by partition number, all of them'), leaseTtlMs }),
    errors: ['NOT_READY'],
  },
  subscribe: {
    summary: "Starts notifications (method 'notify') of state changes, outputs and events; works whichever node owns the session.",
    params: z.strictObject({
      agentId: agentId.optional().describe('session whose state changes and outputs to follow (default: all sessions)'),
      pattern: eventPattern.optional().describe("event types for kind 'event', e.g. 'invoice.*' (default: '>' = all)"),
      kinds: z.array(z.enum(SUBSCRIPTION_KINDS)).min(1).max(3),
    }),
    result: z.object({ subscriptionId: z.string() }),
    errors: ['INVALID_SESSION_ID', 'INVALID_ARGUMENT', 'NOT_READY'],
  },
  unsubscribe: {
    summary: 'Ends a subscription of this connection.',
    params: z.strictObject({ subscriptionId: z.string().max(64) }),
    result: z.object({ unsubscribed: z.boolean().describe('false when no such subscription was open') }),
    errors: [],
  },
  ping: {
    summary: 'Round trip; reports the protocol version and server time.',
    params: z.strictObject({}),
    result: z.object({ pong: z.literal(true), at: epochMs, protocol: z.string() }),
    errors: [],
  },
  'rpc.discover': {
    summary: 'Returns the OpenRPC document of this API.',
    params: z.strictObject({}),
    result: z.record(z.string(), z.unknown()),
    errors: [],
  },
} as const satisfies Record<string, MethodSpec>;

/** Canonical method names. */
export type MethodName = keyof typeof methods;
/** What a caller passes (defaults still optional). */
export type ParamsOf<M extends MethodName> = z.input<(typeof methods)[M]['params']>;
/** What the server returns. */
export type ResultOf<M extends MethodName> = z.output<(typeof methods)[M]['result']>;

/** The list of canonical method names, in documentation order. */
export const METHOD_NAMES = Object.keys(methods) as MethodName[];

/** Prefix of the alias names (`async.createAgent` calls `createAgent`). */
export const ALIAS_PREFIX = 'async.';

/** Params of the server's `notify` notifications. */
export const notificationSchema = z.object({
  subscriptionId: z.string(),
  seq: z.number().int().min(1).describe('1, 2, 3… per subscription: a jump means notifications were lost'),
  kind: z.enum(SUBSCRIPTION_KINDS),
  agentId: z.string().optional(),
  data: z.unknown().describe("state: {agentId,from,to,state,event,at}; output: {kind:'reply'|'chunk'|'retracted',body,run?} (retracted: drop the chunks of run `run`; body {run,chunks,reason}); event: {type,body,priority,from}"),
});
export type Notification = z.output<typeof notificationSchema>;

/** `data` of a `state` notification. */
export interface StateChange { readonly agentId: string; readonly from: string; readonly to: string; readonly state: string; readonly event: string; readonly at: number }
/** `data` of an `output` notification. */
export interface OutputData {
  /** `retracted` follows the chunks of a run that will not be committed (aborted, rolled back, failed): drop them. */
  readonly kind: 'reply' | 'chunk' | 'retracted';
  readonly body: unknown;
  readonly run?: number;
}
/** `data` of an `event` notification. */
export interface EventData { readonly type: string; readonly body: unknown; readonly priority: string | null; readonly from: string | null }

/** JSON-RPC's reserved codes, used for protocol faults only. */
export const PROTOCOL_ERRORS = {
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
} as const;
