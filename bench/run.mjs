// `npm run bench`: runs every benchmark suite in its own Node process (a clean heap each, with
// --expose-gc), against the BUILT code in dist/, a nats-server each suite starts with the
// project's nats.conf, and Postgres (BENCH_DATABASE_URL, default
// postgres://postgres@127.0.0.1:5432/postgres; every suite creates and drops its own schema).
// Raw JSON goes to bench/results/ (git-ignored); the table in docs/benchmarks.md is regenerated
// between its markers (the hand-written analysis around them is kept).
//
// Knobs: BENCH_QUICK=1 (shorter run), BENCH_ONLY=throughput,hostcpu,latency,heap,pglite,restart,lowload,backlog,scaleout,inspectorList,
// BENCH_ROUNDS, BENCH_SESSIONS, BENCH_PER_SESSION, BENCH_PARTITIONS, BENCH_PUB_WINDOW,
// BENCH_POLICY (queue | cancel-and-merge), BENCH_STATE_BYTES, BENCH_RESTART_SESSIONS,
// BENCH_LOWLOAD_N, BENCH_LOWLOAD_TIMERS, BENCH_LOWLOAD_GAP_MS, BENCH_LOWLOAD_STORES (pg,memory),
// BENCH_BACKLOG, BENCH_BACKLOG_SESSIONS, BENCH_BACKLOG_LIMIT_S, BENCH_SCALEOUT_* (see bench/scaleout.mjs),
// BENCH_LIST_SESSIONS, BENCH_LIST_REPS, BENCH_LIST_SCROLL_PAGES (bench/inspectorList.mjs),
// BENCH_SEMI_SPACE_MB (64: as npm start runs nodes; 0: V8's default), BENCH_QUIET_WAIT_S, BENCH_MERGE=<earlier results.json> (with BENCH_ONLY: re-run those suites,
// keep the rest), BENCH_CPU_PROF=1 (writes .cpuprofile files of each suite process to
// bench/results/profiles/), BENCH_NO_DOCS=1, BENCH_NATS_SERVER=<path to a nats-server binary> (instead of
// the one on PATH / Debian's; every suite records the version it ran with: see bench/lib.mjs).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { BENCH_DIR, ROOT, log, machineBusyMs, sleep } from './lib.mjs';
import { machineInfo, renderDoc } from './report.mjs';

const SUITES = [
  { name: 'throughput', timeoutMs: 900_000 },
  // The session host's own CPU and allocation per message, in one process, without NATS or Postgres (issue 12).
  { name: 'hostcpu', timeoutMs: 600_000 },
  { name: 'latency', timeoutMs: 240_000 },
  { name: 'heap', timeoutMs: 240_000 },
  { name: 'pglite', timeoutMs: 480_000 },
  { name: 'restart', timeoutMs: 360_000 },
  // Low load: one message at a time on an idle runtime, with the stage breakdown (issue 12).
  { name: 'lowload', timeoutMs: 480_000 },
  // Backlog: publishing it, then draining it (stops itself at BENCH_BACKLOG_LIMIT_S), then dropping its schema.
  { name: 'backlog', timeoutMs: 1_200_000 },
  // Scale-out: 1 → 2 → 3 node processes (concurrency-bound and CPU-bound), and a rolling restart
  // of 3 nodes under load verified from Postgres (issue 14). Its own block in docs/benchmarks.md.
  { name: 'scaleout', timeoutMs: 1_500_000 },
  // The inspector's sessions list with 100,000 stored sessions, in Chromium (issue 18). Its own block in docs/benchmarks.md.
  { name: 'inspectorList', timeoutMs: 900_000 },
];
const only = process.env.BENCH_ONLY ? process.env.BENCH_ONLY.split(',').map((s) => s.trim()) : null;
const resultsDir = join(BENCH_DIR, 'results');
mkdirSync(resultsDir, { recursive: true });
const stamp = new Date().toISOString().replace(/[:.]/g, '-');

/** The suites must not pick up a developer's runtime configuration from the environment. */
function suiteEnv() {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('AGENTRY_') || k === 'DATABASE_URL' || k === 'NATS_URL') delete env[k];
  return env;
}

/** Hash of the built code under test (dist/ may be rebuilt by others between suites on a shared checkout). */
function codeHash() {
  const h = createHash('sha1');
  for (const dir of ['actors', 'runtime', 'persistence']) {
    const d = join(ROOT, 'dist', dir);
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d).filter((x) => x.endsWith('.js')).sort()) h.update(f).update(readFileSync(join(d, f)));
  }
  return h.digest('hex').slice(0, 10);
}

let current;
// Ctrl-C: the suite runs in its own process group, so pass the signal on (it cleans up and exits).
process.on('SIGINT', () => {
  if (current) { try { process.kill(-current.pid, 'SIGINT'); } catch { /* gone */ } }
  process.exit(130);
});

