// Shared helpers of the benchmarks: a nats-server with the project's nats.conf, fresh Postgres
// schemas, the forked publisher, CPU accounting per process group, percentiles and payloads.
// Everything runs on loopback; every helper cleans up what it starts.
import { fork } from 'node:child_process';
import { accessSync, constants as fsConstants, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startNatsServer } from '../dist/ops/natsServer.js';
import { createLogger } from '../dist/runtime/logger.js';

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
export const ROOT = dirname(BENCH_DIR);
export const PG_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const QUICK = process.env.BENCH_QUICK === '1';
export const PARTITIONS = Number(process.env.BENCH_PARTITIONS ?? 64);
export const BODY_BYTES = 100;

/**
 * BENCH_NATS_SERVER=<path to a nats-server binary>: the suites (and the version run.mjs records)
 * use that binary instead of the one on PATH / Debian's, to compare server releases (issue 12:
 * the file store's per-ack cost changed in 2.10). The runtime finds its server on PATH first
 * (ops/natsServer.ts), so the binary is put first on this process's PATH, under the name
 * `nats-server`, in a temporary directory removed at exit; child processes inherit it.
 */
const benchNatsServer = process.env.BENCH_NATS_SERVER;
if (benchNatsServer && process.env.BENCH_NATS_SERVER_DIR === undefined) {
  const bin = resolve(benchNatsServer);
  accessSync(bin, fsConstants.X_OK); // fail loudly on a wrong path rather than measure the default server
  const binDir = mkdtempSync(join(tmpdir(), 'agentry-bench-natsbin-'));
  symlinkSync(bin, join(binDir, 'nats-server'));
  process.env.PATH = `${binDir}:${process.env.PATH ?? ''}`;
  // Child processes (suites, the publisher) inherit PATH and reuse the directory: only its creator
  // removes it, after they have ended.
  process.env.BENCH_NATS_SERVER_DIR = binDir;
  process.on('exit', () => rmSync(binDir, { recursive: true, force: true }));
}

/** Wall-clock milliseconds with sub-millisecond precision; comparable across processes on one machine. */
export const wallNow = () => performance.timeOrigin + performance.now();
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A logger that only reports errors (to stderr of the bench, not mixed with results). */
export const quietLogger = () => createLogger(process.env.BENCH_LOG_LEVEL ?? 'error');

export function tempDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Starts nats-server with the project's nats.conf (partition count patched to PARTITIONS) on a free port. */
export async function startNats() {
  const t = tempDir('agentry-bench-nats-');
  // Diagnostics: BENCH_NATS_MONITOR_PORT=N adds the server's monitoring endpoint on N (/connz, /jsz)
  // and its Go profiler on N+1 (/debug/pprof/profile), to see where the server's CPU goes.
  const mon = Number(process.env.BENCH_NATS_MONITOR_PORT ?? 0);
  let configPath;
  if (mon > 0) {
    configPath = join(t.dir, 'nats-monitored.conf');
    writeFileSync(configPath, `${readFileSync(join(ROOT, 'nats.conf'), 'utf8')}\nhttp_port: ${mon}\nprof_port: ${mon + 1}\n`);
  }
  const srv = await startNatsServer({ storeDir: join(t.dir, 'js'), partitions: PARTITIONS, ...(configPath ? { configPath } : {}) });
  return Object.assign(srv, { dir: t.dir, cleanup: async () => { await srv.stop(); t.cleanup(); } });
}

/** A fresh schema name for this process. */
export function schemaName(tag) {
  return `bench_${tag}_${process.pid}_${Math.random().toString(36).slice(2, 7)}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
}

export async function pgClient(schema) {
  const c = new pg.Client({ connectionString: PG_URL, ...(schema ? { options: `-c search_path=${schema}` } : {}) });
  await c.connect();
  return c;
}

export async function dropSchema(schema) {
  const c = await pgClient();
  try { await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`); } finally { await c.end(); }
}

/** A JSON body of exactly BODY_BYTES bytes carrying an index and the publish time. */
export function makeBody(i, t) {
  const head = `{"i":${i},"t":${t.toFixed(3)},"p":"`;
  const pad = Math.max(0, BODY_BYTES - head.length - 2);
  return head + 'x'.repeat(pad) + '"}';
}

/**
 * Forks bench/publisher.mjs. `start(job)` resolves with the publisher's report when it is done;
 * the job is sent only once the child is connected, so connection set-up is never timed.
 */
