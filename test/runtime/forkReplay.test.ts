// Fork and replay from the flight recorder (issue 16 §4), over real nats-server and Postgres:
// a fork at a seq and at a transition starts from the recorded state and history, answers its
// own messages, and leaves the original unchanged; a point pruned by retention or never reached
// is POINT_NOT_RECORDED. A replay with the same agent reports no difference; a changed agent is
// reported at the first message it handles differently.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { defineAgent } from '../../actors/index.js';
import { assertBuildIsFresh } from '../durability/childRuntime.js';
import { PG_URL, natsClient, publish, startStack, waitFor, type Stack } from '../helpers.js';

const CLI = fileURLToPath(new URL('../../dist/runtime/cli.js', import.meta.url));
const FIXTURE = fileURLToPath(new URL('../fixtures/replay-notes-v2.mjs', import.meta.url));

interface Notes { notes: string[] }
const handleNotes = (batch: readonly { kind: string; body: unknown }[], state: Notes, twist: boolean): void => {
  for (const m of batch) {
    if (m.kind === 'wake') continue;
    const text = String((m.body as { text?: string } | null)?.text);
    // The "new version": it upper-cases one word it meets.
    state.notes.push(twist && text === 'three' ? text.toUpperCase() : text);
  }
};
const notes = defineAgent<Notes>({
  type: 'notes',
  onMessage: 'queue',
  maxHistory: 20,
  checkpoints: true,
  initialState: () => ({ notes: [] }),
  handle(batch, ctx) {
    handleNotes(batch, ctx.state, false);
    ctx.reply({ notes: ctx.state.notes });
    return undefined;
  },
});
const notesV2 = defineAgent<Notes>({ ...notes, handle(batch, ctx) { handleNotes(batch, ctx.state, true); ctx.reply({ notes: ctx.state.notes }); return undefined; } });
const bounded = defineAgent<Notes>({ ...notes, type: 'bounded', retention: { transitions: { maxCount: 4 } } });

let stack: Stack;
let nc: NatsConnection;
beforeAll(async () => {
  stack = await startStack('forkreplay', { agents: [notes, bounded], config: { retentionEveryMs: 100 } });
  nc = await natsClient(stack.nats.url);
}, 60_000);
afterAll(async () => {
  await nc?.close();
  await stack?.stop();
});

const notesOf = async (sid: string): Promise<string[]> =>
  ((await stack.store.loadSession(sid))?.snapshot as { context: { userState: Notes } } | undefined)?.context.userState.notes ?? [];

async function fill(sid: string, type: string, words: readonly string[]): Promise<number[]> {
  await stack.rt.createAgent(sid, type);
  const seqs: number[] = [];
  for (const w of words) {
    seqs.push(await publish(nc, sid, { text: w }));
    // One turn per message, each committed before the next arrives: every message is a point.
    await waitFor(async () => (await notesOf(sid)).length === seqs.length, `${sid}: ${w} applied`, 30_000);
  }
  return seqs;
}

