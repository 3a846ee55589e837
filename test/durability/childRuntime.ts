// Runs test/fixtures/crash-runtime.mjs (a runtime node over the compiled build) as a child
// process that tests can SIGKILL, restart against the same NATS server and store, and drive
// over core NATS request/reply.
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll } from 'vitest';
import { assertDistFresh } from '../builtFresh.js';
import { PG_URL, dropSchema, natsClient, schemaName, startNats, tempDir } from '../helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const fixture = join(root, 'test', 'fixtures', 'crash-runtime.mjs');
const skewPreload = pathToFileURL(join(root, 'test', 'fixtures', 'skewClock.mjs')).href;

/** What the fixture reads from AGENTRY_TEST_CHILD. */
export interface ChildConfig {
  readonly natsUrl: string;
  readonly partitions: number;
  readonly ctlSubject: string;
  /** Postgres (with `schema`) when set; PGlite under `dataDir` otherwise. */
  readonly databaseUrl?: string;
  readonly schema?: string;
  readonly dataDir?: string;
  readonly defaultAgentType?: string;
  readonly logLevel?: string;
  /** Further runtime configuration (e.g. nodeId, leaseTtlMs). */
  readonly extra?: Record<string, unknown>;
  /** A file the fixture appends one JSON line to per committed session change (test/chaos/ reads it). */
  readonly commitLog?: string;
  /** The fixture exits by itself when the process that started it is gone (test/chaos/ sets it). */
  readonly exitWithParent?: boolean;
  /** Agent `rec-budget` stops between its reservation and its settle (budgetCrash.test.ts kills it there). */
  readonly stallAfterReserve?: boolean;
  /** Agent `rec-sleep` stops in the run of a timer's wake (wakeCrash.test.ts kills it there). */
  readonly stallOnWake?: boolean;
  /** The child's wall clock runs this far ahead (negative: behind), by the preload test/fixtures/skewClock.mjs. */
  readonly clockSkewMs?: number;
}

export interface ChildRuntime {
  readonly pid: number;
  /** Calls an op of the fixture's control subject; rejects with the child's error message. */
  ctl<T = unknown>(op: string, ...args: unknown[]): Promise<T>;
  /** SIGKILL, resolved once the process is gone. */
  kill(): Promise<void>;
  /** SIGTERM (graceful `rt.stop()`), resolved with the exit code. */
  stop(): Promise<number | null>;
  exited(): boolean;
}

/** Fails early with a clear message when `dist/` is missing or older than the sources it runs. */
export function assertBuildIsFresh(): void {
  assertDistFresh('dist/runtime/host/sessionHost.js', ['runtime/host/sessionHost.ts', 'runtime/runtime.ts', 'runtime/transport.ts', 'runtime/groupCommit.ts', 'persistence/sqlStore.ts', 'actors/sessionMachine.ts']);
}

/** Environment without anything that would override the child's explicit configuration. */
function childEnv(cfg: ChildConfig): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'NATS_URL' || k === 'DATABASE_URL' || k.startsWith('AGENTRY_')) continue;
    env[k] = v;
  }
  env.AGENTRY_TEST_CHILD = JSON.stringify(cfg);
  return env;
}

/**
 * Spawns the fixture and resolves once it answers on its control subject. Output goes to `logFile`.
 * The start deadline is a minute: a PGlite child opening its data directory on a busy 2-core
 * machine (load 10–20 while other suites run) took more than the 30 s it had until 2026-11-28.
 * `onSpawn` learns the process id at once (before it is ready), so a harness can register it for
 * clean-up even if the start fails or the harness dies meanwhile.
 */
