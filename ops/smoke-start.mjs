// Smoke check of the README's run command from a clean clone: `npm start` comes up, answers a
// message sent over NATS, and exits 0 on SIGTERM. Used by .ci/run; exits non-zero on failure.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';

const dataDir = mkdtempSync(join(tmpdir(), 'agentry-smoke-'));
const fail = (msg) => { console.error(`smoke: FAILED: ${msg}`); process.exitCode = 1; };
const npm = spawn('npm', ['start'], { env: { ...process.env, AGENTRY_DATA_DIR: dataDir, PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
let out = '';
npm.stdout.on('data', (d) => { out += d; });
npm.stderr.on('data', (d) => { out += d; });
const exited = new Promise((res) => npm.on('exit', (code, signal) => res({ code, signal })));
try {
  const t0 = Date.now();
  while (!out.includes('Agentry dev runtime is running')) {
    if (Date.now() - t0 > 120_000) throw new Error(`npm start did not come up:\n${out}`);
    if (npm.exitCode !== null) throw new Error(`npm start exited early:\n${out}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const url = readFileSync(join(dataDir, 'nats.url'), 'utf8').trim();
  const nc = await connect({ servers: url });
  const sub = nc.subscribe('agentry.out.smoke', { max: 1 });
  await jetstream(nc).publish('agentry.in.smoke', JSON.stringify({ text: 'ping from smoke' }));
  const reply = await Promise.race([
    (async () => { for await (const m of sub) return m.json(); })(),
    new Promise((_, rej) => setTimeout(() => rej(new Error('no reply within 20 s')), 20_000)),
  ]);
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
  const { code, signal } = await Promise.race([exited, new Promise((_, rej) => setTimeout(() => rej(new Error('no exit within 20 s of SIGTERM')), 20_000))]);
  if (code !== 0) throw new Error(`npm start exited with ${code ?? signal} after SIGTERM:\n${out.slice(-2000)}`);
  console.log('smoke: npm start came up, answered over NATS and exited 0 on SIGTERM');
} catch (e) {
  fail(e.message);
  try { process.kill(-npm.pid, 'SIGKILL'); } catch { /* gone */ }
  npm.kill('SIGKILL');
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
