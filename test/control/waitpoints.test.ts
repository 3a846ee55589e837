/* eslint-disable @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-return -- the raw client deals in untyped JSON on purpose */
// Waitpoints (issue 15 §3) over real NATS + Postgres: a handler waits on a waitpoint; it is
// completed by JSON-RPC (completeWaitpoint), by the CLI (`agentry waitpoint complete`) and by
// `POST /waitpoints/<id>` without the API token; completing twice with the same value is a no-op
// success, with another value WAITPOINT_CONFLICT; a value the schema refuses is INVALID_ARGUMENT
// and leaves it pending; a timeout settles it with its default (or none); cancelWaitpoint;
// listWaitpoints by type, tag and age. Each settlement reaches the session exactly once.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { codes, defineAgent, type WaitpointMessage } from '../../actors/index.js';
import { startControlPlane, type ControlPlane } from '../../runtime/index.js';
import { toolApproval } from '../../examples/toolApproval.js';
import { assertDistFresh } from '../builtFresh.js';
import { startStack, tempDir, waitFor, type Stack } from '../helpers.js';
import { RawRpc } from './rawRpc.js';

const TOKEN = `wp-${Math.random().toString(36).slice(2)}-${Date.now()}`;
const CLI = join(process.cwd(), 'dist', 'runtime', 'cli.js');

interface Ask { timeoutMs?: number; default?: unknown; tag?: string }
const approver = defineAgent<{ got: WaitpointMessage[] }>({
  type: 'wp-approver',
  initialState: () => ({ got: [] }),
  handle(batch, ctx) {
    for (const m of batch) {
      if (m.kind === 'waitpoint') ctx.state.got.push(m.body as WaitpointMessage);
      const ask = (m.body as { ask?: Ask } | null)?.ask;
      if (m.kind === 'message' && ask) {
        const next = ctx.waitFor({
          waitpoint: {
            schema: z.object({ approve: z.boolean(), note: z.string().optional() }),
            timeoutMs: ask.timeoutMs ?? 600_000, ...(ask.default !== undefined ? { default: ask.default } : {}),
            tags: ['approval', ask.tag ?? 'plain'],
          },
        });
        ctx.reply({ waitpointId: next.waitpointId });
        return next;
      }
    }
    return undefined;
  },
});

let stack: Stack;
let cp: ControlPlane;
let c: RawRpc;
let data: ReturnType<typeof tempDir>;

beforeAll(async () => {
  data = tempDir('agentry-wp-');
  stack = await startStack('waitpoints_api', { agents: [approver, toolApproval] });
  cp = await startControlPlane(stack.rt, { port: 0, token: TOKEN });
  c = await RawRpc.open(cp.rpcUrl, { headers: { Authorization: `Bearer ${TOKEN}` } });
});

afterAll(async () => {
  c?.close();
  await cp?.close();
  await stack?.stop();
  data?.cleanup();
});

/** Creates a session, asks it to wait on a waitpoint, and returns the waitpoint id once it waits. */
async function waiting(sid: string, ask: Ask = {}): Promise<string> {
  await c.ok('createAgent', { agentId: sid, type: 'wp-approver' });
  await c.ok('sendMessage', { agentId: sid, message: { ask } });
  const v = await waitFor(async () => {
    const a = await c.ok('getAgent', { agentId: sid });
    return a.state === 'waiting' && a.wait?.waitpointId ? a : null;
  }, `${sid} waiting on a waitpoint`);
  const id = v.wait.waitpointId as string;
  // getAgent shows the live wait at once; its waitpoint row lands with the wait's commit.
  await waitFor(async () => (await c.ok('listWaitpoints', { agentId: sid })).waitpoints.some((w: { id: string }) => w.id === id), `${sid}'s waitpoint stored`);
  return id;
}

/** The waitpoint messages the session's handler received (from its committed state). */
async function received(sid: string): Promise<WaitpointMessage[]> {
  return (await c.ok('getAgent', { agentId: sid })).userState.got;
}

const resumed = (sid: string) => waitFor(async () => {
  const a = await c.ok('getAgent', { agentId: sid });
  return a.state === 'idle' && a.userState.got.length > 0 ? a : null;
}, `${sid} resumed`);