export async function startChild(nc: NatsConnection, cfg: ChildConfig, logFile: string, timeoutMs = 60_000, onSpawn?: (pid: number) => void): Promise<ChildRuntime> {
  const fd = openSync(logFile, 'a');
  let proc: ChildProcess;
  try {
    const preload = cfg.clockSkewMs !== undefined ? ['--import', skewPreload] : [];
    proc = spawn(process.execPath, [...preload, fixture], { env: childEnv(cfg), stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  if (proc.pid !== undefined) onSpawn?.(proc.pid);
  let exitCode: number | null | undefined;
  const exit = new Promise<number | null>((res) => { proc.once('exit', (code) => { exitCode = code; res(code); }); });

  const ctl = async <T>(op: string, ...args: unknown[]): Promise<T> => {
    const m = await nc.request(cfg.ctlSubject, JSON.stringify({ op, args }), { timeout: 30_000 });
    const r = m.json<{ ok: boolean; result?: T; error?: { message: string; code?: string } }>();
    if (!r.ok) throw Object.assign(new Error(r.error?.message ?? 'child op failed'), { code: r.error?.code });
    return r.result as T;
  };

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exitCode !== undefined) throw new Error(`runtime child exited with ${exitCode} before it was ready:\n${tail(logFile)}`);
    try {
      const r = await nc.request(cfg.ctlSubject, JSON.stringify({ op: 'ping' }), { timeout: 500 });
      if (r.json<{ ok: boolean; result?: { pid: number } }>().result?.pid === proc.pid) break;
    } catch { /* not up yet: no responders */ }
    if (Date.now() > deadline) { proc.kill('SIGKILL'); throw new Error(`runtime child not ready within ${timeoutMs} ms:\n${tail(logFile)}`); }
    await new Promise((r) => setTimeout(r, 50));
  }

  return {
    pid: proc.pid!,
    ctl,
    exited: () => exitCode !== undefined,
    async kill() {
      if (exitCode === undefined) proc.kill('SIGKILL');
      await exit;
    },
    async stop() {
      if (exitCode === undefined) proc.kill('SIGTERM');
      return exit;
    },
  };
}

/**
 * What each of `ids` (sessions of the fixture's `rec-event` agent) recorded: the `i` of each event
 * it handled, from its committed row (a restart would load exactly that).
 */
export async function recordedEvents(c: ChildRuntime, ids: readonly string[]): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (let i = 0; i < ids.length; i += 250) {
    const rows = await Promise.all(ids.slice(i, i + 250).map((id) => c.ctl<{ snapshot: { context: { userState: { got: number[] } } } } | null>('loadSession', id)));
    rows.forEach((r, k) => { out.set(ids[i + k]!, r?.snapshot.context.userState.got ?? []); });
  }
  return out;
}

/** The last lines of a log file, for failure messages. */
export function tail(file: string, lines = 40): string {
  try { return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n'); } catch { return '(no log)'; }
}

/** What `childSuite` sets up for a test file: its own nats-server, a client, a Postgres schema and a log directory. */
export interface ChildSuite {
  readonly nats: Awaited<ReturnType<typeof startNats>>;
  readonly nc: NatsConnection;
  readonly schema: string;
  /** The child's configuration on this suite's servers (Postgres in `schema`). */
  readonly cfg: ChildConfig;
  /** The log file of the suite's children. */
  readonly log: string;
  /** The running child, if any: killed after the suite. */
  child: ChildRuntime | undefined;
}

/**
 * Registers the hooks every kill -9 suite needs: before, a fresh build check (plus `fresh` for the
 * files the suite depends on), a nats-server with `partitions`, a client and a schema name;
 * after, the child killed, `cleanup` run, and servers, schema and logs removed. The fields are
 * filled in `beforeAll`: read them inside tests.
 */
export function childSuite(tag: string, opts: { partitions?: number; fresh?: () => void; cleanup?: () => Promise<void> } = {}): ChildSuite {
  const logs = tempDir(`agentry-${tag}-`);
  const suite = { child: undefined } as { -readonly [K in keyof ChildSuite]: ChildSuite[K] };
  beforeAll(async () => {
    assertBuildIsFresh();
    opts.fresh?.();
    suite.nats = await startNats(opts.partitions ?? 8);
    suite.nc = await natsClient(suite.nats.url);
    suite.schema = schemaName(tag);
    suite.cfg = { natsUrl: suite.nats.url, partitions: opts.partitions ?? 8, ctlSubject: `test.ctl.${suite.schema}`, databaseUrl: PG_URL, schema: suite.schema };
    suite.log = join(logs.dir, 'child.log');
  });
  afterAll(async () => {
    if (suite.child && !suite.child.exited()) await suite.child.kill();
    await opts.cleanup?.();
    await suite.nc?.close();
    await suite.nats?.cleanup();
    if (suite.schema) await dropSchema(suite.schema);
    logs.cleanup();
  });
  return suite;
}
