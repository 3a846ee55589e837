/**
 * Owns `agentry inbox …`: the inbox stream (`<prefix>_INBOX`) seen through the JetStream API,
 * for when a session stops making progress and a message may be stuck. No `nats` CLI needed.
 *
 * - `inbox list`  what is unacked, per partition (and per session with `--session` /
 *   `--partition`): count, oldest message and its age, and the partition consumer's view (ack
 *   pending, redelivered). The inbox is a work-queue stream: acked messages are deleted, so every
 *   message still in it is unacked.
 * - `inbox show <seq>`  one message: subject, session, partition, time, headers, payload.
 * - `inbox purge <seq> --reason …`  removes one message from the stream and announces it on
 *   `agentry.dlq.<sessionId>` (reason `purged`, with the payload), so it is never delivered
 *   again. The runtime's `dead_letters` table does not learn of it (the CLI has no store
 *   access): keep the printed payload, and `agentry send` it again if wanted.
 * - `inbox dead-letter <seq> --reason …` (registered by apiCommands.ts: it goes through the
 *   control API) has the runtime store the message as a dead letter first and then delete it,
 *   so `agentry dlq list|replay` know it.
 *
 * Faults: a NATS server that cannot be reached exits 3; a sequence that is not in the stream
 * (acked meanwhile, or never there) exits 2; a bad argument exits 1.
 */
import type { Command } from 'commander';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type ConsumerInfo, type JetStreamManager, type MsgRequest, type StoredMsg } from '@nats-io/jetstream';
import { natsConnectOptions } from '../natsUrl.js';
import { EXIT, UsageError, printError, printResult, table, when } from './output.js';

/** What the inbox commands need from the program. */
export interface InboxCommandDeps {
  /** NATS URL when neither --nats nor NATS_URL is given (the running `agentry dev`'s, else the default). */
  readonly defaultNatsUrl: () => string;
}

interface InboxOpts { nats?: string; streamPrefix?: string; json?: boolean }

/** A message the runtime cannot find in the stream (acked meanwhile, purged, or never there): exit 2. */
export class MessageNotFoundError extends Error {
  override readonly name = 'MessageNotFoundError';
  readonly code = 'NOT_FOUND';
}

/** One partition's unacked work. */
export interface PartitionBacklog {
  readonly partition: number;
  readonly unacked: number;
  readonly sessions: number;
  readonly oldest: { readonly seq: number; readonly sessionId: string; readonly at: number } | null;
  /** The partition consumer's counters (null: no consumer, e.g. no runtime owns the partition). */
  readonly consumer: { readonly name: string; readonly ackPending: number; readonly notDelivered: number; readonly redelivered: number } | null;
}

/** One message of the inbox, decoded. */
export interface InboxMessageView {
  readonly seq: number;
  readonly subject: string;
  readonly sessionId: string;
  readonly partition: number;
  readonly at: number;
  readonly headers: Record<string, string>;
  readonly size: number;
  readonly payload: unknown;
}

const PART = /^agentry\.part\.(\d+)\.(.+)$/;

function seqArg(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`<seq> must be a stream sequence (a positive whole number), not ${JSON.stringify(v)}`);
  return n;
}

/** Connects, runs `fn` with a JetStream manager, and maps failures to exit codes; never throws. */
async function withJsm(cmd: Command, deps: InboxCommandDeps, fn: (jsm: JetStreamManager, nc: NatsConnection, stream: string, json: boolean) => Promise<void>): Promise<void> {
  const o = cmd.optsWithGlobals<InboxOpts>();
  const json = o.json === true;
  const prefix = o.streamPrefix ?? process.env.AGENTRY_STREAM_PREFIX ?? 'AGENTRY';
  let nc: NatsConnection;
  try {
    nc = await connect({ ...natsConnectOptions(o.nats ?? deps.defaultNatsUrl()), timeout: 5000 });
  } catch (e) {
    printError(Object.assign(new Error(`cannot reach NATS at ${o.nats ?? deps.defaultNatsUrl()}: ${(e as Error).message} (set --nats or NATS_URL)`), { code: 'CONNECT' }), json);
    process.exitCode = EXIT.CONNECT;
    return;
  }
  try {
    await fn(await jetstreamManager(nc), nc, `${prefix}_INBOX`, json);
  } catch (e) {
    printError(e, json);
    process.exitCode = e instanceof UsageError ? EXIT.USAGE : EXIT.SERVER;
  } finally {
    await nc.close();
  }
}

