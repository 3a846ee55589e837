/**
 * Owns the `agentry` commands that talk to a running runtime through the control API with the
 * typed client: `agents …`, `send`, `mail`, `events publish`, `tasks …`, `dlq …`, `inbox dead-letter`, `watch`,
 * and the cluster view: `nodes`, `partitions`.
 * Address and token come from `--url`/`AGENTRY_URL` and `--token`/`AGENTRY_TOKEN`; every command
 * takes `--json`; exit codes are in `output.ts`. `send --nats` and `watch --nats` keep the
 * original raw-NATS behaviour for when the API is not reachable.
 */
import type { Command } from 'commander';
import WebSocket from 'ws';
import { connect, headers as natsHeaders } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { ConnectionError, createClient, type AgentryClient, type Notification, type ParamsOf } from '../../client/index.js';
import { natsConnectOptions } from '../natsUrl.js';
import { inboxCommand } from './inboxCommands.js';
import { EXIT, UsageError, exitCodeOf, printError, printResult, table, when } from './output.js';

/** The global options every API command reads. */
interface GlobalOpts { url?: string; token?: string; json?: boolean }

/** Where API commands connect when neither --url nor AGENTRY_URL is given. */
export const DEFAULT_API_URL = 'ws://127.0.0.1:7070/rpc';

/** What the commands need from the program: how to find the API and the dev NATS server by default. */
export interface ApiCommandDeps {
  /** URL used when neither --url nor AGENTRY_URL is set (the running `agentry dev`'s, else the default). */
  readonly defaultUrl: () => string;
  /** Says where the default URL came from, for the error when nothing answers there. */
  readonly describeDefaultUrl?: () => string;
  /** NATS URL for `--nats` without a value. */
  readonly defaultNatsUrl: () => string;
}

const PRIORITIES = ['low', 'normal', 'high', 'urgent'] as const;
type Priority = (typeof PRIORITIES)[number];

/** Message text as given, or the JSON value when it parses as JSON (so `'{"a":1}'` sends an object). */
function parseBody(text: string): unknown {
  try { return JSON.parse(text) as unknown; } catch { return text; }
}

function priorityOpt(v: string | undefined): Priority | undefined {
  if (v === undefined) return undefined;
  if (!(PRIORITIES as readonly string[]).includes(v)) throw new UsageError(`--priority must be one of ${PRIORITIES.join(', ')}`);
  return v as Priority;
}

function intOpt(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${name} must be a whole number`);
  return n;
}

/** `90000`, `90s`, `15m`, `2h`, `1d` → milliseconds. */
export function parseDuration(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(v.trim());
  if (!m) throw new UsageError(`invalid duration ${JSON.stringify(v)}: use e.g. 30s, 15m, 2h, 1d or milliseconds`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 'ms') as 'ms'];
  return Math.round(Number(m[1]) * unit);
}

/**
 * The API address as the client needs it: `http(s)://host:port[/]` (what the dev banner's UI
 * line shows, and what people paste) becomes `ws(s)://host:port/rpc`; a ws(s) URL or a URL with
 * another path is kept as given.
 *
 * @example
 * apiUrl('http://127.0.0.1:7070') // 'ws://127.0.0.1:7070/rpc'
 */
export function apiUrl(url: string): string {
  let u: URL;
  try { u = new URL(url); } catch { throw new UsageError(`--url ${JSON.stringify(url)} is not a URL (e.g. ws://127.0.0.1:7070/rpc)`); }
  if (u.protocol === 'http:' || u.protocol === 'https:') {
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    if (u.pathname === '/' || u.pathname === '') u.pathname = '/rpc';
  }
  return u.toString();
}

