/**
 * Owns a `nats-server` child process started with the project's `nats.conf`: used by
 * `npm start` when NATS_URL is unset and by every integration test (each on a free port with
 * its own store directory, because CI's shared server on 4222 does not have our mappings).
 *
 * Faults it survives: a terminal's Ctrl-C (with `ownProcessGroup` the child is not in the
 * terminal's foreground group, so it outlives the runtime's shutdown instead of dying under it);
 * a parent that exits without stopping it (an `exit` handler sends it SIGTERM); a parent killed
 * with SIGKILL (with `pidFile`, the next start stops the server the dead parent left behind).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NatsServerOptions {
  /** TCP port; a free one is picked when omitted. */
  readonly port?: number;
  /** JetStream store directory (created if missing). */
  readonly storeDir: string;
  /** Partition count written into the mappings (must match the runtime's). Default 64. */
  readonly partitions?: number;
  /** Config file to start from; defaults to the project's nats.conf. */
  readonly configPath?: string;
  /** Where the server's log goes; defaults to `<storeDir>/../nats-server.log`. */
  readonly logFile?: string;
  /**
   * Start the server in a process group (session) of its own, so a terminal's Ctrl-C, which
   * signals the whole foreground group, reaches only the parent: the parent stops the server
   * after its own shutdown. `agentry dev` sets it. Default false.
   */
  readonly ownProcessGroup?: boolean;
  /**
   * A file holding the server's pid while it runs. At start, a nats-server still alive under
   * that pid and serving the same store (left by a parent killed with SIGKILL) is stopped first.
   */
  readonly pidFile?: string;
  /**
   * The nats-server binary to run; default `findNatsServerBinary()` (PATH, then Debian's). The
   * tests pass `AGENTRY_TEST_NATS_SERVER` through it, to run on another server version without
   * changing PATH.
   */
  readonly binary?: string;
}

/** A running nats-server child; `stop()` ends it cleanly, `kill()` with SIGKILL, `restart()` reuses port and store. */
export interface NatsServerHandle {
  readonly url: string;
  readonly port: number;
  readonly pid: number | undefined;
  stop(): Promise<void>;
  kill(): Promise<void>;
  restart(): Promise<void>;
}

/** The project root (two levels up from ops/ in dist, one in sources). */
export function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    if (existsSync(join(dir, 'nats.conf')) && existsSync(join(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('cannot find the project root (nats.conf) from ' + fileURLToPath(import.meta.url));
}

/** Finds the nats-server binary: PATH first, then Debian's /usr/sbin. */
export function findNatsServerBinary(): string {
  const candidates = [...(process.env.PATH ?? '').split(':').filter(Boolean).map((d) => join(d, 'nats-server')), '/usr/sbin/nats-server', '/usr/local/bin/nats-server'];
  const found = candidates.find((c) => existsSync(c));
  if (!found) {
    throw new Error(`nats-server not found: run \`bash ${join(projectRoot(), 'ops', 'ensure-nats-server.sh')}\` (installs Debian's package as root; elsewhere see https://docs.nats.io/running-a-nats-service/introduction/installation) or set NATS_URL`);
  }
  return found;
}

/** Asks the OS for a free loopback port. */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => { res(port); });
    });
  });
}

/** Writes the config with the requested partition count into the store's parent directory. */
function materializeConfig(configPath: string, partitions: number, dir: string): string {
  const text = readFileSync(configPath, 'utf8').replace(/partition\(\s*\d+\s*,/g, `partition(${partitions},`);
  const out = join(dir, 'nats.conf');
  writeFileSync(out, text);
  return out;
}

/** Children still running: the process `exit` handler stops them, so none outlives its parent by accident. */
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Registers a child with the exit hook (installed once per process, whatever the number of servers). */
function trackChild(child: ChildProcess): void {
  liveChildren.add(child);
  child.once('exit', () => { liveChildren.delete(child); });
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // `exit` listeners run synchronously: a signal is all that can be sent. SIGTERM lets the
  // server close its store cleanly; it does so in well under a second.
  process.on('exit', () => {
    for (const c of liveChildren) { try { c.kill('SIGTERM'); } catch { /* already gone */ } }
  });
}

/** True when `pid` is a live nats-server serving `storeDir` (Linux /proc; elsewhere never: an unknown pid is left alone). */
function isOurServer(pid: number, storeDir: string): boolean {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return args.some((a) => a.endsWith('nats-server')) && args.includes(storeDir);
  } catch { return false; }
}