/** Decodes a stored message (payload as JSON when it parses, else text). */
export function viewOf(m: StoredMsg): InboxMessageView {
  const match = PART.exec(m.subject);
  const headers: Record<string, string> = {};
  for (const [k, v] of m.header ?? []) headers[k] = v.join(', ');
  let payload: unknown;
  const text = m.string();
  try { payload = JSON.parse(text) as unknown; } catch { payload = text; }
  return {
    seq: m.seq, subject: m.subject, sessionId: match?.[2] ?? '', partition: match ? Number(match[1]) : -1,
    at: m.time.getTime(), headers, size: m.data.length, payload,
  };
}

/** The message with stream sequence `seq`, or a MessageNotFoundError. */
async function load(jsm: JetStreamManager, stream: string, seq: number): Promise<StoredMsg> {
  let m: StoredMsg | null;
  try {
    m = await jsm.streams.getMessage(stream, { seq });
  } catch (e) {
    if (/no message found|not found/i.test((e as Error).message)) m = null;
    else throw e;
  }
  if (!m) throw new MessageNotFoundError(`no message ${seq} in ${stream} (acked and gone, purged, or never there)`);
  return m;
}

/** Counts unacked messages per partition (and session), with each partition's oldest one and consumer. */
export async function inboxBacklog(jsm: JetStreamManager, stream: string, filter: { partition?: number; sessionId?: string } = {}): Promise<PartitionBacklog[]> {
  const subjects = `agentry.part.${filter.partition ?? '*'}.${filter.sessionId ?? '>'}`;
  const info = await jsm.streams.info(stream, { subjects_filter: subjects });
  const perPartition = new Map<number, { unacked: number; sessions: number }>();
  for (const [subject, count] of Object.entries(info.state.subjects ?? {})) {
    const m = PART.exec(subject);
    if (!m) continue;
    const p = Number(m[1]);
    const e = perPartition.get(p) ?? { unacked: 0, sessions: 0 };
    e.unacked += count;
    e.sessions += 1;
    perPartition.set(p, e);
  }
  const consumers = new Map<number, ConsumerInfo>();
  for await (const ci of jsm.consumers.list(stream)) {
    const m = /^agentry\.part\.(\d+)\.>$/.exec(ci.config.filter_subject ?? '');
    if (!m) continue;
    const p = Number(m[1]);
    const prev = consumers.get(p);
    if (!prev || ci.created > prev.created) consumers.set(p, ci); // the newest is the owner's
  }
  const out: PartitionBacklog[] = [];
  for (const [p, e] of [...perPartition].sort((a, b) => a[0] - b[0])) {
    // STREAM.MSG.GET takes `next_by_subj` (nats-server 2.9 answers it) though the client types only name it for direct gets.
    const next = { next_by_subj: `agentry.part.${p}.${filter.sessionId ?? '>'}`, seq: info.state.first_seq } as unknown as MsgRequest;
    const first = await jsm.streams.getMessage(stream, next).catch(() => null);
    const ci = consumers.get(p);
    out.push({
      partition: p, unacked: e.unacked, sessions: e.sessions,
      oldest: first ? { seq: first.seq, sessionId: PART.exec(first.subject)?.[2] ?? '', at: first.time.getTime() } : null,
      consumer: ci ? { name: ci.name, ackPending: ci.num_ack_pending, notDelivered: ci.num_pending, redelivered: ci.num_redelivered } : null,
    });
  }
  return out;
}

/**
 * The `inbox` command, made on first use: `inbox dead-letter` goes through the control API and
 * is added by `registerApiCommands` (which knows the API's address), the rest here.
 */
export function inboxCommand(program: Command): Command {
  return program.commands.find((c) => c.name() === 'inbox') ?? program.command('inbox')
    .description('inspect the inbox stream over JetStream, and remove or dead-letter a stuck message')
    .option('--nats <url>', 'NATS server (default: NATS_URL, else the running `agentry dev`\'s)')
    .option('--stream-prefix <prefix>', 'stream name prefix (default: AGENTRY_STREAM_PREFIX, else AGENTRY)');
}