/** Runs one suite in its own process group (so a timeout also ends the nats-server it started). */
function runSuite({ name, timeoutMs }) {
  const out = join(resultsDir, `${stamp}-${name}.json`);
  const args = ['--expose-gc'];
  // The young generation nodes are started with (npm start, the Dockerfile: docs/operations.md);
  // BENCH_SEMI_SPACE_MB=0 measures with V8's default (16 MiB) instead.
  const semi = Number(process.env.BENCH_SEMI_SPACE_MB ?? 64);
  if (semi > 0) args.push(`--max-semi-space-size=${semi}`);
  if (process.env.BENCH_CPU_PROF === '1') args.push('--cpu-prof', '--cpu-prof-dir', join(resultsDir, 'profiles', `${stamp}-${name}`)); // forked children inherit it; Node's default file names carry the pid
  args.push(join(BENCH_DIR, `${name}.mjs`), out);
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, env: suiteEnv(), stdio: ['ignore', 'inherit', 'inherit'], detached: true });
    current = child;
    const timer = setTimeout(() => {
      log(`${name}: timed out after ${timeoutMs / 1000} s; stopping it`);
      try { process.kill(-child.pid, 'SIGTERM'); } catch { /* gone */ }
      setTimeout(() => { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } }, 5000).unref();
    }, timeoutMs);
    child.on('exit', (code, signal) => {
      current = undefined;
      clearTimeout(timer);
      const seconds = Math.round((Date.now() - t0) / 1000);
      if (code === 0 && existsSync(out)) resolve({ ok: true, seconds, data: JSON.parse(readFileSync(out, 'utf8')) });
      else resolve({ ok: false, seconds, error: `exited with ${signal ?? code}` });
    });
  });
}

/**
 * This machine may be shared: before each suite, wait (up to BENCH_QUIET_WAIT_S, default 20 s)
 * until other processes use less than a quarter of a core for 3 s in a row. What was seen is
 * recorded; each measurement also records the CPU other processes used while it ran.
 */
async function waitForQuiet() {
  const maxMs = Number(process.env.BENCH_QUIET_WAIT_S ?? 20) * 1000;
  const t0 = Date.now();
  let quiet = 0;
  let last = 0;
  for (;;) {
    const a = machineBusyMs();
    await sleep(1000);
    last = (machineBusyMs() - a) / 1000;
    quiet = last < 0.25 ? quiet + 1 : 0;
    if (quiet >= 3) return { waitedS: Math.round((Date.now() - t0) / 1000), busyCores: Math.round(last * 100) / 100, quiet: true };
    if (Date.now() - t0 > maxMs) return { waitedS: Math.round((Date.now() - t0) / 1000), busyCores: Math.round(last * 100) / 100, quiet: false };
  }
}

const started = new Date();
const machine = await machineInfo();
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('BENCH_') && k !== 'BENCH_MERGE' && k !== 'BENCH_NATS_SERVER_DIR'));
// BENCH_MERGE=<results.json>: re-run some suites (BENCH_ONLY) and keep the others from that file;
// every suite records when it ran, and the doc says so.
const base = process.env.BENCH_MERGE ? JSON.parse(readFileSync(process.env.BENCH_MERGE, 'utf8')) : null;
const results = base
  ? { ...base, machine, mergedFrom: process.env.BENCH_MERGE, suites: { ...base.suites } }
  : { startedAt: started.toISOString(), machine, env, suites: {} };
for (const s of SUITES) {
  if (only && !only.includes(s.name)) continue;
  const quiet = await waitForQuiet();
  log(`suite ${s.name} … (machine ${quiet.quiet ? 'quiet' : `busy with other work: ${quiet.busyCores} cores`} after ${quiet.waitedS} s)`);
  const at = new Date().toISOString();
  const code = codeHash();
  results.suites[s.name] = { ...(await runSuite(s)), before: quiet, startedAt: at, env, code, natsServer: machine.natsServer };
  log(`suite ${s.name}: ${results.suites[s.name].ok ? 'ok' : results.suites[s.name].error} in ${results.suites[s.name].seconds} s`);
}
results.finishedAt = new Date().toISOString();
results.totalSeconds = base ? base.totalSeconds : Math.round((Date.now() - started.getTime()) / 1000);
writeFileSync(join(resultsDir, `${stamp}.json`), JSON.stringify(results, null, 2));
writeFileSync(join(resultsDir, 'latest.json'), JSON.stringify(results, null, 2));
log(`raw results: bench/results/${stamp}.json (${results.totalSeconds} s)`);
if (process.env.BENCH_NO_DOCS !== '1') {
  const docPath = join(ROOT, 'docs', 'benchmarks.md');
  writeFileSync(docPath, renderDoc(results, existsSync(docPath) ? readFileSync(docPath, 'utf8') : null));
  log('docs/benchmarks.md updated');
}
const failed = Object.entries(results.suites).filter(([, r]) => !r.ok);
if (failed.length > 0) {
  log(`failed suites: ${failed.map(([n]) => n).join(', ')}`);
  process.exitCode = 1;
}
