// Issue 5, proof 6: the `agentry` CLI end to end against a running runtime (real nats-server,
// real Postgres, the control plane with a token): create, send, watch the reply, sleep, wake,
// stop — as a user would run it (`node dist/runtime/cli.js`), with --json and exit codes.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echo } from '../../examples/echo.js';
import { startControlPlane, type ControlPlane, type Runtime } from '../../runtime/index.js';
import { natsClient, tempDir, waitFor, startStack, type Stack } from '../helpers.js';
import { assertDistFresh } from '../builtFresh.js';

let stack: Stack;
let rt: Runtime;
let cp: ControlPlane;
let data: ReturnType<typeof tempDir>;
const TOKEN = `cli-${Math.random().toString(36).slice(2)}-${Date.now()}`;
const CLI = join(process.cwd(), 'dist', 'runtime', 'cli.js');

/** Fails early and clearly when the CLI under test was not built from the current sources. */
function assertBuilt(): void {
  assertDistFresh('dist/runtime/cli.js', ['client', join('runtime', 'cli'), join('runtime', 'http'), join('runtime', 'cli.ts')]);
}

function env(): NodeJS.ProcessEnv {
  return { ...process.env, AGENTRY_URL: cp.rpcUrl, AGENTRY_TOKEN: TOKEN, AGENTRY_DATA_DIR: data.dir, AGENTRY_LOG_LEVEL: 'silent' };
}

/** Runs one CLI command to completion. */
function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: env(), timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function metric(sample: string): Promise<number> {
  const text = await (await fetch(`${cp.url}/metrics`, { headers: { Authorization: `Bearer ${TOKEN}` } })).text();
  const line = text.split('\n').find((l) => l.startsWith(sample + ' '));
  return line ? Number(line.slice(sample.length + 1)) : 0;
}

beforeAll(async () => {
  assertBuilt();
  data = tempDir('agentry-cli-');
  stack = await startStack('control_cli', { agents: [echo] });
  ({ rt } = stack);
  cp = await startControlPlane(rt, { port: 0, token: TOKEN });
});

afterAll(async () => {
  await cp?.close();
  await stack?.stop();
  data?.cleanup();
});