describe('fork', () => {
  it('forks at a seq and at a transition; the fork answers on its own, the original is unchanged', async () => {
    const seqs = await fill('fk-1', 'notes', ['one', 'two', 'three', 'four']);
    const before = await stack.store.loadSession('fk-1');

    const f1 = await stack.rt.forkSession('fk-1', { at: { seq: seqs[1]! }, newId: 'fk-1-a' });
    expect(f1).toMatchObject({ agentId: 'fk-1-a', state: 'idle', from: { agentId: 'fk-1', lastSeq: seqs[1] } });
    expect(await notesOf('fk-1-a')).toEqual(['one', 'two']);
    expect((await stack.store.getHistory('fk-1-a', { limit: 100 })).map((h) => (h.body as { text: string }).text)).toEqual(['two', 'one']);
    expect((await stack.rt.getTransitions('fk-1-a')).map((t) => t.event)).toEqual(['fork']);

    // The fork answers its own messages from its own state.
    const replies: unknown[] = [];
    const sub = nc.subscribe('agentry.out.fk-1-a');
    void (async () => { for await (const m of sub) replies.push(m.json()); })();
    await publish(nc, 'fk-1-a', { text: 'forked' });
    await waitFor(() => replies.length > 0, 'the fork\'s reply');
    expect(replies[0]).toEqual({ notes: ['one', 'two', 'forked'] });
    sub.unsubscribe();
    expect(await notesOf('fk-1')).toEqual(['one', 'two', 'three', 'four']);
    const after = await stack.store.loadSession('fk-1');
    expect(after?.version).toBe(before?.version);
    expect(after?.snapshot).toEqual(before?.snapshot);

    // At a transition: the commit that wrote the transitions of the third message's turn.
    const ts = await stack.rt.getTransitions('fk-1');
    const hist = (await stack.store.getHistory('fk-1', { limit: 100 })).reverse();
    const third = hist[2]!;
    const t3 = ts.filter((t) => t.from.startsWith('active') && t.at >= third.at)[0]!;
    expect(t3.id).toBeTypeOf('number');
    const f2 = await stack.rt.forkSession('fk-1', { at: { transition: t3.id! } });
    expect(f2.agentId).toMatch(/^fk-1-fork-[0-9a-f]{8}$/);
    expect(await notesOf(f2.agentId)).toEqual(['one', 'two', 'three']);

    // Typed errors.
    await expect(stack.rt.forkSession('nope', { at: { seq: 1 } })).rejects.toMatchObject({ code: 'UNKNOWN_SESSION' });
    await expect(stack.rt.forkSession('fk-1', { at: { seq: seqs[3]! + 1000 } })).rejects.toMatchObject({ code: 'POINT_NOT_RECORDED' });
    await expect(stack.rt.forkSession('fk-1', { at: { seq: seqs[0]! }, newId: 'fk-1-a' })).rejects.toMatchObject({ code: 'SESSION_EXISTS' });
  }, 120_000);

  it('refuses a point pruned by retention', async () => {
    const seqs = await fill('fk-b', 'bounded', ['a', 'b', 'c', 'd', 'e', 'f']);
    await waitFor(async () => (await stack.store.listCheckpoints('fk-b')).length <= 4, 'checkpoints pruned to 4', 30_000, 50);
    await expect(stack.rt.forkSession('fk-b', { at: { seq: seqs[0]! } })).rejects.toMatchObject({ code: 'POINT_NOT_RECORDED' });
    const ok = await stack.rt.forkSession('fk-b', { at: { seq: seqs[5]! } });
    expect(await notesOf(ok.agentId)).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
  }, 120_000);
});

describe('replay', () => {
  it('reports no difference with the same agent, and the first changed message with a changed one', async () => {
    const seqs = await fill('rp-1', 'notes', ['one', 'two', 'three', 'four', 'five']);
    const same = await stack.rt.replaySession('rp-1');
    expect(same).toMatchObject({ agentId: 'rp-1', type: 'notes', turns: 5, compared: 5, differences: [] });
    expect(same.outputs).toBe(5); // produced, not published

    const changed = await stack.rt.replaySession('rp-1', { agent: notesV2 });
    expect(changed.differences).toHaveLength(1); // later turns start from the recorded state again
    const d = changed.differences[0]!;
    expect(d.seqs).toEqual([seqs[2]]);
    expect(d.paths).toEqual(['userState.notes.2']);
    expect(d.expected.userState).toEqual({ notes: ['one', 'two', 'three'] });
    expect(d.actual.userState).toEqual({ notes: ['one', 'two', 'THREE'] });
    // Nothing was committed to the original.
    expect(await notesOf('rp-1')).toEqual(['one', 'two', 'three', 'four', 'five']);
    await expect(stack.rt.replaySession('nope')).rejects.toMatchObject({ code: 'UNKNOWN_SESSION' });
  }, 120_000);

  it('agentry replay --agent-module runs a sample offline and exits 1 on a difference', async () => {
    assertBuildIsFresh();
    await fill('rp-cli', 'notes', ['one', 'two', 'three']);
    const run = (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => new Promise((res) => {
      execFile(process.execPath, [CLI, 'replay', '--agent-module', FIXTURE, ...args], {
        env: { ...process.env, DATABASE_URL: PG_URL, AGENTRY_DB_SCHEMA: stack.schema }, timeout: 60_000,
      }, (err, stdout, stderr) => { res({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }); });
    });
    const r = await run(['--session', 'rp-cli', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout) as { sessions: number; differ: number; reports: { agentId: string; differences: { paths: string[] }[] }[] };
    expect(out).toMatchObject({ sessions: 1, differ: 1 });
    expect(out.reports[0]!.differences[0]!.paths).toEqual(['userState.notes.2']);
    // A sample over the type: every notes session of this suite is replayed.
    const all = await run(['--sample', '50']);
    expect(all.stdout).toMatch(/session\(s\) replayed, [1-9]\d* differ/);
  }, 120_000);
});
