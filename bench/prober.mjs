// The request side of the low-load and backlog suites, run in its own process (forked by
// lib.mjs's forkProber) so neither its timers nor its stamps share the event loop of the
// runtime under test. It publishes single messages through JetStream, each body stamped with
// its wall-clock publish time (processes on one machine share the clock), and waits for the
// answer on a reply subject (`agentry.out.<id>` for the runtime). The answer's body must
// carry the probe's index `i`, which is how late answers are told apart. Jobs, over IPC:
//   sequential: one probe at a time, the next `gapMs` after the previous one was answered (or
//               timed out): every probe meets an idle system;
//   schedule:   probes at fixed offsets from the start, without waiting (a paced trickle);
//               then waits for the answers;
//   interval:   a probe to a new id every `everyMs` until told to stop (answers optional).
// Each probe reports its publish time t0, PubAck latency and answer latency (null: none).
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { makeBodyWith, sleep, wallNow } from './lib.mjs';

const url = process.argv[2];
const nc = await connect({ servers: url, name: 'agentry-bench-prober' });
const js = jetstream(nc);
const enc = new TextEncoder();
const dec = new TextDecoder();

/** Answers by `<id>:<i>`: resolved by the reply subscription, or by a timeout. */
const waiting = new Map();
let replySub = null;
let replyPrefix = '';
let stopRequested = false;

async function listen(prefix) {
  if (replySub && replyPrefix === prefix) return;
  replySub?.unsubscribe();
  replyPrefix = prefix;
  replySub = nc.subscribe(`${prefix}>`, {
    callback: (err, m) => {
      if (err) return;
      const t1 = wallNow();
      let i;
      try { i = JSON.parse(dec.decode(m.data)).i; } catch { return; }
      const w = waiting.get(`${m.subject.slice(prefix.length)}:${i}`);
      if (w) w(t1);
    },
  });
  await nc.flush(); // the server knows the interest before the first probe
}

/** Publishes one probe; `answered` resolves with the answer time, or null after timeoutMs. */
function probe(item, i, subjectPrefix, timeoutMs, wantAnswer) {
  const key = `${item.id}:${i}`;
  let answered = Promise.resolve(null);
  if (wantAnswer) {
    answered = new Promise((resolve) => {
      const timer = setTimeout(() => { waiting.delete(key); resolve(null); }, timeoutMs);
      waiting.set(key, (t1) => { clearTimeout(timer); waiting.delete(key); resolve(t1); });
    });
  }
  const t0 = wallNow();
  const acked = js.publish(`${subjectPrefix}${item.id}`, enc.encode(makeBodyWith(i, t0, item.extra))).then(() => wallNow(), () => null);
  return { t0, acked, answered };
}

const result = async (item, i, p) => {
  const [tAck, t1] = await Promise.all([p.acked, p.answered]);
  return { id: item.id, i, t0: p.t0, ackMs: tAck === null ? null : tAck - p.t0, replyMs: t1 === null ? null : t1 - p.t0 };
};

async function sequential(job) {
  await listen(job.replyPrefix);
  const out = [];
  for (let k = 0; k < job.items.length; k++) {
    const item = job.items[k];
    const i = (job.firstIndex ?? 0) + k;
    out.push(await result(item, i, probe(item, i, job.subjectPrefix, job.timeoutMs ?? 10_000, true)));
    if (job.gapMs) await sleep(job.gapMs);
  }
  return { probes: out };
}

async function schedule(job) {
  await listen(job.replyPrefix);
  const t0 = wallNow();
  const pending = [];
  for (let k = 0; k < job.items.length; k++) {
    const item = job.items[k];
    const wait = t0 + item.atMs - wallNow();
    if (wait > 0) await sleep(wait);
    const i = (job.firstIndex ?? 0) + k;
    pending.push(result(item, i, probe(item, i, job.subjectPrefix, job.timeoutMs ?? 30_000, true)));
  }
  return { probes: await Promise.all(pending) };
}

async function interval(job) {
  if (job.replyPrefix) await listen(job.replyPrefix);
  stopRequested = false;
  const pending = [];
  const t0 = wallNow();
  for (let k = 0; !stopRequested && (job.max === undefined || k < job.max); k++) {
    const wait = t0 + k * job.everyMs - wallNow();
    if (wait > 0) await sleep(wait);
    if (stopRequested) break;
    const item = { id: `${job.idPrefix}${k}`, extra: job.extra };
    const i = (job.firstIndex ?? 0) + k;
    pending.push(result(item, i, probe(item, i, job.subjectPrefix, job.timeoutMs ?? 30_000, Boolean(job.replyPrefix))));
  }
  return { probes: await Promise.all(pending) };
}

process.on('message', (m) => {
  if (m.type === 'exit') { nc.close().finally(() => process.exit(0)); return; }
  if (m.type === 'stop') { stopRequested = true; return; }
  if (m.type !== 'job') return;
  const run = { sequential, schedule, interval }[m.job.mode];
  run(m.job).then(
    (r) => process.send({ type: 'done', ...r }),
    (e) => process.send({ type: 'error', message: String(e?.stack ?? e) }),
  );
});
process.on('disconnect', () => process.exit(0));
process.send({ type: 'ready' });