export async function forkPublisher(natsUrl) {
  const child = fork(join(BENCH_DIR, 'publisher.mjs'), [natsUrl], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await new Promise((res, rej) => {
    child.once('message', (m) => (m.type === 'ready' ? res() : rej(new Error(`publisher: ${JSON.stringify(m)}`))));
    child.once('exit', (code) => rej(new Error(`publisher exited with ${code} before it was ready`)));
  });
  let onProgress = () => {};
  const start = (job) => new Promise((res, rej) => {
    const onMsg = (m) => {
      if (m.type === 'started') { onProgress(m); return; }
      if (m.type === 'done') { child.off('message', onMsg); res(m); }
      if (m.type === 'error') { child.off('message', onMsg); rej(new Error(`publisher: ${m.message}`)); }
    };
    child.on('message', onMsg);
    child.send({ type: 'job', job });
  });
  const stop = () => new Promise((res) => {
    if (child.exitCode !== null) { res(); return; }
    child.once('exit', () => res());
    child.send({ type: 'exit' });
    setTimeout(() => child.kill('SIGKILL'), 5000).unref();
  });
  return { child, pid: child.pid, start, stop, onStarted: (fn) => { onProgress = fn; } };
}

// ---- CPU accounting ------------------------------------------------------------------------

const CLK_TCK = 100; // Linux USER_HZ

/** utime+stime of one process in ms, or 0 if it is gone. */
export function procCpuMs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) / CLK_TCK) * 1000;
  } catch { return 0; }
}

/** Sum of utime+stime (ms) of every process whose command name starts with `name` (e.g. `postgres`). */
export function groupCpuMs(name) {
  let total = 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      if (!comm.startsWith(name)) continue;
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += ((Number(f[11]) + Number(f[12])) / CLK_TCK) * 1000;
    } catch { /* exited meanwhile */ }
  }
  return total;
}

/** Busy CPU time (ms) of the whole machine, all cores, from /proc/stat. */
export function machineBusyMs() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return ((total - f[3] - f[4]) / CLK_TCK) * 1000; // minus idle and iowait
  } catch { return 0; }
}

/** Snapshot of CPU used so far by this process, nats-server, the publisher, Postgres and the machine. */
export function cpuMark(natsPid, publisherPid) {
  const u = process.cpuUsage();
  return { self: (u.user + u.system) / 1000, nats: procCpuMs(natsPid), publisher: publisherPid ? procCpuMs(publisherPid) : 0, postgres: groupCpuMs('postgres'), machine: machineBusyMs(), at: performance.now() };
}

/** CPU seconds each group used between two marks, and as a share of the machine's cores. */
export function cpuDelta(a, b, cores) {
  const wall = b.at - a.at;
  const out = { wallMs: Math.round(wall) };
  for (const k of ['self', 'nats', 'publisher', 'postgres']) {
    const ms = Math.max(0, b[k] - a[k]); // a group's total can drop when one of its processes exits
    out[k] = { cpuMs: Math.round(ms), cores: round(ms / wall, 2) };
  }
  const ours = out.self.cpuMs + out.nats.cpuMs + out.publisher.cpuMs + out.postgres.cpuMs;
  out.totalCores = round(ours / wall, 2);
  // Everything else running on the machine meanwhile (other users' processes): interference.
  out.otherCores = round(Math.max(0, b.machine - a.machine - ours) / wall, 2);
  out.machineCores = cores;
  return out;
}

// ---- statistics ------------------------------------------------------------------------------

export function round(x, d = 1) {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}

export function percentiles(values) {
  if (values.length === 0) return { n: 0 };
  const s = Float64Array.from(values).sort();
  const at = (q) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
  let sum = 0;
  for (const v of s) sum += v;
  return { n: s.length, min: round(s[0], 2), p50: round(at(0.5), 2), p90: round(at(0.9), 2), p99: round(at(0.99), 2), p999: round(at(0.999), 2), max: round(s[s.length - 1], 2), mean: round(sum / s.length, 2) };
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Resolves with `promise`, or rejects after `ms` (the timer never keeps the process alive). */
export function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms); });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

