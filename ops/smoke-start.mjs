// Smoke check of the README's run command from a clean clone, as a terminal runs it (npm in a
// process group of its own): `npm start` comes up, answers a message sent over NATS and exits 0
// on SIGTERM to the runtime; then a second `npm start` on the same data (a restart: the build is
// incremental, so it comes up in seconds) stops on SIGINT to the whole process group — a
// terminal's Ctrl-C — leaving no process behind, its nats-server included. Used by .ci/run;
// exits non-zero on failure. Prints how long each start and stop took.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';

const dataDir = mkdtempSync(join(tmpdir(), 'agentry-smoke-'));
const fail = (msg) => { console.error(`smoke: FAILED: ${msg}`); process.exitCode = 1; };
// The deadline timer is unref'd: a met deadline must not keep the smoke run alive for its length.
const within = (p, ms, what) => Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(what)), ms).unref())]);
/** A process that exists and is not a zombie. */
const running = (pid) => {
  try { const s = readFileSync(`/proc/${pid}/stat`, 'utf8'); return s[s.lastIndexOf(')') + 2] !== 'Z'; } catch { return false; }
};
/** Any process left in the group `pgid`. */
const groupAlive = (pgid) => { try { process.kill(-pgid, 0); return true; } catch { return false; } };

let npm;
/** Runs `npm start` in its own process group; resolves once the banner is out. */
async function startNpm() {
  const t0 = Date.now();
  const p = spawn('npm', ['start'], { env: { ...process.env, AGENTRY_DATA_DIR: dataDir, PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  npm = p;
  const run = { p, out: '', exited: new Promise((res) => p.on('exit', (code, signal) => res({ code, signal }))) };
  p.stdout.on('data', (d) => { run.out += d; });
  p.stderr.on('data', (d) => { run.out += d; });
  while (!run.out.includes('Agentry dev runtime is running')) {
    if (Date.now() - t0 > 180_000) throw new Error(`npm start did not come up:\n${run.out}`);
    if (p.exitCode !== null) throw new Error(`npm start exited early:\n${run.out}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  console.log(`smoke: npm start came up in ${Date.now() - t0} ms`);
  return run;
}

try {
  // 1. Up, one message answered over NATS, SIGTERM to the runtime process itself.
  const first = await startNpm();
  const url = readFileSync(join(dataDir, 'nats.url'), 'utf8').trim();
  const nc = await connect({ servers: url });
  const sub = nc.subscribe('agentry.out.smoke', { max: 1 });
  await jetstream(nc).publish('agentry.in.smoke', JSON.stringify({ text: 'ping from smoke' }));
  const reply = await within((async () => { for await (const m of sub) return m.json(); })(), 20_000, 'no reply within 20 s');
  if (reply?.text !== 'ping from smoke') throw new Error(`unexpected reply ${JSON.stringify(reply)}`);
  await nc.close();
  // Signal the runtime process itself (npm passes its exit code through).
  const pids = execFileSync('pgrep', ['-f', `cli.js dev`]).toString().trim().split('\n').map(Number)
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'node' && readFileSync(`/proc/${pid}/environ`, 'utf8').includes(dataDir);
      } catch { return false; }
    });
  if (pids.length !== 1) throw new Error(`expected one runtime process, found ${pids.length}`);
  process.kill(pids[0], 'SIGTERM');
  const { code, signal } = await within(first.exited, 20_000, 'no exit within 20 s of SIGTERM');
  if (code !== 0) throw new Error(`npm start exited with ${code ?? signal} after SIGTERM:\n${first.out.slice(-2000)}`);
  console.log('smoke: npm start came up, answered over NATS and exited 0 on SIGTERM');

  // 2. Restart, then Ctrl-C as a terminal sends it: SIGINT to every process of the group.
  const second = await startNpm();
  const natsPid = Number(readFileSync(join(dataDir, 'nats.pid'), 'utf8').trim().split(/\s+/)[0]);
  if (!running(natsPid)) throw new Error(`no nats-server running under pid ${natsPid}`);
  const t0 = Date.now();
  process.kill(-second.p.pid, 'SIGINT');
  // npm re-raises the signal on itself once its child is done: SIGINT (or 0) is a clean stop.
  const r = await within(second.exited, 30_000, `no exit within 30 s of the group SIGINT:\n${second.out.slice(-2000)}`);
  if (!(r.code === 0 || r.signal === 'SIGINT' || r.code === 130)) throw new Error(`npm start ended with ${r.code ?? r.signal} after the group SIGINT:\n${second.out.slice(-2000)}`);
  if (!second.out.includes('runtime stopped') || /shutdown (incomplete|failed|did not finish)/.test(second.out)) {
    throw new Error(`the runtime did not stop cleanly on the group SIGINT:\n${second.out.slice(-2000)}`);
  }
  const deadline = Date.now() + 10_000;
  while ((groupAlive(second.p.pid) || running(natsPid)) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
  if (groupAlive(second.p.pid)) throw new Error('a process of the npm start group is still running after its exit');
  if (running(natsPid) || existsSync(join(dataDir, 'nats.pid'))) throw new Error(`the dev nats-server (pid ${natsPid}) is still running after npm start exited`);
  console.log(`smoke: npm start restarted and stopped on a group SIGINT (Ctrl-C) in ${Date.now() - t0} ms, nats-server included`);
} catch (e) {
  fail(e.message);
  if (npm) {
    try { process.kill(-npm.pid, 'SIGKILL'); } catch { /* gone */ }
  }
  try {
    const natsPid = Number(readFileSync(join(dataDir, 'nats.pid'), 'utf8').trim().split(/\s+/)[0]);
    if (running(natsPid)) process.kill(natsPid, 'SIGKILL');
  } catch { /* no pid file */ }
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
