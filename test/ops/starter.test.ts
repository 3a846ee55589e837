// Issue 13, item 2: a new user's own agent, outside this repository, with one command. The
// package is packed as it would be published (`npm pack`), a project is created from the starter
// template by the packed CLI (`npx --package <tarball> agentry init`), the tarball is installed
// into it, and `npm run dev` runs the user's TypeScript agent straight from source (own
// nats-server, PGlite). A message gets the agent's reply; an edit of a file the agent imports is
// picked up in place; a syntax error is reported with its file and line while the previous
// agents keep answering; a new agent type restarts the node; Ctrl-C to the process group stops
// everything cleanly.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../ops/natsServer.js';
import { tempDir, waitFor } from '../helpers.js';
import { assertDistFresh } from '../builtFresh.js';

const ROOT = process.cwd();
const NPM_QUIET = ['--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'];

/** The environment of a user's shell: none of the suite's settings for servers, data or npm's run. */
function userEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env)
    .filter(([k]) => !/^(AGENTRY_|npm_package_|npm_lifecycle_)/.test(k) && k !== 'NATS_URL' && k !== 'DATABASE_URL'));
}

/** A process that exists and is not a zombie (Linux /proc). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch { return false; }
}

let work: { dir: string; cleanup: () => void };
let app: string;
let dev: ChildProcess | undefined;
let devOut = '';
let devExit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
let nc: NatsConnection | undefined;

/** Sends one message to `sid` over NATS as any producer would and returns the agent's reply. */
async function ask(sid: string, text: string): Promise<{ text: string; turn: number }> {
  const sub = nc!.subscribe(`agentry.out.${sid}`, { max: 1, timeout: 60_000 });
  await jetstream(nc!, { timeout: 30_000 }).publish(`agentry.in.${sid}`, JSON.stringify({ text }));
  for await (const m of sub) return m.json<{ text: string; turn: number }>();
  throw new Error(`no reply from ${sid}:\n${devOut}`);
}

/** How often `line` occurs in dev's output so far. */
const count = (line: string): number => devOut.split(line).length - 1;

beforeAll(() => {
  assertDistFresh('dist/runtime/cli.js', ['runtime', 'ops', 'actors', 'persistence', 'examples', 'client']);
  work = tempDir('agentry-starter-');
  const env = userEnv();
  // What `npm publish` would upload (the build is fresh: pretest ran it, checked above).
  execFileSync('npm', ['pack', '--ignore-scripts', '--pack-destination', work.dir, '--loglevel=error'], { cwd: ROOT, env, stdio: 'pipe' });
  const tarball = join(work.dir, readdirSync(work.dir).find((f) => f.endsWith('.tgz'))!);
  // The new user's folder is outside the repository: nothing resolves from it.
  const home = join(work.dir, 'home');
  mkdirSync(home);
  execFileSync('npx', ['--yes', '--package', tarball, 'agentry', 'init', 'my-agents'], { cwd: home, env, stdio: 'pipe' });
  app = join(home, 'my-agents');
  expect(existsSync(join(app, 'src', 'agents.ts'))).toBe(true);
  expect(existsSync(join(app, '.gitignore'))).toBe(true);
  const pkg = JSON.parse(readFileSync(join(app, 'package.json'), 'utf8')) as { name: string; dependencies: Record<string, string> };
  expect(pkg.name).toBe('my-agents');
  expect(Object.keys(pkg.dependencies)).toEqual(['agentry-runtime']);
  // Installed from the tarball instead of the registry (not published from here).
  execFileSync('npm', ['install', ...NPM_QUIET, tarball], { cwd: app, env, stdio: 'pipe' });
}, 300_000);

afterAll(async () => {
  await nc?.close();
  if (dev?.pid !== undefined && dev.exitCode === null) { try { process.kill(-dev.pid, 'SIGKILL'); } catch { /* gone */ } }
  const pidFile = app ? join(app, '.agentry', 'nats.pid') : '';
  if (pidFile && existsSync(pidFile)) {
    const pid = Number(readFileSync(pidFile, 'utf8').trim().split(/\s+/)[0]);
    if (running(pid)) process.kill(pid, 'SIGKILL');
  }
  work?.cleanup();
});

