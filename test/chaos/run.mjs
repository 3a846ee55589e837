#!/usr/bin/env node
// `npm run chaos -- [options]`: builds the runtime (dist/, which the node processes run), then
// runs the seeded chaos run (test/chaos/chaos.test.ts → chaosRun.ts) through vitest with the
// options as CHAOS_* variables, and prints the verifier's verdict from the JSON report. Exits
// non-zero when anything was lost, applied twice or out of order, a poison message did not
// become exactly one dead letter, a timer was missed, fired twice or early, an event or a mail
// was not handled exactly once, a cron firing was doubled, early or missing, or a fault's recovery
// exceeded the bound (printed). Plain JS, so it needs nothing beyond the dev dependencies.
//
//   npm run chaos                                  # 20 faults, 3 nodes, ≥ 300 s, a random seed
//   npm run chaos -- --seed 7 --faults 100 --duration 1800
//   npm run chaos -- --seed 7 --faults 8 --duration 60 --kinds kill,pause
//
// Options: --seed N, --faults N, --nodes N, --duration SECONDS, --rate MSG_PER_S, --sessions N,
// --sleepers N, --mailers N (sessions that mail on, 6), --cron N (sessions with a cron task, 3), --lease-ms MS, --bound-ms MS, --settle-ms MS, --kinds a,b,…, --poison-rate P
// (chance per fault of a poison message, 0.5; 0: none), --report FILE,
// --keep-logs, --no-build. Fault kinds: kill pause term nats-restart nats-refuse nats-blackhole
// pg-refuse pg-blackhole pg-deaf, two at once: pause-nats-restart term-pg-deaf term-nats-blackhole,
// pg-restart (every node's Postgres refused), consumer-delete (an operator's `nats consumer rm`) and
// lease-bucket-delete (`nats kv rm AGENTRY_LEASES`).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const FLAGS = {
  '--seed': 'CHAOS_SEED', '--faults': 'CHAOS_FAULTS', '--nodes': 'CHAOS_NODES', '--duration': 'CHAOS_DURATION',
  '--rate': 'CHAOS_RATE', '--sessions': 'CHAOS_SESSIONS', '--sleepers': 'CHAOS_SLEEPERS', '--lease-ms': 'CHAOS_LEASE_MS',
  '--bound-ms': 'CHAOS_BOUND_MS', '--settle-ms': 'CHAOS_SETTLE_MS', '--kinds': 'CHAOS_KINDS', '--report': 'CHAOS_REPORT',
  '--poison-rate': 'CHAOS_POISON_RATE', '--mailers': 'CHAOS_MAILERS', '--cron': 'CHAOS_CRON',
};

function usage(msg) {
  if (msg) console.error(`chaos: ${msg}`);
  console.error('usage: npm run chaos -- [--seed N] [--faults N] [--nodes N] [--duration S] [--rate R] [--sessions N] [--sleepers N] [--mailers N] [--cron N] [--lease-ms MS] [--bound-ms MS] [--settle-ms MS] [--kinds a,b] [--poison-rate P] [--report FILE] [--keep-logs] [--no-build]');
  process.exit(2);
}

const env = { ...process.env, CHAOS_FAULTS: '20', CHAOS_NODES: '3', CHAOS_DURATION: '300', CHAOS_ENFORCE_BOUND: '1' };
let build = true;
const args = process.argv.slice(2);
for (let k = 0; k < args.length; k++) {
  const a = args[k];
  if (a === '--no-build') { build = false; continue; }
  if (a === '--keep-logs') { env.CHAOS_KEEP_LOGS = '1'; continue; }
  if (a === '--help' || a === '-h') usage();
  const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
  const name = FLAGS[flag];
  if (!name) usage(`unknown option ${a}`);
  const value = inline ?? args[++k];
  if (value === undefined) usage(`${flag} needs a value`);
  if (name !== 'CHAOS_KINDS' && name !== 'CHAOS_REPORT' && !Number.isFinite(Number(value))) usage(`${flag} must be a number`);
  env[name] = value;
}
env.CHAOS_SEED ??= String(Math.floor(Math.random() * 2 ** 31));
env.CHAOS_REPORT ??= join(tmpdir(), `agentry-chaos-${env.CHAOS_SEED}-${Date.now()}.json`);

