/* eslint-disable @typescript-eslint/no-unsafe-member-access -- the raw client deals in untyped JSON on purpose */
// Issue 13, item 8: a stuck inbox message is moved to the dead letters by the runtime
// (deadLetterInboxMessage / `agentry inbox dead-letter <seq>`): the dead letter is stored the way
// the runtime stores its own (so `dlq list|replay` know it) before the message leaves the stream,
// and a retry after a failure in between stores no second one. Real nats-server and Postgres.
// Messages stay in the stream undelivered because the test pauses their partition's consumer,
// as a suspended lease does; restarting it delivers what is left, oldest first.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineAgent } from '../../actors/index.js';
import { methods } from '../../client/index.js';
import { partitionOf, startControlPlane, type ControlPlane, type Runtime } from '../../runtime/index.js';
import { assertDistFresh } from '../builtFresh.js';
import { startStack, waitFor, type Stack } from '../helpers.js';
import { RawRpc } from './rawRpc.js';

const CLI = join(process.cwd(), 'dist', 'runtime', 'cli.js');
let stack: Stack;
let rt: Runtime;
let cp: ControlPlane;
let c: RawRpc;

const seen = new Map<string, unknown[]>();
const recorder = defineAgent({
  type: 'recorder',
  onMessage: 'queue',
  handle(batch, ctx) {
    for (const m of batch) if (m.kind !== 'wake') seen.set(ctx.sessionId, [...(seen.get(ctx.sessionId) ?? []), m.body]);
    return undefined;
  },
});

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, AGENTRY_URL: cp.rpcUrl, AGENTRY_LOG_LEVEL: 'silent' }, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** A session whose partition consumer is paused after its first message: what comes next waits in the stream. */
async function stalled(sid: string): Promise<number> {
  await rt.createAgent(sid, 'recorder');
  await rt.sendMessage(sid, 'warm-up');
  await waitFor(() => seen.get(sid)?.length === 1, `${sid}'s first message handled`);
  const p = partitionOf(sid, rt.config.partitions);
  rt.transport.pausePartition(p);
  return p;
}

const inStream = async (seq: number): Promise<boolean> =>
  (await rt.transport.jsm.streams.getMessage(rt.transport.inboxStream, { seq }).catch(() => null)) !== null;

beforeAll(async () => {
  stack = await startStack('inbox_dead_letter', { agents: [recorder] });
  ({ rt } = stack);
  cp = await startControlPlane(rt, { port: 0 });
  c = await RawRpc.open(cp.rpcUrl);
});

afterAll(async () => {
  c?.close();
  await cp?.close();
  await stack?.stop();
});