describe('the starter: your own TypeScript agent from the packed package', () => {
  it('type-checks against the installed package', () => {
    execFileSync('npx', ['tsc', '--noEmit'], { cwd: app, env: userEnv(), stdio: 'pipe' });
  }, 120_000);

  it('npm run dev runs it, reloads on save, reports a broken edit, and stops on Ctrl-C', async () => {
    const natsPort = await freePort();
    // As a terminal runs it: a process group of its own, so a group SIGINT is a Ctrl-C.
    dev = spawn('npm', ['run', 'dev', '--', '--port', '0', '--nats-port', String(natsPort)], {
      cwd: app, env: userEnv(), detached: true, stdio: ['ignore', 'pipe', 'pipe'],
    });
    dev.stdout!.on('data', (d: Buffer) => { devOut += d.toString(); });
    dev.stderr!.on('data', (d: Buffer) => { devOut += d.toString(); });
    devExit = new Promise((res) => { dev!.on('exit', (code, signal) => { res({ code, signal }); }); });
    await waitFor(() => {
      if (dev!.exitCode !== null) throw new Error(`npm run dev exited early (${dev!.exitCode}):\n${devOut}`);
      return devOut.includes('Stop with Ctrl-C.');
    }, 'npm run dev to come up', 180_000, 100);
    expect(devOut).toContain('Agents: assistant from ./src/agents.ts (reloaded when its files change)');

    nc = await connect({ servers: readFileSync(join(app, '.agentry', 'nats.url'), 'utf8').trim() });
    // A session nobody created becomes the only agent's session.
    expect(await ask('demo', 'hello')).toEqual({ text: 'you said: hello', turn: 1 });

    // An edit of a module the agent imports: reloaded in place, state kept in the store.
    const model = join(app, 'src', 'model.ts');
    writeFileSync(model, readFileSync(model, 'utf8').replace('you said: ', 'you wrote: '));
    await waitFor(() => count('agentry: reloaded in') === 1, 'the reload after an edit', 120_000, 100);
    expect(await ask('demo', 'again')).toEqual({ text: 'you wrote: again', turn: 2 });

    // A syntax error: said with file and line; the running agents keep answering.
    const agents = join(app, 'src', 'agents.ts');
    const good = readFileSync(agents, 'utf8');
    appendFileSync(agents, '\nexport const broken = ;\n');
    await waitFor(() => devOut.includes('reload failed'), 'the failed reload to be reported', 120_000, 100);
    expect(devOut).toMatch(/reload failed, the previous agents keep running: .*agents\.ts:\d+:\d+: Expression expected/);
    expect(await ask('demo', 'still there?')).toEqual({ text: 'you wrote: still there?', turn: 3 });
    writeFileSync(agents, good);
    await waitFor(() => count('agentry: reloaded in') === 2, 'the reload after the fix', 120_000, 100);
    expect(await ask('demo', 'fixed')).toEqual({ text: 'you wrote: fixed', turn: 4 });

    // A new agent type: the node restarts on the same ports; the session carries on.
    appendFileSync(agents, "\nexport const second = defineAgent({ type: 'second', initialState: () => ({}), handle: () => undefined });\n");
    await waitFor(() => count('agentry: reloaded in') === 3, 'the reload with a new type', 120_000, 100);
    expect(devOut).toMatch(/reloaded in \d+ ms: assistant, second/);
    expect(await ask('demo', 'more')).toEqual({ text: 'you wrote: more', turn: 5 });
    await nc.close();
    nc = undefined;

    const natsPid = Number(readFileSync(join(app, '.agentry', 'nats.pid'), 'utf8').trim().split(/\s+/)[0]);
    process.kill(-dev.pid!, 'SIGINT');
    const result = await Promise.race([devExit, new Promise<never>((_, rej) => setTimeout(() => { rej(new Error(`no exit within 60 s of SIGINT:\n${devOut}`)); }, 60_000))]);
    // npm re-raises the signal on itself once its child is done: SIGINT (or 0) is a clean stop,
    // when the runtime says it stopped and nothing was left undone.
    expect(result.code === 0 || result.signal === 'SIGINT', `${JSON.stringify(result)}\n${devOut}`).toBe(true);
    expect(devOut).toContain('runtime stopped');
    await waitFor(() => !running(natsPid), 'the nats-server to be gone', 10_000);
    expect(devOut).not.toMatch(/did not finish|incomplete|shutdown failed/);
  }, 400_000);
});
