// Issue 13, item 1: Ctrl-C on `agentry dev` (what `npm start` runs). A terminal's Ctrl-C sends
// SIGINT to its whole foreground process group; the dev nats-server must not be in that group,
// or it dies first and the runtime's shutdown waits on a server that is gone. `dev` stops it
// itself after the runtime stopped, and no nats-server is left behind — also not when the
// parent is killed with SIGKILL (the next `dev` stops the leftover) or exits without stopping
// it (the exit hook). Runs the compiled CLI (dist/), as a user would.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../../ops/natsServer.js';
import { tempDir, waitFor } from '../helpers.js';
import { assertDistFresh } from '../builtFresh.js';

const ROOT = process.cwd();
const CLI = join(ROOT, 'dist', 'runtime', 'cli.js');

/** A process that exists and is not a zombie (Linux /proc). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch { return false; }
}

/** The process group of a running process (field 5 of /proc/<pid>/stat). */
function processGroup(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

interface Dev { proc: ChildProcess; out: () => string; exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> }

const started: { proc: ChildProcess; dataDir: string }[] = [];
const dirs: (() => void)[] = [];

/** Starts `agentry dev` as a terminal would: a process group of its own (detached), free ports. */
async function startDev(dataDir: string): Promise<Dev> {
  assertDistFresh('dist/runtime/cli.js', ['runtime', 'ops', 'actors', 'persistence', 'examples', 'client']);
  const natsPort = await freePort();
  const proc = spawn(process.execPath, [CLI, 'dev', '--nats-port', String(natsPort), '--port', '0'], {
    cwd: ROOT,
    env: { ...process.env, AGENTRY_DATA_DIR: dataDir, AGENTRY_LOG_LEVEL: 'info', NATS_URL: '', DATABASE_URL: '' },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.push({ proc, dataDir });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  proc.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => { proc.on('exit', (code, signal) => { res({ code, signal }); }); });
  await waitFor(() => {
    if (proc.exitCode !== null) throw new Error(`agentry dev exited early (${proc.exitCode}):\n${out}`);
    return out.includes('Stop with Ctrl-C.');
  }, 'agentry dev to come up', 120_000, 100);
  return { proc, out: () => out, exit };
}

/** The pid of the dev's nats-server, from the pid file `dev` keeps in its data directory. */
function natsPid(dataDir: string): number {
  return Number(readFileSync(join(dataDir, 'nats.pid'), 'utf8').trim().split(/\s+/)[0]);
}

/** One message through the dev runtime: the echo agent answers. */
async function roundTrip(dataDir: string, sid: string): Promise<void> {
  const nc = await connect({ servers: readFileSync(join(dataDir, 'nats.url'), 'utf8').trim() });
  try {
    const sub = nc.subscribe(`agentry.out.${sid}`, { max: 1 });
    await jetstream(nc, { timeout: 30_000 }).publish(`agentry.in.${sid}`, JSON.stringify({ text: 'before ctrl-c' }));
    for await (const m of sub) { expect(m.json<{ text: string }>().text).toBe('before ctrl-c'); break; }
  } finally { await nc.close(); }
}

afterEach(() => {
  for (const { proc, dataDir } of started.splice(0)) {
    try { process.kill(-proc.pid!, 'SIGKILL'); } catch { /* gone */ }
    try { const p = natsPid(dataDir); if (running(p)) process.kill(p, 'SIGKILL'); } catch { /* no pid file */ }
  }
  for (const d of dirs.splice(0)) d();
});

describe('agentry dev and Ctrl-C', () => {
  it('SIGINT to the whole process group (a terminal\'s Ctrl-C) stops the runtime first, then its nats-server; exit 0, nothing left', async () => {
    const data = tempDir('agentry-devsig-');
    dirs.push(data.cleanup);
    const dev = await startDev(data.dir);
    const nats = natsPid(data.dir);
    expect(running(nats)).toBe(true);
    // The server is outside the terminal's foreground group, so Ctrl-C cannot reach it.
    expect(processGroup(dev.proc.pid!)).toBe(dev.proc.pid);
    expect(processGroup(nats)).not.toBe(processGroup(dev.proc.pid!));
    await roundTrip(data.dir, 'ctrlc');
    // Item 2: dev logs are readable lines (time level message key=value), not JSON.
    expect(dev.out()).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO {2}runtime started /m);
    expect(dev.out().split('\n').filter((l) => l.startsWith('{'))).toEqual([]);

    const t0 = Date.now();
    process.kill(-dev.proc.pid!, 'SIGINT');
    // `npm start` forwards the same SIGINT to its child once more, at once: not a forcing second Ctrl-C.
    process.kill(dev.proc.pid!, 'SIGINT');
    const result = await Promise.race([dev.exit, new Promise<never>((_, rej) => setTimeout(() => { rej(new Error(`no exit within 60 s of SIGINT:\n${dev.out()}`)); }, 60_000))]);
    console.log(`agentry dev exited ${JSON.stringify(result)} ${Date.now() - t0} ms after the group SIGINT`);
    expect(result, dev.out()).toEqual({ code: 0, signal: null });
    expect(dev.out()).not.toMatch(/did not finish|incomplete|second SIGINT/);
    await waitFor(() => !running(nats), 'the nats-server to be gone', 10_000);
    expect(existsSync(join(data.dir, 'nats.pid'))).toBe(false);
    // The runtime stopped while its server was still there (had the server died first, the
    // runtime would log the lost connection and wait on it), then `dev` stopped the server.
    expect(dev.out()).toContain('runtime stopped');
    expect(dev.out()).not.toContain('NATS connection lost');
  }, 180_000);

  it('a dev killed with SIGKILL leaves its nats-server running; the next dev stops it, and Ctrl-C then leaves nothing', async () => {
    const data = tempDir('agentry-devkill-');
    dirs.push(data.cleanup);
    const first = await startDev(data.dir);
    const orphan = natsPid(data.dir);
    process.kill(first.proc.pid!, 'SIGKILL');
    await first.exit;
    expect(running(orphan)).toBe(true); // no exit hook runs on SIGKILL

    const second = await startDev(data.dir);
    expect(second.out()).toContain(`stopped the nats-server (pid ${orphan})`);
    expect(running(orphan)).toBe(false);
    const nats = natsPid(data.dir);
    expect(nats).not.toBe(orphan);
    await roundTrip(data.dir, 'afterkill');

    process.kill(-second.proc.pid!, 'SIGINT');
    expect(await second.exit).toEqual({ code: 0, signal: null });
    await waitFor(() => !running(nats), 'the nats-server to be gone', 10_000);
  }, 240_000);

  it('a second dev on the same data directory is refused while the first runs', async () => {
    const data = tempDir('agentry-devtwice-');
    dirs.push(data.cleanup);
    const first = await startDev(data.dir);
    const nats = natsPid(data.dir);
    const second = spawn(process.execPath, [CLI, 'dev', '--nats-port', String(await freePort()), '--port', '0'], {
      cwd: ROOT, env: { ...process.env, AGENTRY_DATA_DIR: data.dir, NATS_URL: '', DATABASE_URL: '' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    started.push({ proc: second, dataDir: data.dir });
    let err = '';
    second.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    const code = await new Promise<number | null>((res) => { second.on('exit', (c) => { res(c); }); });
    expect(code).toBe(1);
    expect(err).toContain('another agentry dev');
    expect(running(nats)).toBe(true); // the first one's server was left alone
    process.kill(-first.proc.pid!, 'SIGINT');
    expect(await first.exit).toEqual({ code: 0, signal: null });
  }, 240_000);

  it('a parent that exits without stopping its nats-server takes the server with it (exit hook)', async () => {
    const data = tempDir('agentry-devexit-');
    dirs.push(data.cleanup);
    const script = join(data.dir, 'parent.mjs');
    writeFileSync(script, [
      `import { startNatsServer } from ${JSON.stringify(join(ROOT, 'dist', 'ops', 'natsServer.js'))};`,
      `const s = await startNatsServer({ storeDir: ${JSON.stringify(join(data.dir, 'js'))}, ownProcessGroup: true });`,
      'console.log(String(s.pid));',
      'process.exit(0);',
    ].join('\n'));
    const out = await new Promise<string>((res, rej) => {
      const p = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
      let o = '';
      p.stdout.on('data', (d: Buffer) => { o += d.toString(); });
      p.on('exit', (c) => { if (c === 0) res(o); else rej(new Error(`parent exited ${c}`)); });
    });
    const pid = Number(out.trim());
    expect(pid).toBeGreaterThan(0);
    await waitFor(() => !running(pid), 'the orphaned nats-server to stop', 15_000);
  }, 60_000);
});