describe('agentry CLI', () => {
  it('create, send, watch the reply, sleep, wake, stop', async () => {
    const created = await cli('agents', 'create', 'cli-a', '--type', 'echo', '--json');
    expect(created).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(created.stdout)).toEqual({ agentId: 'cli-a', type: 'echo', state: 'idle' });

    let watched = '';
    const watch: ChildProcess = spawn(process.execPath, [CLI, 'watch', 'cli-a', '--json'], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    watch.stdout!.on('data', (d: Buffer) => { watched += d.toString(); });
    const watchExit = new Promise<number | null>((r) => watch.on('exit', (code) => { r(code); }));
    try {
      await waitFor(async () => (await metric('agentry_rpc_requests_total{method="subscribe",outcome="ok"}')) >= 1, 'watch to subscribe');
      const notes = (): { kind: string; seq: number; data: { kind?: string; body?: { text?: string }; to?: string } }[] =>
        watched.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { kind: string; seq: number; data: { kind?: string; body?: { text?: string }; to?: string } });

      const sent = await cli('send', 'cli-a', 'hello from the cli', '--json');
      expect(sent.code).toBe(0);
      expect(JSON.parse(sent.stdout).seq).toBeGreaterThan(0);
      const reply = await waitFor(() => notes().find((n) => n.kind === 'output'), 'the reply in watch');
      expect(reply.data).toMatchObject({ kind: 'reply', body: { text: 'hello from the cli' } });

      const slept = await cli('agents', 'sleep', 'cli-a', '--for', '1h', '--wake-on-mail', 'urgent', '--json');
      expect(slept.code).toBe(0);
      expect(JSON.parse(slept.stdout)).toMatchObject({ agentId: 'cli-a', state: 'sleeping' });
      expect(JSON.parse((await cli('agents', 'get', 'cli-a', '--json')).stdout)).toMatchObject({ state: 'sleeping', wake: { mailPriority: 'urgent' } });

      const woke = await cli('agents', 'wake', 'cli-a');
      expect(woke.code).toBe(0);
      expect(woke.stdout).toContain('cli-a:');
      await waitFor(async () => JSON.parse((await cli('agents', 'get', 'cli-a', '--json')).stdout).state === 'idle', 'idle after wake');

      const stopped = await cli('agents', 'stop', 'cli-a', '--reason', 'done', '--json');
      expect(stopped.code).toBe(0);
      expect(JSON.parse(stopped.stdout)).toEqual({ agentId: 'cli-a', state: 'stopped' });

      await waitFor(() => notes().some((n) => n.kind === 'state' && n.data.to === 'stopped'), 'watch to see the stop');
      const path = notes().filter((n) => n.kind === 'state').map((n) => n.data.to!.split('.')[0]);
      expect(path).toEqual(expect.arrayContaining(['active', 'idle', 'sleeping', 'stopped']));
      expect(notes().map((n) => n.seq)).toEqual(notes().map((_, i) => i + 1));
    } finally {
      watch.kill('SIGINT');
    }
    expect(await watchExit).toBe(0);

    const list = await cli('agents', 'list');
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^AGENT\s+TYPE\s+STATE/);
    expect(list.stdout).toMatch(/cli-a\s+echo\s+stopped/);
    const filtered = await cli('agents', 'list', '--status', 'idle,stopped', '--id-prefix', 'cli-', '--sort', 'updatedAt', '--json');
    expect(filtered.code).toBe(0);
    expect((JSON.parse(filtered.stdout) as { agents: { agentId: string; state: string }[] }).agents).toContainEqual(expect.objectContaining({ agentId: 'cli-a', state: 'stopped' }));
    const hist = await cli('agents', 'history', 'cli-a', '--json');
    const messages = (JSON.parse(hist.stdout) as { messages: { body: unknown }[] }).messages;
    expect(messages.some((m) => m.body === 'hello from the cli')).toBe(true);
  }, 90_000);

  it('mail, dead letters, and watch --max', async () => {
    await cli('agents', 'create', 'cli-b', '--type', 'echo');
    const watch = spawn(process.execPath, [CLI, 'watch', 'cli-b', '--kinds', 'output', '--max', '1'], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    watch.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    watch.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const exited = new Promise<number | null>((r) => watch.on('exit', (code) => { r(code); }));
    // `watch` says when it is subscribed; what is sent after that line is not missed.
    await waitFor(() => err.includes('agentry: watching cli-b (output); Ctrl-C to stop'), 'the watching line');
    const mail = await cli('mail', 'cli-b', '{"note":"hi"}', '--from', 'cli-a', '--priority', 'high');
    expect(mail).toMatchObject({ code: 0, stdout: expect.stringMatching(/^mailed cli-b: seq \d+/) });
    expect(await exited).toBe(0);
    expect(out).toMatch(/^cli-b reply: \{"text":"\{\\"note\\":\\"hi\\"\}"/);
    const dlq = await cli('dlq', 'list', '--json');
    expect(dlq.code).toBe(0);
    expect(JSON.parse(dlq.stdout)).toHaveProperty('deadLetters');
  });

  it('watch sees what another node publishes right after its watching line', async () => {
    const watch = spawn(process.execPath, [CLI, 'watch', 'cli-far', '--kinds', 'output', '--max', '1', '--json'], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    watch.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    watch.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const exited = new Promise<number | null>((r) => watch.on('exit', (code) => { r(code); }));
    const far = await natsClient(stack.nats.url); // not the runtime's connection: as a node elsewhere would publish
    try {
      await waitFor(() => err.includes('agentry: watching cli-far (output)'), 'the watching line', 30_000, 1);
      far.publish('agentry.out.cli-far', JSON.stringify({ text: 'from afar' }));
      await far.flush();
      expect(await exited).toBe(0);
      expect(JSON.parse(out)).toMatchObject({ seq: 1, kind: 'output', agentId: 'cli-far', data: { body: { text: 'from afar' } } });
    } finally {
      watch.kill('SIGKILL');
      await far.close();
    }
  });

  it('takes the http:// address the dev banner shows; names the default it tried; exits quietly when its reader goes', async () => {
    const viaHttp = await cli('--url', cp.url, 'agents', 'list', '--json');
    expect(viaHttp, viaHttp.stderr).toMatchObject({ code: 0 });
    expect(JSON.parse(viaHttp.stdout)).toHaveProperty('agents');

    // No --url, no AGENTRY_URL: the data directory's api.url (left by `agentry dev`) is used and named.
    const elsewhere = tempDir('agentry-cli-default-');
    try {
      writeFileSync(join(elsewhere.dir, 'api.url'), 'ws://127.0.0.1:1/rpc');
      const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
        const { AGENTRY_URL: _omit, ...rest } = env();
        execFile(process.execPath, [CLI, 'agents', 'list'], { env: { ...rest, AGENTRY_DATA_DIR: elsewhere.dir }, timeout: 30_000 }, (e, _out, stderr) => {
          resolve({ code: e ? (e as { code?: number }).code ?? -1 : 0, stderr });
        });
      });
      expect(r.code).toBe(3);
      expect(r.stderr).toContain(`agentry: tried ws://127.0.0.1:1/rpc (the running agentry dev's, from ${join(elsewhere.dir, 'api.url')})`);
    } finally { elsewhere.cleanup(); }

    // `agentry watch --json | head -1`: the reader closes the pipe; the next write must not crash.
    await cli('agents', 'create', 'cli-pipe', '--type', 'echo');
    const watch = spawn(process.execPath, [CLI, 'watch', 'cli-pipe', '--kinds', 'output', '--json'], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    watch.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const exited = new Promise<number | null>((r) => watch.on('exit', (code) => { r(code); }));
    try {
      await waitFor(() => err.includes('agentry: watching cli-pipe'), 'the watching line');
      watch.stdout.destroy();
      for (let i = 0; i < 3; i++) expect((await cli('send', 'cli-pipe', `line ${i}`)).code).toBe(0);
      expect(await Promise.race([exited, new Promise((r) => setTimeout(() => { r('still running'); }, 60_000))])).toBe(0);
      expect(err).not.toMatch(/EPIPE|Error:/);
    } finally { watch.kill('SIGKILL'); }
  }, 120_000);

  it('dlq replay says when the inbox already holds the replay (a duplicate) instead of calling it published', async () => {
    await rt.createAgent('cli-dl', 'echo');
    await rt.stopAgent('cli-dl');
    await rt.sendMessage('cli-dl', 'too late'); // the runtime dead-letters mail for a stopped session
    const [dl] = await waitFor(async () => { const l = await rt.listDeadLetters({ sessionId: 'cli-dl' }); return l.length ? l : null; }, 'the dead letter');
    const first = await cli('dlq', 'replay', dl!.id);
    expect(first, first.stderr).toMatchObject({ code: 0, stdout: `replayed ${dl!.id}: 1 message(s) published\n` });
    const again = await cli('dlq', 'replay', dl!.id);
    expect(again, again.stderr).toMatchObject({ code: 0, stdout: `replayed ${dl!.id}: 0 message(s) published, 1 already in the inbox (duplicate), not published again\n` });
    expect(JSON.parse((await cli('dlq', 'replay', dl!.id, '--json')).stdout)).toEqual({ published: 0, duplicates: 1 });
  });

  it('agents create --tag (repeatable) sets tags; agents list --tag finds them', async () => {
    expect((await cli('agents', 'create', 'cli-tag-1', '--type', 'echo', '--tag', 'vip', '--tag', 'team:eu'))).toMatchObject({ code: 0 });
    expect((await cli('agents', 'create', 'cli-tag-2', '--type', 'echo', '--tag', 'team:eu'))).toMatchObject({ code: 0 });
    const vip = await cli('agents', 'list', '--tag', 'vip', '--json');
    expect(vip.code).toBe(0);
    expect((JSON.parse(vip.stdout) as { agents: { agentId: string; tags: string[] }[] }).agents).toEqual([expect.objectContaining({ agentId: 'cli-tag-1', tags: ['vip', 'team:eu'] })]);
    const eu = await cli('agents', 'list', '--tag', 'team:eu');
    expect(eu.stdout).toMatch(/cli-tag-1 .*vip,team:eu/);
    expect(eu.stdout).toMatch(/cli-tag-2 /);
    const bad = await cli('agents', 'create', 'cli-tag-3', '--type', 'echo', '--tag', 'no spaces');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/tags/);
  });

  it('agents sleep --until takes an ISO time or epoch ms (the API\'s until, as ctx.sleep({ until }))', async () => {
    await cli('agents', 'create', 'cli-until', '--type', 'echo');
    const at = Date.now() + 3_600_000;
    const iso = await cli('agents', 'sleep', 'cli-until', '--until', new Date(at).toISOString(), '--json');
    expect(iso, iso.stderr).toMatchObject({ code: 0 });
    expect(JSON.parse(iso.stdout)).toEqual({ agentId: 'cli-until', state: 'sleeping', wakeAt: at });
    const ms = await cli('agents', 'sleep', 'cli-until', '--until', String(at + 5), '--json');
    expect(JSON.parse(ms.stdout).wakeAt).toBe(at + 5);
    expect((await cli('agents', 'sleep', 'cli-until', '--until', String(at), '--for', '1h')).code).toBe(1);
    expect(await cli('agents', 'sleep', 'cli-until', '--until', 'soon')).toMatchObject({ code: 2, stderr: expect.stringContaining('[INVALID_ARGUMENT] until must be an ISO time or epoch milliseconds') });
  });

  it('exit codes: 1 usage, 2 server error or refused token, 3 cannot connect', async () => {
    const refused = await cli('agents', 'wake', 'cli-a', '--json');
    expect(refused.code).toBe(2);
    expect(JSON.parse(refused.stderr).error).toMatchObject({ type: 'INVALID_TRANSITION', code: 4010, retryable: false, data: { state: 'stopped' } });
    const unknown = await cli('agents', 'get', 'nobody');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('[UNKNOWN_SESSION]');
    const badToken = await cli('--token', 'wrong-token-wrong-token', 'agents', 'list');
    expect(badToken.code).toBe(2);
    expect(badToken.stderr).toContain('UNAUTHORIZED');
    const noServer = await cli('--url', 'ws://127.0.0.1:1/rpc', 'agents', 'list', '--json');
    expect(noServer.code).toBe(3);
    expect(JSON.parse(noServer.stderr).error.type).toBe('CONNECT_FAILED');
    // For people, the address tried and where it came from.
    expect((await cli('--url', 'ws://127.0.0.1:1/rpc', 'agents', 'list')).stderr).toContain('agentry: tried ws://127.0.0.1:1/rpc (--url)');
    expect((await cli('agents', 'sleep', 'cli-a', '--for', 'banana')).code).toBe(1);
    expect((await cli('agents', 'frobnicate')).code).toBe(1);
    expect((await cli('send', 'cli-a')).code).toBe(1);
    expect((await cli('send', 'cli-a', 'x', '--priority', 'asap')).code).toBe(1);
  });
});