if (build) {
  // The project's build (incremental: only what changed), else tsc and the migrations by hand.
  const steps = existsSync(join(root, 'ops', 'build.mjs'))
    ? [[process.execPath, ['ops/build.mjs']]]
    : [['npx', ['tsc', '-p', 'tsconfig.build.json']], [process.execPath, ['ops/copy-assets.mjs']]];
  console.log('chaos: building dist/');
  for (const [cmd, argv] of steps) {
    const r = spawnSync(cmd, argv, { cwd: root, stdio: 'inherit' });
    if (r.status !== 0) { console.error(`chaos: build failed (${cmd} ${argv.join(' ')})`); process.exit(2); }
  }
}

console.log(`chaos: seed ${env.CHAOS_SEED}, ${env.CHAOS_FAULTS} faults, ${env.CHAOS_NODES} nodes, ≥ ${env.CHAOS_DURATION} s; report → ${env.CHAOS_REPORT}`);
const child = spawn('npx', ['vitest', 'run', 'test/chaos/chaos.test.ts'], { cwd: root, env, stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { child.kill(sig); });
const code = await new Promise((res) => { child.on('exit', (c, s) => { res(c ?? (s ? 1 : 0)); }); });

if (!existsSync(env.CHAOS_REPORT)) {
  console.error(`chaos: no report was written (vitest exited with ${code}); see the output above`);
  process.exit(code === 0 ? 2 : code);
}
const r = JSON.parse(readFileSync(env.CHAOS_REPORT, 'utf8'));
const c = r.report.counts;
const lines = [
  '',
  `chaos: seed ${r.seed} — ${r.ok ? 'OK' : 'FAILED'} — ${r.faults.length} faults over ${r.elapsedS} s on ${r.options.nodes} nodes`,
  `  messages: ${c.published} published, ${c.applied} applied, lost ${c.lost}, never processed ${c.unprocessed}, applied twice ${c.doubled}, out of order ${c.outOfOrder}, good dead-lettered ${c.deadLetteredGood}, left unacked ${c.unacked}`,
  `  poison:   ${c.poison.sent} sent, ${c.poison.deadLettered} dead-lettered once, ${c.poison.missing} not dead-lettered, ${c.poison.multiple} more than once, ${c.poison.applied} applied`,
  `  timers:   ${c.timers.set} set, ${c.timers.fired} fired, ${c.timers.missed} missed, ${c.timers.twice} fired twice, ${c.timers.early} early`,
  ...(c.events ? [`  events:   ${c.events.published} × ${c.events.subscribers} subscribers, ${c.events.delivered} delivered, ${c.events.missed} missed, ${c.events.doubled} doubled`] : []),
  ...(c.mail ? [`  mail:     ${c.mail.mailers} mailers, ${c.mail.expected} sent by committed turns, ${c.mail.delivered} delivered, ${c.mail.missing} missing, ${c.mail.doubled} doubled, ${c.mail.phantom} from uncommitted turns, ${c.mail.reordered} reordered (not promised)`] : []),
  ...(c.cron ? [`  cron:     ${c.cron.tasks} tasks, ${c.cron.fired} firings, ${c.cron.twice} twice, ${c.cron.early} early, ${c.cron.missing} missing, ${c.cron.collapsed} collapsed by catch-up, ${c.cron.reordered} reordered, ${c.cron.stopped} stopped`] : []),
  `  commits by node ${JSON.stringify(c.commitsByNode)}, stale commits ${c.staleCommits}`,
  `  recovery (ms; kill/pause/term from the fault's start, server faults from when they were lifted; bound ${r.recoveryBoundMs} ms):`,
  ...Object.entries(r.recoveryByKind).map(([k, b]) => `    ${k.padEnd(14)} n=${b.n} p50=${b.p50 ?? '-'} p99=${b.p99 ?? '-'} max=${b.max ?? '-'} never=${b.never}`),
  ...r.report.problems.map((p) => `  PROBLEM ${p}`),
  ...r.boundViolations.map((v) => `  RECOVERY BOUND ${v}`),
  `  report: ${env.CHAOS_REPORT}`,
];
console.log(lines.join('\n'));
process.exit(r.ok ? 0 : 1);
