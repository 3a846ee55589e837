/**
 * Owns a `nats-server` child process started with the project's `nats.conf`: used by
 * `npm start` when NATS_URL is unset and by every integration test (each on a free port with
 * its own store directory, because CI's shared server on 4222 does not have our mappings).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
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
  if (!found) throw new Error('nats-server not found: run `bash ops/ensure-nats-server.sh` (installs Debian\'s package as root) or set NATS_URL');
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

/** Starts nats-server and resolves once it accepts connections. */
export async function startNatsServer(opts: NatsServerOptions): Promise<NatsServerHandle> {
  const port = opts.port ?? (await freePort());
  const storeDir = resolve(opts.storeDir);
  mkdirSync(storeDir, { recursive: true });
  const baseDir = dirname(storeDir);
  const conf = materializeConfig(opts.configPath ?? join(projectRoot(), 'nats.conf'), opts.partitions ?? 64, baseDir);
  const logFile = opts.logFile ?? join(baseDir, 'nats-server.log');
  const bin = findNatsServerBinary();
  let child: ChildProcess | undefined;

  const launch = async (): Promise<void> => {
    child = spawn(bin, ['-c', conf, '-a', '127.0.0.1', '-p', String(port), '-sd', storeDir, '-l', logFile], { stdio: ['ignore', 'ignore', 'pipe'] });
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
