// Diagnostic, not part of `npm run bench`: where the A3 latency tail comes from (issue 12).
// Runs bench/latency.mjs's scenario (paced 1,000 msg/s over 1,000 live sessions, after a 2 s
// warm-up) once per store kind and stamps every message at each stage, by inbox sequence:
//   publish (the body's `t`) → dispatch (`host.dispatch`, wrapped on the instance) → handler start
//   → committer.submit (wrapped) → store.commit() start → its end → onCommitted.
// Beside that it records the event loop's lateness over time (a 1 ms interval probe), GC pauses
// (PerformanceObserver 'gc') and every store.commit() call (records, ms, calls in flight), then
// prints stage percentiles and, for the slowest 1 % of handler starts, what overlapped them.
//   node bench/diag-latency.mjs                 (after npm run build; KINDS=pg,memory)
//   DIST=/path/to/other/dist node bench/diag-latency.mjs   (the same probe on other code)
//   RTCONF='{"groupCommitConcurrency":1}' node bench/diag-latency.mjs
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { PerformanceObserver } from 'node:perf_hooks';
import { cpus } from 'node:os';
import { PARTITIONS, PG_URL, cpuDelta, cpuMark, dropSchema, forkPublisher, percentiles, quietLogger, schemaName, startNats, waitUntil, wallNow } from './lib.mjs';

const DIST = process.env.DIST ?? new URL('../dist', import.meta.url).pathname;
const { createRuntime, defineAgent } = await import(`${DIST}/runtime/index.js`);
const { createPgStore } = await import(`${DIST}/persistence/index.js`);
const RATE = Number(process.env.BENCH_LATENCY_RATE ?? 1000);
const DURATION_MS = Number(process.env.BENCH_LATENCY_MS ?? 10_000);
const KINDS = (process.env.KINDS ?? 'pg').split(',');
const SESSIONS = 1000;

/**
 * CPU (ms) of the Postgres backends serving this process's connections: found by the client
 * ports of this process's sockets to :5432, which each backend's process title names. Other
 * users of the same server (a shared machine) do not count; the WAL writer and checkpointer
 * do not either.
 */
function myBackendsCpuMs() {
  const inodes = new Set();
  for (const fd of readdirSync('/proc/self/fd')) {
    try { const l = readlinkSync(`/proc/self/fd/${fd}`); const m = /^socket:\[(\d+)\]$/.exec(l); if (m) inodes.add(m[1]); } catch { /* closed */ }
  }
  const ports = new Set();
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || !inodes.has(f[9]) || !f[2].endsWith(':1538')) continue;
    ports.add(String(parseInt(f[1].split(':')[1], 16)));
  }
  const out = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
      const m = /^postgres: .*\(([0-9]+)\)/.exec(cmd);
      if (!m || !ports.has(m[1])) continue;
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(d, (Number(f[11]) + Number(f[12])) * 10);
    } catch { /* exited */ }
  }
  return out;
}
const backendDelta = (a, b) => { let t = 0; for (const [pid, ms] of b) t += ms - (a.get(pid) ?? 0); return t; };

const nats = await startNats();
const pub = await forkPublisher(nats.url);

