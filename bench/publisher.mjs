// The producer of every throughput and latency benchmark, run in its own process (forked by
// lib.mjs) so the runtime under test does not pay for publishing. It connects, says `ready`,
// then runs jobs sent over IPC:
//   burst: publish sessions × perSession messages through JetStream with `window` publishes in
//          flight (pipelined), interleaving sessions (s0 m0, s1 m0, …, s0 m1, …);
//   paced: publish `rate` messages per second for `durationMs`, round-robin over the sessions.
// Each body is BODY_BYTES of JSON carrying its index and the wall-clock time of its publish.
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { makeBody, wallNow, percentiles } from './lib.mjs';

const url = process.argv[2];
const nc = await connect({ servers: url, name: 'agentry-bench-publisher' });
const js = jetstream(nc);
const enc = new TextEncoder();

function subjectOf(job, k) {
  return `${job.subjectPrefix}${job.idPrefix}${k % job.sessions}`;
}

async function burst(job) {
  const total = job.sessions * job.perSession;
  const window = job.window ?? 1000;
  const cpu0 = process.cpuUsage();
  let next = 0;
  let acked = 0;
  let t0 = 0;
  let tLast = 0;
  let retries = 0;
  const runId = Math.random().toString(36).slice(2, 10); // message ids unique to this burst
  await new Promise((resolve, reject) => {
    const pump = () => {
      while (next - acked < window && next < total) {
        const k = next++;
        const now = wallNow();
        if (k === 0) { t0 = now; process.send({ type: 'started', t0 }); }
        // A PubAck that times out (a server busy with a deep stream) is retried with the same
        // Nats-Msg-Id, so the stream keeps each message once; other errors end the run.
        const body = enc.encode(makeBody(k, now));
        const send = (attempt) => js.publish(subjectOf(job, k), body, { msgID: `${runId}-${k}` }).then(() => {
          acked++;
          if (acked === total) { tLast = wallNow(); resolve(); } else pump();
        }, (err) => {
          if (attempt < 5 && /timeout/i.test(String(err?.message ?? err))) { retries++; send(attempt + 1); } else reject(err);
        });
        send(1);
      }
    };
    pump();
  });
  const cpu = process.cpuUsage(cpu0);
  return { count: total, t0, tLastAck: tLast, publishRate: total / ((tLast - t0) / 1000), cpuMs: (cpu.user + cpu.system) / 1000, retries };
}

async function paced(job) {
  const total = Math.round((job.rate * job.durationMs) / 1000);
  const cpu0 = process.cpuUsage();
  const ackLat = [];
  let sent = 0;
  let acked = 0;
  let failed = 0;
  const t0 = wallNow();
  process.send({ type: 'started', t0 });
  await new Promise((resolve) => {
    const tick = () => {
      const owed = Math.min(total, Math.floor(((wallNow() - t0) * job.rate) / 1000) + 1);
      while (sent < owed) {
        const k = sent++;
        const now = wallNow();
        js.publish(subjectOf(job, k), enc.encode(makeBody(k, now))).then(() => {
          ackLat.push(wallNow() - now);
          if (++acked + failed === total) resolve();
        }, () => {
          if (acked + ++failed === total) resolve();
        });
      }
      if (sent < total) setTimeout(tick, 1);
    };
    tick();
  });
  const tLast = wallNow();
  const cpu = process.cpuUsage(cpu0);
  return { count: total, failed, t0, tLastAck: tLast, publishRate: total / ((tLast - t0) / 1000), pubAckMs: percentiles(ackLat), cpuMs: (cpu.user + cpu.system) / 1000 };
}

process.on('message', (m) => {
  if (m.type === 'exit') {
    nc.close().finally(() => process.exit(0));
    return;
  }
  if (m.type !== 'job') return;
  const run = m.job.mode === 'paced' ? paced : burst;
  run(m.job).then(
    (r) => process.send({ type: 'done', ...r }),
    (e) => process.send({ type: 'error', message: String(e?.stack ?? e) }),
  );
});
process.on('disconnect', () => process.exit(0));
process.send({ type: 'ready' });