describe('deadLetterInboxMessage', () => {
  it('stores the dead letter before removing the message; a retry after a failed removal stores no second one; replay delivers it', async () => {
    const p = await stalled('dl-1');
    const s1 = (await rt.sendMessage('dl-1', 'm1')).seq;
    const s2 = (await rt.sendMail('dl-1', 'm2', { from: 'ops', priority: 'high' })).seq;
    const s3 = (await rt.sendMessage('dl-1', 'm3')).seq;
    expect([await inStream(s1), await inStream(s2), await inStream(s3)]).toEqual([true, true, true]);

    // The removal fails (NATS went away between the two steps): the dead letter is stored already.
    const streams = rt.transport.jsm.streams as { deleteMessage: (...a: unknown[]) => Promise<boolean> };
    const deleteMessage = streams.deleteMessage;
    streams.deleteMessage = () => Promise.reject(new Error('injected: connection lost'));
    let failed;
    try {
      failed = await c.err('deadLetterInboxMessage', { seq: s2, reason: 'poison: crashes the parser' });
    } finally {
      streams.deleteMessage = deleteMessage;
    }
    expect(failed).toMatchObject({ code: 5003, data: { type: 'NOT_READY', retryable: true } });
    expect(failed.message).toContain(`dead letter dl-1:${s2} is stored`);
    expect(await inStream(s2)).toBe(true);
    const stored = await stack.store.listDeadLetters({ sessionId: 'dl-1' });
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatchObject({
      id: `dl-1:${s2}`, sessionId: 'dl-1', reason: 'operator', error: 'poison: crashes the parser', attempts: 0, replayedAt: null,
      payload: [{ seq: s2, kind: 'mail', body: 'm2', priority: 'high', from: 'ops' }],
    });

    // The retry removes it, and the store still holds one dead letter for it.
    const done = await c.ok('deadLetterInboxMessage', { seq: s2, reason: 'poison: crashes the parser' });
    expect(methods.deadLetterInboxMessage.result.safeParse(done).success).toBe(true);
    expect(done).toEqual({ id: `dl-1:${s2}`, agentId: 'dl-1', seq: s2, removed: true });
    expect(await inStream(s2)).toBe(false);
    expect(await stack.store.listDeadLetters({ sessionId: 'dl-1' })).toHaveLength(1);
    const again = await c.err('deadLetterInboxMessage', { seq: s2, reason: 'again' });
    expect(again).toMatchObject({ code: 4002, data: { type: 'INVALID_ARGUMENT' } });
    expect(again.message).toContain(`no message ${s2} in AGENTRY_INBOX`);
    expect((await c.err('deadLetterInboxMessage', { seq: 0, reason: 'x' })).code).toBe(-32602);
    expect((await c.err('deadLetterInboxMessage', { seq: s1 })).message).toContain('reason: required');

    // The consumer comes back: the session gets the others, in order, and never the dead-lettered one.
    rt.transport.restartPartition(p, 'test: resume');
    await waitFor(() => seen.get('dl-1')?.length === 3, 'm1 and m3 handled');
    expect(seen.get('dl-1')).toEqual(['warm-up', 'm1', 'm3']);

    // dlq list shows it; replay sends it again as it was (mail, high, from ops).
    const listed = await c.ok('listDeadLetters', { agentId: 'dl-1' });
    expect(listed.deadLetters.map((d: { id: string; reason: string }) => [d.id, d.reason])).toEqual([[`dl-1:${s2}`, 'operator']]);
    expect(await c.ok('replayDeadLetter', { id: `dl-1:${s2}` })).toEqual({ published: 1, duplicates: 0 });
    await waitFor(() => seen.get('dl-1')?.length === 4, 'the replayed message handled');
    expect(seen.get('dl-1')).toEqual(['warm-up', 'm1', 'm3', 'm2']);
    // The handler saw it before its run committed: wait for the history row, then check it.
    const newest = await waitFor(async () => {
      const m = (await c.ok('getHistory', { agentId: 'dl-1', limit: 1 })).messages[0] as { body?: unknown } | undefined;
      return m?.body === 'm2' ? m : null;
    }, 'the replayed message in history', 60_000);
    expect(newest).toMatchObject({ kind: 'mail', body: 'm2', priority: 'high', from: 'ops', outcome: 'ok' });
  }, 120_000);

  it('agentry inbox dead-letter <seq> --reason: through the API, known to dlq list and replay', async () => {
    assertDistFresh('dist/runtime/cli.js', ['client', join('runtime', 'cli'), join('runtime', 'http'), join('runtime', 'cli.ts')]);
    const p = await stalled('dl-2');
    const seq = (await rt.sendMessage('dl-2', { step: 1 })).seq;
    const r = await cli('inbox', 'dead-letter', String(seq), '--reason', 'stuck for an hour');
    expect(r, r.stderr).toMatchObject({ code: 0 });
    expect(r.stdout).toBe(`dead-lettered message ${seq} of dl-2 as dl-2:${seq} (reason operator: stuck for an hour); it is out of the inbox. Send it again with: agentry dlq replay dl-2:${seq}\n`);
    expect(await inStream(seq)).toBe(false);
    const again = await cli('inbox', 'dead-letter', String(seq), '--reason', 'again', '--json');
    expect(again.code).toBe(2);
    expect(JSON.parse(again.stderr).error).toMatchObject({ type: 'INVALID_ARGUMENT' });
    expect((await cli('inbox', 'dead-letter', 'abc', '--reason', 'x')).code).toBe(1);
    expect((await cli('inbox', 'dead-letter', String(seq))).code).toBe(1); // --reason is required

    const list = JSON.parse((await cli('dlq', 'list', '--agent', 'dl-2', '--json')).stdout) as { deadLetters: { id: string; reason: string; error: string }[] };
    expect(list.deadLetters).toEqual([expect.objectContaining({ id: `dl-2:${seq}`, reason: 'operator', error: 'stuck for an hour' })]);
    rt.transport.restartPartition(p, 'test: resume');
    const replayed = await cli('dlq', 'replay', `dl-2:${seq}`);
    expect(replayed).toMatchObject({ code: 0, stdout: `replayed dl-2:${seq}: 1 message(s) published\n` });
    await waitFor(() => seen.get('dl-2')?.length === 2, 'the replayed message handled');
    expect(seen.get('dl-2')).toEqual(['warm-up', { step: 1 }]);
  }, 120_000);
});