async function measure(kind) {
  let phase = 'warmup';
  const st = new Map(); // seq → stamps
  const stamp = (seq, k, t) => { if (phase !== 'measured') return; let e = st.get(seq); if (!e) st.set(seq, e = {}); if (e[k] === undefined) e[k] = t; };
  const commits = [];
  let inflight = 0;
  const lag = []; // [at, lateness ms]
  const gcs = []; // [start, ms, kind]
  const gcObs = new PerformanceObserver((l) => { for (const e of l.getEntries()) if (phase === 'measured') gcs.push([performance.timeOrigin + e.startTime, e.duration, e.detail?.kind ?? e.kind]); });
  gcObs.observe({ entryTypes: ['gc'] });
  let committed = 0;
  const noop = defineAgent({
    type: 'noop', onMessage: 'queue',
    handle(batch) { const now = wallNow(); for (const m of batch) { stamp(m.seq, 'pub', m.body.t); stamp(m.seq, 'start', now); } return undefined; },
  });
  const config = { natsUrl: nats.url, partitions: PARTITIONS, defaultAgentType: 'noop', logLevel: 'error', ...JSON.parse(process.env.RTCONF ?? '{}') };
  let schema = null;
  let store;
  if (kind === 'memory') config.store = 'memory';
  else {
    schema = schemaName('dlat');
    store = createPgStore({ connectionString: PG_URL, schema });
    const commit = store.commit.bind(store);
    store.commit = async (records) => {
      const t0 = wallNow();
      const fl = ++inflight;
      for (const r of records) for (const h of r.history) stamp(h.seq, 'cstart', t0);
      try { await commit(records); } finally {
        inflight--;
        const t1 = wallNow();
        for (const r of records) for (const h of r.history) stamp(h.seq, 'cend', t1);
        if (phase === 'measured') commits.push({ at: t0, ms: t1 - t0, records: records.length, inflight: fl });
      }
    };
  }
  const rt = await createRuntime({ agents: [noop], config, logger: quietLogger(), ...(store ? { store } : {}) });
  const dispatch = rt.host.dispatch.bind(rt.host);
  rt.host.dispatch = (p, m) => { stamp(m.seq, 'dispatch', wallNow()); dispatch(p, m); };
  const submit = rt.committer.submit.bind(rt.committer);
  rt.committer.submit = (record) => { const t = wallNow(); for (const h of record.history) stamp(h.seq, 'submit', t); return submit(record); };
  rt.host.listen({ onCommitted(rec) { const t = wallNow(); for (const h of rec.history) stamp(h.seq, 'committed', t); committed += rec.history.length; } });
  let last = performance.now();
  const probe = setInterval(() => { const now = performance.now(); if (phase === 'measured') lag.push([performance.timeOrigin + now, now - last - 1]); last = now; }, 1);
  const job = { mode: 'paced', rate: RATE, subjectPrefix: 'agentry.in.', idPrefix: `${kind}-`, sessions: SESSIONS };
  const warm = await pub.start({ ...job, durationMs: 2000 });
  await waitUntil(() => committed >= warm.count, 'warm-up to finish', 60_000);
  phase = 'measured';
  committed = 0;
  const c0 = cpuMark(nats.pid, pub.pid);
  const b0 = myBackendsCpuMs();
  const rep = await pub.start({ ...job, durationMs: DURATION_MS });
  await waitUntil(() => committed >= rep.count, 'measured messages to commit', 60_000);
  const c1 = cpuMark(nats.pid, pub.pid);
  const pgMs = backendDelta(b0, myBackendsCpuMs());
  phase = 'done';
  clearInterval(probe);
  gcObs.disconnect();
  await rt.stop();
  if (store) await store.close();
  if (schema) await dropSchema(schema).catch(() => undefined);

  const rows = [...st.values()].filter((e) => e.pub !== undefined && e.start !== undefined);
  const d = (a, b) => rows.filter((e) => e[a] !== undefined && e[b] !== undefined).map((e) => e[b] - e[a]);
  const out = {
    kind, n: rows.length, cpu: cpuDelta(c0, c1, cpus().length),
    'publish→handler start': percentiles(d('pub', 'start')),
    'publish→dispatch': percentiles(d('pub', 'dispatch')),
    'dispatch→handler start': percentiles(d('dispatch', 'start')),
    'handler start→submit': percentiles(d('start', 'submit')),
    'submit→commit() start': percentiles(d('submit', 'cstart')),
    'commit() start→end': percentiles(d('cstart', 'cend')),
    'commit() end→onCommitted': percentiles(d('cend', 'committed')),
    'publish→committed': percentiles(d('pub', 'committed')),
    'event-loop lateness (1 ms probe)': percentiles(lag.map((l) => l[1])),
    gc: { n: gcs.length, totalMs: Math.round(gcs.reduce((a, g) => a + g[1], 0)), ms: percentiles(gcs.map((g) => g[1])), byKind: Object.fromEntries([...new Set(gcs.map((g) => g[2]))].map((k) => [k, gcs.filter((g) => g[2] === k).length])) },
  };
  if (commits.length > 0) {
    out.commitCalls = { n: commits.length, perSecond: Math.round(commits.length / (c1.at - c0.at) * 1000), pgBackendUsPerMessage: Math.round(pgMs * 1000 / rows.length), records: percentiles(commits.map((c) => c.records)), ms: percentiles(commits.map((c) => c.ms)), inflightAtStart: percentiles(commits.map((c) => c.inflight)) };
  }
  // The slowest 1 % of handler starts: what overlapped their [publish, start] window.
  const sorted = rows.slice().sort((a, b) => (b.start - b.pub) - (a.start - a.pub));
  const worst = sorted.slice(0, Math.max(1, Math.floor(rows.length / 100)));
  out.worst = worst.slice(0, 15).map((e) => {
    const maxLag = Math.max(0, ...lag.filter((l) => l[0] >= e.pub && l[0] <= e.start + 1).map((l) => l[1]));
    const gc = gcs.filter((g) => g[0] + g[1] >= e.pub && g[0] <= e.start).map((g) => `${g[2]}:${g[1].toFixed(1)}`);
    const cm = commits.filter((c) => c.at <= e.start && c.at + c.ms >= e.pub).length;
    return { total: +(e.start - e.pub).toFixed(2), toDispatch: +((e.dispatch ?? NaN) - e.pub).toFixed(2), dispatchToStart: +(e.start - (e.dispatch ?? NaN)).toFixed(2), maxLoopLag: +maxLag.toFixed(1), gc: gc.join(' '), commitsOverlapping: cm };
  });
  const attributed = worst.map((e) => Math.max(0, ...lag.filter((l) => l[0] >= e.pub && l[0] <= e.start + 1).map((l) => l[1])));
  out.worstSummary = {
    n: worst.length,
    'of them with a loop lag ≥ half their latency': worst.filter((e, i) => attributed[i] >= (e.start - e.pub) / 2).length,
    'with a GC pause in their window': worst.filter((e) => gcs.some((g) => g[0] + g[1] >= e.pub && g[0] <= e.start)).length,
    'late at dispatch (≥ 80 % of the latency before dispatch)': worst.filter((e) => e.dispatch !== undefined && (e.dispatch - e.pub) >= 0.8 * (e.start - e.pub)).length,
  };
  // When the slow ones happened (ms since the first measured publish, in 20 ms bins): periodic
  // clusters point at a timer (lease renewals, sweeps), scattered ones at load or GC.
  const t0 = Math.min(...rows.map((e) => e.pub));
  const bins = new Map();
  for (const e of worst) { const b = Math.floor((e.pub - t0) / 20) * 20; bins.set(b, (bins.get(b) ?? 0) + 1); }
  out.worstByTime = [...bins].sort((a, b) => a[0] - b[0]).map(([b, n]) => `${b}:${n}`).join(' ');
  const slowCommits = commits.slice().sort((a, b) => b.ms - a.ms).slice(0, 8).map((c) => ({ ms: +c.ms.toFixed(1), records: c.records, inflight: c.inflight, maxLoopLagDuring: +Math.max(0, ...lag.filter((l) => l[0] >= c.at && l[0] <= c.at + c.ms).map((l) => l[1])).toFixed(1) }));
  if (slowCommits.length) out.slowestCommits = slowCommits;
  return out;
}

try {
  for (const kind of KINDS) console.log(JSON.stringify(await measure(kind), null, 1));
} finally {
  await pub.stop();
  await nats.cleanup();
}
process.exit(0);