/** Adds `agentry inbox list|show|purge`. */
export function registerInboxCommands(program: Command, deps: InboxCommandDeps): void {
  const inbox = inboxCommand(program);

  inbox.command('list').description('unacked messages per partition: count, sessions, oldest, consumer counters')
    .option('--partition <p>', 'one partition only')
    .option('--session <id>', 'one session only')
    .action(async (o: { partition?: string; session?: string }, cmd: Command) => {
      await withJsm(cmd, deps, async (jsm, _nc, stream, json) => {
        const partition = o.partition === undefined ? undefined : Number(o.partition);
        if (partition !== undefined && !(Number.isInteger(partition) && partition >= 0)) throw new UsageError(`--partition must be a partition number (0, 1, …), not ${JSON.stringify(o.partition)}`);
        const rows = await inboxBacklog(jsm, stream, { ...(partition !== undefined ? { partition } : {}), ...(o.session ? { sessionId: o.session } : {}) });
        const now = Date.now();
        const human = rows.length === 0
          ? `${stream}: nothing unacked${o.session ? ` for ${o.session}` : ''}`
          : table(['partition', 'unacked', 'sessions', 'oldest seq', 'oldest session', 'age', 'ack pending', 'not delivered', 'redelivered'], rows.map((r) => [
            String(r.partition), String(r.unacked), String(r.sessions), String(r.oldest?.seq ?? '-'), r.oldest?.sessionId ?? '-',
            r.oldest ? `${Math.max(0, Math.round((now - r.oldest.at) / 1000))} s` : '-',
            r.consumer ? String(r.consumer.ackPending) : '-', r.consumer ? String(r.consumer.notDelivered) : '-', r.consumer ? String(r.consumer.redelivered) : '-',
          ]));
        printResult({ stream, partitions: rows }, json, human);
      });
    });

  inbox.command('show').argument('<seq>', 'stream sequence (from `inbox list`, a dead letter, or `send`)').description('one message of the inbox')
    .action(async (seqText: string, _o: unknown, cmd: Command) => {
      await withJsm(cmd, deps, async (jsm, _nc, stream, json) => {
        const v = viewOf(await load(jsm, stream, seqArg(seqText)));
        printResult(v, json, [
          `seq ${v.seq}  session ${v.sessionId}  partition ${v.partition}  ${when(v.at)}  ${v.size} bytes`,
          ...Object.entries(v.headers).map(([k, h]) => `  ${k}: ${h}`),
          typeof v.payload === 'string' ? v.payload : JSON.stringify(v.payload, null, 2),
        ].join('\n'));
      });
    });

  inbox.command('purge').argument('<seq>', 'stream sequence of the message to remove')
    .description('remove one message from the inbox (never delivered again) and announce it on agentry.dlq.<session>')
    .requiredOption('--reason <text>', 'why (kept in the announcement)')
    .action(async (seqText: string, o: { reason: string }, cmd: Command) => {
      await withJsm(cmd, deps, async (jsm, nc, stream, json) => {
        const seq = seqArg(seqText);
        const v = viewOf(await load(jsm, stream, seq));
        if (v.partition < 0) throw new UsageError(`message ${seq} (${v.subject}) is not an inbox message`);
        if (!(await jsm.streams.deleteMessage(stream, seq, false))) throw new MessageNotFoundError(`message ${seq} could not be removed (acked meanwhile?)`);
        const notice = {
          id: `${v.sessionId}:${seq}`, sessionId: v.sessionId, reason: 'purged', error: o.reason, attempts: 0,
          payload: v.payload, createdAt: Date.now(), replayedAt: null, headers: v.headers,
        };
        nc.publish(`agentry.dlq.${v.sessionId}`, JSON.stringify(notice));
        await nc.flush();
        printResult({ purged: v, reason: o.reason }, json, [
          `purged message ${seq} of ${v.sessionId} (partition ${v.partition}): ${o.reason}`,
          `payload: ${typeof v.payload === 'string' ? v.payload : JSON.stringify(v.payload)}`,
          `announced on agentry.dlq.${v.sessionId}; send it again with: agentry send ${v.sessionId} '${typeof v.payload === 'string' ? v.payload : JSON.stringify(v.payload)}'`,
        ].join('\n'));
      });
    });
}