/** Resolves when `fn()` is truthy; rejects after `timeoutMs` naming `what`. */
export async function waitUntil(fn, what, timeoutMs = 120_000, everyMs = 5) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Progress line on stderr (results go to the JSON file named by argv[2]). */
export function log(...args) {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${args.join(' ')}\n`);
}

// ---- low-load and backlog suites (prober, stage tracing) ---------------------------------------

/**
 * A JSON body of at least BODY_BYTES bytes carrying an index, the publish time and `extra`
 * fields (instructions for the bench agent, e.g. `{ op: 'sleep', ms: 500 }`).
 */
export function makeBodyWith(i, t, extra) {
  const inner = extra ? JSON.stringify(extra).slice(1, -1) : '';
  const head = `{"i":${i},"t":${t.toFixed(3)},${inner ? `${inner},` : ''}"p":"`;
  const pad = Math.max(0, BODY_BYTES - head.length - 2);
  return head + 'x'.repeat(pad) + '"}';
}

/**
 * Forks bench/prober.mjs (see there for its jobs). `run(job)` resolves with `{ probes }`;
 * `stop()` ends an `interval` job (its `run` then resolves); `exit()` ends the process.
 */
export async function forkProber(natsUrl) {
  const child = fork(join(BENCH_DIR, 'prober.mjs'), [natsUrl], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await new Promise((res, rej) => {
    child.once('message', (m) => (m.type === 'ready' ? res() : rej(new Error(`prober: ${JSON.stringify(m)}`))));
    child.once('exit', (code) => rej(new Error(`prober exited with ${code} before it was ready`)));
  });
  const run = (job) => new Promise((res, rej) => {
    const onMsg = (m) => {
      if (m.type === 'done') { child.off('message', onMsg); res(m); }
      if (m.type === 'error') { child.off('message', onMsg); rej(new Error(`prober: ${m.message}`)); }
    };
    child.on('message', onMsg);
    child.send({ type: 'job', job });
  });
  const exit = () => new Promise((res) => {
    if (child.exitCode !== null) { res(); return; }
    child.once('exit', () => res());
    child.send({ type: 'exit' });
    setTimeout(() => child.kill('SIGKILL'), 5000).unref();
  });
  return { child, pid: child.pid, run, stop: () => child.send({ type: 'stop' }), exit };
}

/**
 * Wraps a store's calls on the message path (loadSession, loadSessions, getHistory, commit) to record when
 * each started and ended (wall clock), without touching runtime code: the runtime accepts a
 * `store` option. `onCall(kind, args, t0, t1)` is called after each; errors pass through.
 */
export function instrumentStore(store, onCall) {
  for (const kind of ['loadSession', 'loadSessions', 'getHistory', 'commit']) {
    if (typeof store[kind] !== 'function') continue; // a store of another version
    const orig = store[kind].bind(store);
    store[kind] = async (...args) => {
      const t0 = wallNow();
      try { return await orig(...args); } finally { onCall(kind, args, t0, wallNow()); }
    };
  }
  return store;
}

/**
 * Times every query of every `pg` client in this process (pools included: they use
 * pg.Client): `onQuery(label, t0, t1)` with the statement's first words. Returns a function
 * that removes the patch. `client` is the connection that ran it (a transaction's statements
 * share one). Diagnostic: it adds a few µs per query.
 */
export function tracePgQueries(onQuery) {
  const proto = pg.Client.prototype;
  const orig = proto.query;
  proto.query = function traced(config, values, cb) {
    if (config && typeof config.submit === 'function') return orig.apply(this, arguments);
    const text = typeof config === 'string' ? config : config?.text ?? '';
    const label = text.replace(/\s+/g, ' ').trim().slice(0, 48);
    const t0 = wallNow();
    const done = () => onQuery(label, t0, wallNow(), this);
    if (typeof values === 'function') return orig.call(this, config, (e, r) => { done(); values(e, r); });
    if (typeof cb === 'function') return orig.call(this, config, values, (e, r) => { done(); cb(e, r); });
    const p = orig.call(this, config, values);
    p.then(done, done);
    return p;
  };
  return () => { proto.query = orig; };
}

/** Resident set size of a process in bytes (/proc), or 0 when it is gone. */
export function procRssBytes(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch { return 0; }
}

/**
 * CPU used so far (ms) by the named processes (e.g. `{ runtime: pid, nats: pid }`), by this
 * process (`self`), by Postgres and by the whole machine: for suites whose runtime runs in a
 * child process. Pair with cpuDeltaOf.
 */
export function cpuMarkOf(pids) {
  const u = process.cpuUsage();
  const m = { at: performance.now(), machine: machineBusyMs(), self: (u.user + u.system) / 1000, postgres: groupCpuMs('postgres') };
  for (const [k, pid] of Object.entries(pids)) m[k] = procCpuMs(pid);
  return m;
}

/** Cores each group of cpuMarkOf used between two marks, and what every other process used (`otherCores`). */
export function cpuDeltaOf(a, b, cores) {
  const wall = b.at - a.at;
  const out = { wallMs: Math.round(wall), machineCores: cores };
  let ours = 0;
  for (const k of Object.keys(a)) {
    if (k === 'at' || k === 'machine') continue;
    const ms = Math.max(0, (b[k] ?? a[k]) - a[k]); // a process that exited reads 0
    ours += ms;
    out[k] = { cpuMs: Math.round(ms), cores: round(ms / wall, 2) };
  }
  out.totalCores = round(ours / wall, 2);
  out.otherCores = round(Math.max(0, b.machine - a.machine - ours) / wall, 2);
  return out;
}