/** True when a process with this pid exists (signal 0 checks without signalling). */
function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

/** What `stopLeftoverNatsServer` found: nothing, a leftover it stopped, or a server whose parent still runs. */
export type LeftoverNatsServer = { readonly kind: 'none' } | { readonly kind: 'stopped'; readonly pid: number } | { readonly kind: 'in-use'; readonly pid: number; readonly parentPid: number };

/**
 * Stops a nats-server that a parent killed with SIGKILL left behind: the pid in `pidFile`, only
 * if it is still a nats-server serving `storeDir` and the parent recorded beside it is gone
 * (SIGTERM, SIGKILL after 10 s). A server whose parent still runs is left alone and reported
 * as `in-use` (two servers must not share one store). A caller that wants the server's port
 * back calls this before choosing a port; `startNatsServer` calls it too.
 */
export async function stopLeftoverNatsServer(pidFile: string, storeDir: string): Promise<LeftoverNatsServer> {
  if (!existsSync(pidFile)) return { kind: 'none' };
  const [pid = NaN, parentPid = NaN] = readFileSync(pidFile, 'utf8').trim().split(/\s+/).map(Number);
  const dir = resolve(storeDir);
  if (!Number.isInteger(pid) || pid <= 0 || !isOurServer(pid, dir)) return { kind: 'none' };
  if (Number.isInteger(parentPid) && parentPid > 0 && parentPid !== process.pid && alive(parentPid)) return { kind: 'in-use', pid, parentPid };
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 200 && isOurServer(pid, dir); i++) await new Promise((r) => setTimeout(r, 50));
  if (isOurServer(pid, dir)) process.kill(pid, 'SIGKILL');
  return { kind: 'stopped', pid };
}

/** Starts nats-server and resolves once it accepts connections. */
export async function startNatsServer(opts: NatsServerOptions): Promise<NatsServerHandle> {
  const port = opts.port ?? (await freePort());
  const storeDir = resolve(opts.storeDir);
  if (opts.pidFile) {
    const left = await stopLeftoverNatsServer(opts.pidFile, storeDir);
    if (left.kind === 'in-use') throw new Error(`the nats-server of process ${left.parentPid} (pid ${left.pid}) already serves ${storeDir}`);
  }
  mkdirSync(storeDir, { recursive: true });
  const baseDir = dirname(storeDir);
  const conf = materializeConfig(opts.configPath ?? join(projectRoot(), 'nats.conf'), opts.partitions ?? 64, baseDir);
  const logFile = opts.logFile ?? join(baseDir, 'nats-server.log');
  const bin = opts.binary ?? findNatsServerBinary();
  let child: ChildProcess | undefined;

  const launch = async (): Promise<void> => {
    child = spawn(bin, ['-c', conf, '-a', '127.0.0.1', '-p', String(port), '-sd', storeDir, '-l', logFile], {
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: opts.ownProcessGroup === true,
    });
    trackChild(child);
    if (opts.pidFile && child.pid !== undefined) {
      const pidFile = opts.pidFile;
      writeFileSync(pidFile, `${child.pid} ${process.pid}\n`);
      child.once('exit', () => { rmSync(pidFile, { force: true }); });
    }
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    const exited = new Promise<never>((_, rej) => {
      child!.once('exit', (code) => { rej(new Error(`nats-server exited with ${code}: ${stderr.trim()}`)); });
    });
    exited.catch(() => undefined);
    await Promise.race([waitForPort(port, 10_000), exited]);
  };
  const waitExit = (signal: NodeJS.Signals): Promise<void> => new Promise((res) => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) { res(); return; }
    c.once('exit', () => { res(); });
    c.kill(signal);
  });

  await launch();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    get pid() { return child?.pid; },
    stop: () => waitExit('SIGTERM'),
    kill: () => waitExit('SIGKILL'),
    restart: async () => { await waitExit('SIGTERM'); await launch(); },
  };
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const { connect } = await import('node:net');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((res) => {
      const s = connect(port, '127.0.0.1');
      s.once('data', () => { s.destroy(); res(true); }); // the server greets with INFO
      s.once('error', () => { res(false); });
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nats-server did not start listening on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