/** A cell of at most `n` characters; a cut one ends with an ellipsis. */
export function cell(text: string, n: number): string {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

/**
 * A duration for a table cell, its two largest units: `850ms`, `1.2s`, `4m10s`, `2h05m`, `3d4h`;
 * `-` for unknown.
 */
export function shortDuration(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms)) return '-';
  const v = Math.max(0, ms);
  if (v < 1000) return `${Math.round(v)}ms`;
  if (v < 60_000) return `${(Math.floor(v / 100) / 10).toFixed(1)}s`;
  const s = Math.floor(v / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`;
  return `${Math.floor(s / 86_400)}d${Math.floor(s / 3600) % 24}h`;
}

/**
 * Partition numbers as ranges, so 64 of them fit a cell: `[0, 1, 2, 3, 8, 10, 11]` → `0-3,8,10-11`.
 *
 * @example
 * partitionRanges([5, 0, 1, 2]) // '0-2,5'
 */
export function partitionRanges(list: readonly number[]): string {
  const sorted = [...list].sort((a, b) => a - b);
  const out: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    out.push(j === i ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return out.join(',');
}

/** `-` for a value a node did not report. */
function orDash(v: number | string | null): string {
  return v === null ? '-' : String(v);
}

/**
 * Runs `fn` with a connected client and turns its outcome into output and an exit code.
 * Never throws: failures set `process.exitCode`.
 */
async function withClient(cmd: Command, deps: ApiCommandDeps, fn: (c: AgentryClient, json: boolean) => Promise<void>, reconnect = false): Promise<void> {
  const o = cmd.optsWithGlobals<GlobalOpts>();
  const json = o.json === true;
  const given = o.url ?? process.env.AGENTRY_URL;
  let url: string;
  try {
    url = apiUrl(given ?? deps.defaultUrl());
  } catch (e) {
    printError(e, json);
    process.exitCode = exitCodeOf(e);
    return;
  }
  const token = o.token ?? process.env.AGENTRY_TOKEN;
  const client = createClient(url, { WebSocket, reconnect, connectTimeoutMs: 5000, ...(token ? { token } : {}) });
  try {
    await client.connect();
    await fn(client, json);
  } catch (e) {
    printError(e, json);
    // Nothing answered: say which address was tried and where it came from (a silent default
    // outside the project folder looked like a dead runtime).
    if (!json && e instanceof ConnectionError && e.type !== 'UNAUTHORIZED' && e.type !== 'FORBIDDEN') {
      const from = o.url ? '--url' : process.env.AGENTRY_URL ? 'AGENTRY_URL' : deps.describeDefaultUrl?.() ?? 'the default';
      process.stderr.write(`agentry: tried ${url} (${from})\n`);
    }
    process.exitCode = exitCodeOf(e);
  } finally {
    await client.close();
  }
}

/** Formats one notification for people. */
function describeNotification(n: Notification): string {
  const d = n.data as Record<string, unknown>;
  if (n.kind === 'state') return `${when(d.at as number)}  ${n.agentId ?? ''}  ${String(d.from)} → ${String(d.to)}  (${String(d.event)})`;
  if (n.kind === 'output') return `${n.agentId ?? ''} ${String(d.kind)}: ${JSON.stringify(d.body)}`;
  const e = n.data as { type?: unknown; priority?: unknown; from?: unknown; body?: unknown };
  const str = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v));
  return `event ${str(e.type)}${e.priority ? ` [${str(e.priority)}]` : ''}${e.from ? ` from ${str(e.from)}` : ''}: ${JSON.stringify(e.body)}`;
}

/** Adds the API commands to `program`. */
export function registerApiCommands(program: Command, deps: ApiCommandDeps): void {
  const run = (cmd: Command, fn: (c: AgentryClient, json: boolean) => Promise<void>): Promise<void> => withClient(cmd, deps, fn);

  // ---- agents ------------------------------------------------------------------------------
  const agents = program.command('agents').description('list, inspect and control sessions');

  agents.command('list')
    .description('list sessions (one page; --all follows the cursor)')
    .option('--status <state>', 'idle | active | sleeping | waiting | stopped (several: comma-separated)')
    .option('--type <type>', 'agent type')
    .option('--id-prefix <text>', 'start of the session id (indexed)')
    .option('--id-contains <text>', 'substring of the session id (reads every row)')
    .option('--tenant <tenant>', 'only sessions of this tenant')
    .option('--tag <tag>', 'only sessions carrying this tag')
    .option('--updated-after <time>', 'last activity at or after (ISO 8601 or epoch ms)')
    .option('--updated-before <time>', 'last activity before (ISO 8601 or epoch ms)')
    .option('--sort <key>', 'agentId (default) | updatedAt | type | state')
    .option('--order <dir>', 'asc | desc (default desc for updatedAt, asc otherwise)')
    .option('--limit <n>', 'page size (at most 500)', '100')
    .option('--after <cursor>', 'the `next` cursor of a previous page (same --sort and --order)')
    .option('--all', 'fetch every page')
    .action((o: { status?: string; type?: string; idPrefix?: string; idContains?: string; tenant?: string; tag?: string; updatedAfter?: string; updatedBefore?: string; sort?: string; order?: string; limit: string; after?: string; all?: boolean }, cmd: Command) => run(cmd, async (c, json) => {
      const states = o.status?.split(',').map((x) => x.trim()).filter(Boolean) as ('idle')[] | undefined;
      const time = (v: string): string | number => (/^\d+$/.test(v) ? Number(v) : v);
      const base = {
        limit: intOpt('--limit', o.limit), ...(states?.length ? { state: states.length === 1 ? states[0]! : states } : {}), ...(o.type ? { type: o.type } : {}),
        ...(o.idPrefix ? { idPrefix: o.idPrefix } : {}), ...(o.idContains ? { idContains: o.idContains } : {}), ...(o.tenant ? { tenant: o.tenant } : {}), ...(o.tag ? { tag: o.tag } : {}),
        ...(o.updatedAfter ? { updatedAfter: time(o.updatedAfter) } : {}), ...(o.updatedBefore ? { updatedBefore: time(o.updatedBefore) } : {}),
        ...(o.sort ? { sort: o.sort as 'agentId' } : {}), ...(o.order ? { order: o.order as 'asc' } : {}),
      };
      let after = o.after;
      const all: Awaited<ReturnType<AgentryClient['listAgents']>>['agents'] = [];
      let next: string | null = null;
      do {
        const page = await c.listAgents({ ...base, ...(after ? { after } : {}) });
        all.push(...page.agents);
        next = page.next;
        after = next ?? undefined;
      } while (o.all && next);
      printResult({ agents: all, next }, json, table(['AGENT', 'TYPE', 'STATE', 'WAKE AT', 'UPDATED', 'TENANT', 'TAGS'], all.map((a) => [a.agentId, a.type, a.state, when(a.wakeAt), when(a.updatedAt), a.tenant ?? '', (a.tags ?? []).join(',')]))
        + (next ? `\n(more: --after ${next})` : ''));
    }));

  agents.command('get').argument('<agentId>').description('show a session')
    .action((agentId: string, _o: unknown, cmd: Command) => run(cmd, async (c, json) => {
      const v = await c.getAgent({ agentId });
      printResult(v, json, JSON.stringify(v, null, 2));
    }));

  agents.command('create').argument('<agentId>').description('create a session')
    .requiredOption('--type <type>', 'agent type')
    .option('--state <json>', 'initial user state (JSON)')
    .option('--tenant <tenant>', "the session's tenant (set once)")
    .option('--tag <tag>', 'a tag to find the session by (repeatable, at most 16; set once)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .action((agentId: string, o: { type: string; state?: string; tenant?: string; tag: string[] }, cmd: Command) => run(cmd, async (c, json) => {
      let state: unknown;
      if (o.state !== undefined) {
        try { state = JSON.parse(o.state) as unknown; } catch { throw new UsageError('--state must be JSON'); }
      }
      const r = await c.createAgent({ agentId, type: o.type, ...(o.state !== undefined ? { state } : {}), ...(o.tenant ? { tenant: o.tenant } : {}), ...(o.tag.length > 0 ? { tags: o.tag } : {}) });
      printResult(r, json, `created ${r.agentId} (${r.type}): ${r.state}`);
    }));

  agents.command('sleep').argument('<agentId>').description('put a session to sleep')
    .option('--until <time>', 'when to wake: ISO 8601 time or epoch milliseconds')
    .option('--for <duration>', 'how long to sleep: 30s, 15m, 2h, 1d')
    .option('--wake-events <types>', 'comma-separated event types that wake it')
    .option('--wake-on-mail <priority>', 'mail at or above this priority wakes it')
    .action((agentId: string, o: { until?: string; for?: string; wakeEvents?: string; wakeOnMail?: string }, cmd: Command) => run(cmd, async (c, json) => {
      if (o.until && o.for) throw new UsageError('give --until or --for, not both');
      const p: ParamsOf<'sleepAgent'> = {
        agentId,
        ...(o.until ? { until: /^\d+$/.test(o.until) ? Number(o.until) : o.until } : {}), ...(o.for ? { durationMs: parseDuration(o.for) } : {}),
        ...(o.wakeEvents ? { wakeEvents: o.wakeEvents.split(',').map((x) => x.trim()).filter(Boolean) } : {}),
        ...(o.wakeOnMail ? { wakeOnMailPriority: priorityOpt(o.wakeOnMail)! } : {}),
      };
      const r = await c.sleepAgent(p);
      printResult(r, json, `${r.agentId}: ${r.state}${r.wakeAt ? ` until ${when(r.wakeAt)}` : ''}`);
    }));

  for (const [name, verb] of [['wake', 'wakeAgent'], ['stop', 'stopAgent'], ['interrupt', 'interruptAgent']] as const) {
    const sub = agents.command(name).argument('<agentId>').description(`${name} a session`);
    if (name !== 'wake') sub.option('--reason <text>', 'recorded with the transition');
    sub.action((agentId: string, o: { reason?: string }, cmd: Command) => run(cmd, async (c, json) => {
      const r = verb === 'wakeAgent' ? await c.wakeAgent({ agentId })
        : verb === 'stopAgent' ? await c.stopAgent({ agentId, ...(o.reason ? { reason: o.reason } : {}) })
          : await c.interruptAgent({ agentId, ...(o.reason ? { reason: o.reason } : {}) });
      printResult(r, json, `${r.agentId}: ${r.state}${'interrupted' in r ? (r.interrupted ? ' (handler interrupted)' : ' (nothing was running)') : ''}`);
    }));
  }

  agents.command('history').argument('<agentId>').description("a session's messages, newest first")
    .option('--limit <n>', 'how many', '20')
    .option('--before <seq>', 'only messages with a lower sequence')
    .action((agentId: string, o: { limit: string; before?: string }, cmd: Command) => run(cmd, async (c, json) => {
      const r = await c.getHistory({ agentId, limit: intOpt('--limit', o.limit), ...(o.before ? { before: intOpt('--before', o.before)! } : {}) });
      printResult(r, json, table(['SEQ', 'KIND', 'FROM', 'OUTCOME', 'AT', 'BODY'], r.messages.map((m) => [String(m.seq), m.kind, m.from ?? '-', m.outcome, when(m.at), JSON.stringify(m.body).slice(0, 80)])));
    }));

  // ---- messages, mail, events --------------------------------------------------------------
  program.command('fork').argument('<agentId>').description('create a new session from a recorded point of this one (the original is untouched)')
    .option('--seq <n>', 'after this inbox message (stream sequence, from `agents history`)')
    .option('--transition <id>', 'after the commit that wrote this transition (id from getTransitions / the inspector)')
    .option('--new-id <id>', 'id of the new session (default <agentId>-fork-<8 hex>)')
    .action((agentId: string, o: { seq?: string; transition?: string; newId?: string }, cmd: Command) => run(cmd, async (c, json) => {
      if ((o.seq === undefined) === (o.transition === undefined)) throw new UsageError('give --seq or --transition (one of them)');
      const n = Number(o.seq ?? o.transition);
      if (!Number.isSafeInteger(n) || n < 0) throw new UsageError('--seq / --transition must be a whole number');
      const r = await c.forkSession({ agentId, at: o.seq !== undefined ? { seq: n } : { transition: n }, ...(o.newId ? { newId: o.newId } : {}) });
      printResult(r, json, `forked ${agentId} (version ${r.from.version}, lastSeq ${r.from.lastSeq}) into ${r.agentId}: ${r.state}`);
    }));

  program.command('send').argument('<agentId>').argument('<message>', 'text, or JSON when it parses as JSON')
    .description("publish a message to a session's inbox")
    .option('--kind <kind>', 'message | task | event | control', 'message')
    .option('--priority <p>', 'low | normal | high | urgent')
    .option('--from <sender>')
    .option('--msg-id <id>', 'de-duplication id')
    .option('--nats [url]', 'publish straight to NATS instead of through the API (default: NATS_URL, else the dev server)')
    .action(async (agentId: string, message: string, o: { kind: string; priority?: string; from?: string; msgId?: string; nats?: string | boolean }, cmd: Command) => {
      if (o.nats !== undefined) { await sendOverNats(agentId, message, o, typeof o.nats === 'string' ? o.nats : deps.defaultNatsUrl(), cmd.optsWithGlobals<GlobalOpts>().json === true); return; }
      await run(cmd, async (c, json) => {
        if (!['message', 'task', 'event', 'control'].includes(o.kind)) throw new UsageError('--kind must be message, task, event or control (use `agentry mail` for mail)');
        const r = await c.sendMessage({
          agentId, message: parseBody(message), kind: o.kind as 'message',
          ...(o.priority ? { priority: priorityOpt(o.priority)! } : {}), ...(o.from ? { from: o.from } : {}), ...(o.msgId ? { msgId: o.msgId } : {}),
        });
        printResult(r, json, `sent to ${agentId}: seq ${r.seq}`);
      });
    });

  program.command('mail').argument('<to>').argument('<body>', 'text, or JSON when it parses as JSON')
    .description('send mail to a session (wakes a sleeper at or above its mail priority)')
    .option('--from <sender>')
    .option('--priority <p>', 'low | normal | high | urgent', 'normal')
    .action((to: string, body: string, o: { from?: string; priority: string }, cmd: Command) => run(cmd, async (c, json) => {
      const r = await c.sendMail({ to, body: parseBody(body), priority: priorityOpt(o.priority)!, ...(o.from ? { from: o.from } : {}) });
      printResult(r, json, `mailed ${to}: seq ${r.seq}`);
    }));

  const events = program.command('events').description('the event bus');
  events.command('publish').argument('<type>', 'event type, e.g. invoice.paid').argument('[data]', 'text, or JSON when it parses as JSON')
    .description('publish an event')
    .option('--priority <p>', 'low | normal | high | urgent (urgent wakes subscribed sleepers)')
    .option('--from <sender>')
    .option('--msg-id <id>', 'de-duplication id: a repeat within 2 minutes is the same event')
    .action((type: string, data: string | undefined, o: { priority?: string; from?: string; msgId?: string }, cmd: Command) => run(cmd, async (c, json) => {
      const r = await c.publishEvent({ type, ...(data !== undefined ? { data: parseBody(data) } : {}), ...(o.priority ? { priority: priorityOpt(o.priority)! } : {}), ...(o.from ? { from: o.from } : {}), ...(o.msgId ? { msgId: o.msgId } : {}) });
      printResult(r, json, `published ${type}: seq ${r.seq}${r.duplicate ? ' (a repeat: not stored again)' : ''}, going to ${r.recipients} session(s)`);
    }));

  events.command('list').description('the event history, oldest first')
    .option('--type <pattern>', "event type or pattern, e.g. 'invoice.*'")
    .option('--since <time>', 'ISO time')
    .option('--limit <n>', 'how many', '100')
    .action((o: { type?: string; since?: string; limit: string }, cmd: Command) => run(cmd, async (c, json) => {
      const r = await c.listEvents({ limit: intOpt('--limit', o.limit), ...(o.type ? { type: o.type } : {}), ...(o.since ? { since: o.since } : {}) });
      printResult(r, json, table(['SEQ', 'TYPE', 'PRIORITY', 'FROM', 'AT', 'DATA'], r.events.map((e) => [String(e.seq), e.type, e.priority, e.from ?? '-', when(e.at), JSON.stringify(e.data).slice(0, 80)])));
    }));

  // ---- tasks -------------------------------------------------------------------------------
  const tasks = program.command('tasks').description('cron tasks');
  tasks.command('add').argument('<agentId>').argument('<schedule>', "cron expression, e.g. '0 9 * * 1-5'").argument('[task]', 'task body: text, or JSON when it parses as JSON')
    .description('schedule a task')
    .option('--tz <zone>', 'IANA time zone (default UTC)')
    .option('--id <taskId>', 'stable task id')
    .action((agentId: string, schedule: string, task: string | undefined, o: { tz?: string; id?: string }, cmd: Command) => run(cmd, async (c, json) => {
      const r = await c.scheduleTask({ agentId, schedule, task: task === undefined ? null : parseBody(task), ...(o.tz ? { timezone: o.tz } : {}), ...(o.id ? { taskId: o.id } : {}) });
      printResult(r, json, `scheduled ${r.taskId}: next run ${when(r.nextRunAt)}`);
    }));
  tasks.command('list').argument('[agentId]').description('list tasks')
    .action((agentId: string | undefined, _o: unknown, cmd: Command) => run(cmd, async (c, json) => {
      const r = await c.listTasks(agentId ? { agentId } : {});
      printResult(r, json, table(['TASK', 'AGENT', 'SCHEDULE', 'TZ', 'NEXT RUN', 'LAST RUN'], r.tasks.map((t) => [t.taskId, t.agentId, t.schedule, t.timezone, when(t.nextRunAt), when(t.lastRunAt)])));
    }));
  tasks.command('rm').argument('<taskId>').description('cancel a task')
    .action((taskId: string, _o: unknown, cmd: Command) => run(cmd, async (c, json) => {
      const r = await c.cancelTask({ taskId });
      printResult(r, json, r.cancelled ? `cancelled ${taskId}` : `no task ${taskId}`);
    }));

  // ---- waitpoints --------------------------------------------------------------------------
  const wp = program.command('waitpoint').alias('waitpoints').description('waitpoints: sessions waiting for a person (ctx.waitFor({ waitpoint }))');
  wp.command('complete').argument('<id>', 'the waitpoint id').argument('<json>', 'the value, as JSON (validated against the waitpoint\'s schema)')
    .description('complete a pending waitpoint; its session resumes with the value')
    .allowUnknownOption() // ids made before 2026-11-28 may start with '-': an argument, not an option
    .action((id: string, text: string, _o: unknown, cmd: Command) => run(cmd, async (c, json) => {
      let value: unknown;
      try { value = JSON.parse(text) as unknown; } catch { throw new UsageError('<json> must be JSON (quote strings: \'"yes"\')'); }
      const r = await c.completeWaitpoint({ id, value });
      printResult(r, json, r.duplicate ? `waitpoint ${id} was already completed with this value (${r.agentId})` : `completed waitpoint ${id}: ${r.agentId} resumes`);
    }));
  wp.command('cancel').argument('<id>').description('cancel a pending waitpoint; its session resumes with status cancelled')
    .allowUnknownOption() // as complete: an id may start with '-'
    .action((id: string, _o: unknown, cmd: Command) => run(cmd, async (c, json) => {
      const r = await c.cancelWaitpoint({ id });
      printResult(r, json, `cancelled waitpoint ${id} (${r.agentId})`);
    }));
  wp.command('list').description('list waitpoints, oldest first (default: pending)')
    .option('--status <s>', 'pending | completed | cancelled | timed-out | any')
    .option('--type <agentType>').option('--agent <agentId>').option('--tag <tag>')
    .option('--older-than <ms>', 'created at least this many milliseconds ago')
    .option('--limit <n>', 'how many', '100')
    .action((o: { status?: string; type?: string; agent?: string; tag?: string; olderThan?: string; limit: string }, cmd: Command) => run(cmd, async (c, json) => {
      const statuses = ['pending', 'completed', 'cancelled', 'timed-out', 'any'] as const;
      if (o.status !== undefined && !(statuses as readonly string[]).includes(o.status)) throw new UsageError(`--status must be one of ${statuses.join(', ')}`);
      const r = await c.listWaitpoints({
        limit: intOpt('--limit', o.limit), ...(o.status ? { status: o.status as (typeof statuses)[number] } : {}),
        ...(o.type ? { agentType: o.type } : {}), ...(o.agent ? { agentId: o.agent } : {}), ...(o.tag ? { tag: o.tag } : {}),
        ...(o.olderThan !== undefined ? { olderThanMs: intOpt('--older-than', o.olderThan) } : {}),
      });
      printResult(r, json, table(['ID', 'AGENT', 'TYPE', 'STATUS', 'TAGS', 'CREATED', 'EXPIRES'],
        r.waitpoints.map((w) => [w.id, w.agentId, w.agentType, w.status, w.tags.join(','), when(w.createdAt), when(w.expiresAt)])));
    }));

  // ---- budgets ------------------------------------------------------------------------------
  const budget = program.command('budget').alias('budgets').description('budgets: limits on tokens, cost, tool calls, wall-clock and turns per session, tenant or agent type');
  const refOf = (o: { agent?: string; tenant?: string; type?: string }): { agentId?: string; tenant?: string; agentType?: string } => {
    const n = [o.agent, o.tenant, o.type].filter((x) => x !== undefined).length;
    if (n !== 1) throw new UsageError('give exactly one of --agent, --tenant or --type');
    return o.agent !== undefined ? { agentId: o.agent } : o.tenant !== undefined ? { tenant: o.tenant } : { agentType: o.type! };
  };
  budget.command('get').description('limits and usage of a session (every limit that applies to it), a tenant or an agent type')
    .option('--agent <agentId>').option('--tenant <tenant>').option('--type <agentType>')
    .action((o: { agent?: string; tenant?: string; type?: string }, cmd: Command) => run(cmd, async (c, json) => {
      const r = await c.getBudget(refOf(o));
      const lines = [
        table(['SCOPE', 'KEY', 'METRIC', 'WINDOW', 'MAX', 'USED', 'POLICY', 'SOURCE'],
          r.limits.map((l) => [l.scope, l.key, l.metric, l.window, l.max, `${l.used ?? ''}${l.exceeded ? ' (exceeded)' : ''}`, l.policy, l.source])),
        ...r.usage.map((u) => `${u.window}: ${Object.entries(u.totals).map(([k, v]) => `${k}=${v}`).join(' ')}${u.open ? ` open=${u.open}` : ''}`),
        ...(r.held ? [`held: ${JSON.stringify(r.held)}`] : []),
      ];
      printResult(r, json, lines.join('\n'));
    }));
  budget.command('set').description('replace the limits of a session, tenant or agent type (resumes the sessions they held)')
    .option('--agent <agentId>').option('--tenant <tenant>').option('--type <agentType>')
    .option('--limit <metric:max[:window[:policy]]...>', 'a limit, e.g. tokens:100000:day:pause or cost:25.50:24h:ask (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--clear', 'remove the limits set over the API (an agent type falls back to its definition)')
    .option('--wait', 'also wait for the second look for held sessions (about 3 s) and count what it resumed')
    .action((o: { agent?: string; tenant?: string; type?: string; limit: string[]; clear?: boolean; wait?: boolean }, cmd: Command) => run(cmd, async (c, json) => {
      if (o.clear ? o.limit.length > 0 : o.limit.length === 0) throw new UsageError('give one or more --limit, or --clear');
      const limits = o.clear ? null : o.limit.map((l) => {
        const [metric, max, window, policy] = l.split(':');
        if (!metric || !max) throw new UsageError(`--limit ${l}: expected metric:max[:window[:policy]]`);
        return { metric, max, ...(window ? { window } : {}), ...(policy ? { policy } : {}) };
      });
      const r = await c.setBudget({ ...refOf(o), limits: limits as never, ...(o.wait ? { wait: true } : {}) });
      const later = r.resumedLater !== undefined ? `; ${r.resumedLater} more resumed by the second look` : o.wait ? '; the second look did not finish in time (held sessions re-check by themselves)' : '; a second look for held sessions follows in a few seconds (--wait to count it)';
      printResult(r, json, `${r.scope} ${r.key}: ${r.limits === null ? 'limits removed' : r.limits.map((l) => `${l.metric} ≤ ${l.max} per ${l.window} (${l.policy})`).join(', ')}; resumed ${r.resumed} held session(s) at once${later}`);
    }));

  // ---- dead letters ------------------------------------------------------------------------
  const dlq = program.command('dlq').description('dead letters');
  dlq.command('list').description('list dead letters, newest first')
    .option('--agent <agentId>', 'of one session')
    .option('--limit <n>', 'how many', '50')
    .action((o: { agent?: string; limit: string }, cmd: Command) => run(cmd, async (c, json) => {
      const r = await c.listDeadLetters({ limit: intOpt('--limit', o.limit), ...(o.agent ? { agentId: o.agent } : {}) });
      printResult(r, json, table(['ID', 'AGENT', 'REASON', 'ATTEMPTS', 'CREATED', 'REPLAYED', 'ERROR'],
        r.deadLetters.map((d) => [d.id, d.agentId, d.reason, String(d.attempts), when(d.createdAt), when(d.replayedAt), cell(d.error ?? '', 60)])));
    }));
  dlq.command('replay').argument('<id>').description("publish a dead letter's messages to its session again")
    .action((id: string, _o: unknown, cmd: Command) => run(cmd, async (c, json) => {
      const r = await c.replayDeadLetter({ id });
      printResult(r, json, `replayed ${id}: ${r.published} message(s) published${r.duplicates > 0 ? `, ${r.duplicates} already in the inbox (duplicate), not published again` : ''}`);
    }));

  inboxCommand(program).command('dead-letter').argument('<seq>', 'stream sequence of the stuck message (from `inbox list` or `inbox show`)')
    .description('move one message out of the inbox into the dead letters (through the API: `dlq list|replay` know it)')
    .requiredOption('--reason <text>', "why (stored as the dead letter's error)")
    .action((seqText: string, o: { reason: string }, cmd: Command) => run(cmd, async (c, json) => {
      const seq = Number(seqText);
      if (!Number.isInteger(seq) || seq <= 0) throw new UsageError(`<seq> must be a stream sequence (a positive whole number), not ${JSON.stringify(seqText)}`);
      const r = await c.deadLetterInboxMessage({ seq, reason: o.reason });
      printResult(r, json, r.removed
        ? `dead-lettered message ${r.seq} of ${r.agentId} as ${r.id} (reason operator: ${o.reason}); it is out of the inbox. Send it again with: agentry dlq replay ${r.id}`
        : `message ${r.seq} of ${r.agentId} had left the inbox already (its session acked it meanwhile); dead letter ${r.id} is stored anyway: replay it only if it was not handled`);
    }));

  // ---- cluster view ------------------------------------------------------------------------
  program.command('nodes')
    .description('the live nodes of the cluster: version, uptime, partitions, sessions, heartbeat and lease renewal lag (* = the node that answered)')
    .action((_o: unknown, cmd: Command) => run(cmd, async (c, json) => {
      const r = await c.call('listNodes', {});
      const total = r.nodes.reduce((n, x) => n + x.partitions.length, 0);
      printResult(r, json, table(['NODE', 'SELF', 'VERSION', 'UPTIME', 'PARTS', 'PARTITIONS', 'LIVE', 'ACTIVE', 'HEARTBEAT', 'LEASE LAG'], r.nodes.map((n) => [
        n.nodeId, n.self ? '*' : '', orDash(n.version), shortDuration(n.uptimeMs), String(n.partitions.length), cell(partitionRanges(n.partitions) || '-', 60),
        orDash(n.liveSessions), orDash(n.activeSessions), shortDuration(n.heartbeatAgeMs),
        // Flagged from half the TTL on: at 90% the node suspends its partitions.
        `${shortDuration(n.leaseRenewalAgeMs)}${n.leaseRenewalAgeMs !== null && n.leaseRenewalAgeMs >= r.leaseTtlMs / 2 ? ' (!)' : ''}`,
      ])) + `\n${r.nodes.length} node(s), ${total} partition(s) owned; lease TTL ${shortDuration(r.leaseTtlMs)}`);
    }));

  program.command('partitions')
    .description("every partition's owner and fencing epoch (free ones say so)")
    .option('--node <nodeId>', "only this node's partitions")
    .action((o: { node?: string }, cmd: Command) => run(cmd, async (c, json) => {
      const r = await c.call('getPartitions', {});
      const shown = o.node === undefined ? r.partitions : r.partitions.filter((p) => p.nodeId === o.node);
      const free = shown.filter((p) => p.nodeId === null).length;
      const owners = new Set(shown.map((p) => p.nodeId).filter((n) => n !== null)).size;
      const summary = o.node === undefined
        ? `${shown.length} partition(s): ${shown.length - free} owned by ${owners} node(s), ${free} free`
        : shown.length === 0 ? `node ${o.node} owns no partition` : `node ${o.node} owns ${shown.length} partition(s)`;
      printResult({ ...r, partitions: shown }, json, table(['PARTITION', 'OWNER', 'EPOCH', 'RENEWED'], shown.map((p) => [
        String(p.partition), p.nodeId ?? '(free)', orDash(p.epoch), p.renewalAgeMs === null ? '-' : `${shortDuration(p.renewalAgeMs)} ago`,
      ])) + `\n${summary}`);
    }));

  // ---- watch -------------------------------------------------------------------------------
  program.command('watch').argument('[agentId]', 'session id; all sessions when omitted')
    .description('print state changes, outputs and/or events as they happen (Ctrl-C to stop)')
    .option('--kinds <list>', 'comma-separated: state, output, event', 'state,output')
    .option('--pattern <pattern>', "event types for kind 'event', e.g. 'invoice.*'")
    .option('--max <n>', 'exit after this many notifications')
    .option('--nats [url]', 'watch outputs straight on NATS instead of through the API')
    .action(async (agentId: string | undefined, o: { kinds: string; pattern?: string; max?: string; nats?: string | boolean }, cmd: Command) => {
      if (o.nats !== undefined) { await watchOverNats(agentId, typeof o.nats === 'string' ? o.nats : deps.defaultNatsUrl()); return; }
      const kinds = o.kinds.split(',').map((k) => k.trim()).filter(Boolean);
      await withClient(cmd, deps, async (c, json) => {
        if (kinds.length === 0 || !kinds.every((k) => k === 'state' || k === 'output' || k === 'event')) throw new UsageError('--kinds takes state, output and/or event');
        const max = intOpt('--max', o.max);
        let seen = 0;
        await new Promise<void>((resolve, reject) => {
          const onSignal = (): void => { resolve(); };
          process.once('SIGINT', onSignal);
          process.once('SIGTERM', onSignal);
          c.subscribe({ kinds, ...(agentId ? { agentId } : {}), ...(o.pattern ? { pattern: o.pattern } : {}) }, (n) => {
            process.stdout.write(json ? `${JSON.stringify(n)}\n` : `${describeNotification(n)}\n`);
            if (max !== undefined && ++seen >= max) resolve();
          }, {
            onGap: (g) => { process.stderr.write(`agentry: ${g.reason === 'reconnected' ? 'reconnected; notifications while disconnected are lost' : `missed notifications ${g.expected}…${g.received - 1}`}\n`); },
          }).then(() => {
            // On stderr (stdout stays the notifications): from here on nothing is missed.
            process.stderr.write(`agentry: watching ${agentId ?? 'all sessions'} (${kinds.join(', ')}${o.pattern ? `, events ${o.pattern}` : ''}); Ctrl-C to stop\n`);
          }, reject);
        });
      }, true);
    });
}

async function sendOverNats(agentId: string, message: string, o: { kind: string; priority?: string; from?: string; msgId?: string }, url: string, json: boolean): Promise<void> {
  try {
    const nc = await connect(natsConnectOptions(url));
    try {
      const h = natsHeaders();
      h.set('Agentry-Kind', o.kind);
      h.set('Agentry-Priority', priorityOpt(o.priority) ?? 'normal');
      if (o.from) h.set('Agentry-From', o.from);
      const ack = await jetstream(nc).publish(`agentry.in.${agentId}`, message, { headers: h, ...(o.msgId ? { msgID: o.msgId } : {}) });
      printResult({ seq: ack.seq }, json, `sent to ${agentId}: seq ${ack.seq}`);
    } finally {
      await nc.close();
    }
  } catch (e) {
    printError(e, json);
    process.exitCode = e instanceof UsageError ? EXIT.USAGE : EXIT.CONNECT;
  }
}

async function watchOverNats(agentId: string | undefined, url: string): Promise<void> {
  let nc;
  try {
    nc = await connect(natsConnectOptions(url));
  } catch (e) {
    printError(e, false);
    process.exitCode = EXIT.CONNECT;
    return;
  }
  const conn = nc;
  const stop = (): void => { void conn.close(); };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  for await (const m of conn.subscribe(`agentry.out.${agentId ?? '>'}`)) {
    let body: unknown;
    try { body = m.json(); } catch { body = m.string(); }
    process.stdout.write(`${JSON.stringify({ subject: m.subject, kind: m.headers?.get('Agentry-Kind') ?? null, body })}\n`);
  }
}