describe('waitpoints', () => {
  it('completeWaitpoint: an invalid value is refused and leaves it pending; then completed once; same value again is a no-op, another is WAITPOINT_CONFLICT', async () => {
    const sid = 'wp-rpc';
    const id = await waiting(sid, { tag: 'rpc' });
    expect(id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    const listed = await c.ok('listWaitpoints', { agentType: 'wp-approver', tag: 'rpc' });
    expect(listed.waitpoints.map((w: { id: string }) => w.id)).toEqual([id]);
    expect(listed.waitpoints[0]).toMatchObject({ agentId: sid, status: 'pending', tags: ['approval', 'rpc'], schema: { type: 'object' } });

    const bad = await c.err('completeWaitpoint', { id, value: { approve: 'yes' } });
    expect(bad.code).toBe(codes.INVALID_ARGUMENT);
    expect(bad.message).toMatch(/approve/);
    expect((await c.ok('listWaitpoints', { tag: 'rpc' })).waitpoints[0].status).toBe('pending');
    expect((await c.ok('getAgent', { agentId: sid })).state).toBe('waiting');

    expect(await c.ok('completeWaitpoint', { id, value: { approve: true, note: 'ok' } })).toEqual({ id, agentId: sid, status: 'completed', duplicate: false });
    await resumed(sid);
    expect(await c.ok('completeWaitpoint', { id, value: { note: 'ok', approve: true } })).toMatchObject({ duplicate: true });
    const conflict = await c.err('completeWaitpoint', { id, value: { approve: false } });
    expect(conflict.code).toBe(codes.WAITPOINT_CONFLICT);
    expect(conflict.data).toMatchObject({ type: 'WAITPOINT_CONFLICT' });
    expect(await received(sid)).toEqual([{ id, status: 'completed', value: { approve: true, note: 'ok' } }]);
    const inHistory = async () => (await c.ok('getHistory', { agentId: sid })).messages.filter((m: { kind: string }) => m.kind === 'waitpoint');
    await waitFor(async () => (await inHistory()).length > 0, 'the waitpoint message in history');
    expect(await inHistory()).toHaveLength(1);
    expect((await c.ok('listWaitpoints', { tag: 'rpc' })).waitpoints).toEqual([]);
    expect((await c.ok('listWaitpoints', { tag: 'rpc', status: 'completed' })).waitpoints[0]).toMatchObject({ id, value: { approve: true, note: 'ok' } });
  });

  it('an unknown id is UNKNOWN_WAITPOINT', async () => {
    expect((await c.err('completeWaitpoint', { id: 'AAAAAAAAAAAAAAAAAAAAAA', value: 1 })).code).toBe(codes.UNKNOWN_WAITPOINT);
    expect((await c.err('completeWaitpoint', { id: 'nope', value: 1 })).code).toBe(codes.UNKNOWN_WAITPOINT);
    expect((await c.err('cancelWaitpoint', { id: 'AAAAAAAAAAAAAAAAAAAAAA' })).code).toBe(codes.UNKNOWN_WAITPOINT);
  });

  it('POST /waitpoints/<id> completes without the API token, while other routes still need it', async () => {
    const sid = 'wp-http';
    const id = await waiting(sid);
    const noToken = await fetch(`${cp.url}/agents/${sid}/messages`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ message: 'x' }) });
    expect(noToken.status).toBe(401);
    const post = (value: unknown) => fetch(`${cp.url}/waitpoints/${id}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(value) });
    const bad = await post({ approve: 1 });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { type: string } }).error.type).toBe('INVALID_ARGUMENT');
    const ok = await post({ approve: false });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ id, agentId: sid, status: 'completed', duplicate: false });
    await resumed(sid);
    expect((await post({ approve: false })).status).toBe(200);
    const conflict = await post({ approve: true });
    expect(conflict.status).toBe(409);
    expect(((await conflict.json()) as { error: { type: string; code: number } }).error).toMatchObject({ type: 'WAITPOINT_CONFLICT', code: codes.WAITPOINT_CONFLICT });
    const unknown = await fetch(`${cp.url}/waitpoints/AAAAAAAAAAAAAAAAAAAAAA`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '1' });
    expect(unknown.status).toBe(404);
    expect(await received(sid)).toEqual([{ id, status: 'completed', value: { approve: false } }]);
  });

  it('agentry waitpoint complete <id> <json> (the CLI)', async () => {
    assertDistFresh('dist/runtime/cli.js', ['client', join('runtime', 'cli'), join('runtime', 'http'), join('runtime', 'cli.ts'), join('runtime', 'waitpoints.ts')]);
    const sid = 'wp-cli';
    const id = await waiting(sid, { tag: 'cli' });
    const cli = (...args: string[]) => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [CLI, ...args], {
        env: { ...process.env, AGENTRY_URL: cp.rpcUrl, AGENTRY_TOKEN: TOKEN, AGENTRY_DATA_DIR: data.dir, AGENTRY_LOG_LEVEL: 'silent' }, timeout: 30_000,
      }, (err, stdout, stderr) => { resolve({ code: err ? Number((err as { code?: unknown }).code ?? -1) : 0, stdout, stderr }); });
    });
    const list = await cli('waitpoint', 'list', '--tag', 'cli');
    expect(list.stdout).toContain(id);
    const bad = await cli('waitpoint', 'complete', id, '{"approve":"x"}');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/approve/); // refused for its value, not for how the id reads
    // An id that starts with '-' (1 in 64 did before 2026-11-28) is an id, not an option.
    const dashed = await cli('waitpoint', 'cancel', '-AAAAAAAAAAAAAAAAAAAAA');
    expect(dashed.stderr).not.toMatch(/unknown option/);
    expect(dashed.stderr).toMatch(/UNKNOWN_WAITPOINT/);
    const ok = await cli('waitpoint', 'complete', id, '{"approve":true}');
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('completed');
    await resumed(sid);
    expect(await received(sid)).toEqual([{ id, status: 'completed', value: { approve: true } }]);
  });

  it('a timeout settles it with its default; without a default the value is null; completing it afterwards is WAITPOINT_CLOSED', async () => {
    const withDefault = await waiting('wp-timeout-default', { timeoutMs: 300, default: { approve: false, note: 'timed out' } });
    const without = await waiting('wp-timeout-none', { timeoutMs: 300 });
    await resumed('wp-timeout-default');
    await resumed('wp-timeout-none');
    expect(await received('wp-timeout-default')).toEqual([{ id: withDefault, status: 'timed-out', value: { approve: false, note: 'timed out' } }]);
    expect(await received('wp-timeout-none')).toEqual([{ id: without, status: 'timed-out', value: null }]);
    const late = await c.err('completeWaitpoint', { id: without, value: { approve: true } });
    expect(late.code).toBe(codes.WAITPOINT_CLOSED);
    expect(late.data).toMatchObject({ type: 'WAITPOINT_CLOSED', status: 'timed-out' });
  });

  it('cancelWaitpoint resumes the session with status cancelled; listWaitpoints filters by age', async () => {
    const sid = 'wp-cancel';
    const id = await waiting(sid, { tag: 'cancel' });
    expect((await c.ok('listWaitpoints', { tag: 'cancel', olderThanMs: 3_600_000 })).waitpoints).toEqual([]);
    expect((await c.ok('listWaitpoints', { tag: 'cancel', olderThanMs: 0 })).waitpoints).toHaveLength(1);
    expect(await c.ok('cancelWaitpoint', { id })).toEqual({ id, agentId: sid, status: 'cancelled' });
    await resumed(sid);
    expect(await received(sid)).toEqual([{ id, status: 'cancelled', value: null }]);
    expect((await c.err('completeWaitpoint', { id, value: { approve: true } })).code).toBe(codes.WAITPOINT_CLOSED);
  });

  it('the example tool-approval agent runs the tool only once a person approves it', async () => {
    const sid = 'wp-example';
    await c.ok('createAgent', { agentId: sid, type: 'tool-approval' });
    await c.ok('sendMessage', { agentId: sid, message: 'refund 40 to alice' });
    const w = await waitFor(async () => (await c.ok('listWaitpoints', { agentId: sid })).waitpoints[0], 'the approval waitpoint');
    expect(w.tags).toEqual(['approval', 'tool:refund']);
    expect(w.schema).toMatchObject({ type: 'object', required: ['approve'] });
    const ok = await fetch(`${cp.url}/waitpoints/${w.id}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"approve":true}' });
    expect(ok.status).toBe(200);
    const done = await waitFor(async () => {
      const a = await c.ok('getAgent', { agentId: sid });
      return a.state === 'idle' && a.userState.pending === null ? a : null;
    }, 'the approved tool call');
    expect(done.userState.transcript).toEqual([{ role: 'user', text: 'refund 40 to alice' }, { role: 'tool', text: 'refunded 40 to alice' }]);
  });

  it('listWaitpoints pages with next', async () => {
    const ids = [await waiting('wp-page-1', { tag: 'page' }), await waiting('wp-page-2', { tag: 'page' }), await waiting('wp-page-3', { tag: 'page' })];
    const first = await c.ok('listWaitpoints', { tag: 'page', limit: 2 });
    expect(first.waitpoints).toHaveLength(2);
    const second = await c.ok('listWaitpoints', { tag: 'page', limit: 2, after: first.next });
    expect(second.next).toBeNull();
    expect([...first.waitpoints, ...second.waitpoints].map((w: { id: string }) => w.id).sort()).toEqual([...ids].sort());
  });
});
