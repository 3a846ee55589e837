// Issue 5, proof 5: /metrics is valid Prometheus text (checked by a strict parser of the 0.0.4
// exposition format) with the runtime's and the API's metrics and no session ids; /readyz turns
// 503 when NATS stops and 200 again when it is back. Plus /openrpc.json and the HTTP edges.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echo } from '../../examples/echo.js';
import { METHOD_NAMES } from '../../client/index.js';
import { packageVersion } from '../../runtime/cluster.js';
import { startControlPlane, type ControlPlane, type Runtime } from '../../runtime/index.js';
import { startNats, tempDir, waitFor, startStack, type Stack } from '../helpers.js';
import { RawRpc } from './rawRpc.js';

type Nats = Awaited<ReturnType<typeof startNats>>;
let nats: Nats;
let stack: Stack;
let rt: Runtime;
let cp: ControlPlane;
let ui: ReturnType<typeof tempDir>;

interface Family { type: string; help: string; samples: { name: string; labels: Record<string, string>; value: number }[] }

/**
 * Parses Prometheus text format 0.0.4 strictly: HELP/TYPE comments, metric and label name
 * syntax, quoted label values with escapes, float values; samples must follow their TYPE,
 * histograms must have _bucket (with le, ending at +Inf), _sum and _count. Throws on any fault.
 */
function parsePrometheus(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
  const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
  const familyOf = (sample: string): Family | undefined => {
    for (const suffix of ['', '_bucket', '_sum', '_count', '_total', '_created']) {
      if (sample.endsWith(suffix)) {
        const f = families.get(sample.slice(0, sample.length - suffix.length));
        if (f) return f;
      }
    }
    return undefined;
  };
  const lines = text.split('\n');
  if (lines.at(-1) !== '') throw new Error('text must end with a newline');
  for (const [n, line] of lines.slice(0, -1).entries()) {
    const where = `line ${n + 1}: ${line.slice(0, 120)}`;
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
      if (!m) continue; // other comments are allowed
      const [, kind, name, rest] = m;
      if (!NAME.test(name!)) throw new Error(`bad metric name: ${where}`);
      const f = families.get(name!) ?? { type: 'untyped', help: '', samples: [] };
      if (kind === 'TYPE') {
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest!)) throw new Error(`bad type: ${where}`);
        if (f.samples.length > 0) throw new Error(`TYPE after samples: ${where}`);
        f.type = rest!;
      } else f.help = rest!;
      families.set(name!, f);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(line);
    if (!m) throw new Error(`bad sample: ${where}`);
    const [, name, , labelText, valueText] = m;
    const labels: Record<string, string> = {};
    let rest = labelText ?? '';
    while (rest.length > 0) {
      const lm = /^([^=]+)="((?:[^"\\\n]|\\["\\n])*)"(,|$)/.exec(rest);
      if (!lm || !LABEL.test(lm[1]!)) throw new Error(`bad labels: ${where}`);
      if (lm[1]! in labels) throw new Error(`duplicate label: ${where}`);
      labels[lm[1]!] = lm[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
      rest = rest.slice(lm[0].length);
    }
    const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : valueText === 'NaN' ? NaN : Number(valueText);
    if (valueText !== 'NaN' && Number.isNaN(value)) throw new Error(`bad value: ${where}`);
    const f = familyOf(name!);
    if (!f) throw new Error(`sample without a TYPE: ${where}`);
    f.samples.push({ name: name!, labels, value });
  }
  for (const [name, f] of families) {
    if (f.type !== 'histogram') continue;
    const buckets = f.samples.filter((s) => s.name === `${name}_bucket`);
    if (buckets.length === 0) continue; // no observations of any label set yet
    if (!buckets.every((b) => 'le' in b.labels)) throw new Error(`${name}: bucket without le`);
    if (!buckets.some((b) => b.labels.le === '+Inf')) throw new Error(`${name}: no +Inf bucket`);
    if (!f.samples.some((s) => s.name === `${name}_sum`) || !f.samples.some((s) => s.name === `${name}_count`)) throw new Error(`${name}: no _sum/_count`);
  }
  return families;
}

beforeAll(async () => {
  stack = await startStack('control_http', { agents: [echo] });
  ({ nats, rt } = stack);
  ui = tempDir('agentry-ui-');
  mkdirSync(join(ui.dir, 'assets'));
  writeFileSync(join(ui.dir, 'index.html'), '<!doctype html><title>inspector</title><script src="/assets/app.js"></script>');
  writeFileSync(join(ui.dir, 'assets', 'app.js'), 'console.log("inspector")');
  cp = await startControlPlane(rt, { port: 0, metricsRefreshMs: 200, staticDir: ui.dir });
});

afterAll(async () => {
  await cp?.close();
  await stack?.stop();
  ui?.cleanup();
});

describe('/metrics', () => {
  it('parses as Prometheus text and reports sessions, the host and the API, without session ids', async () => {
    const c = await RawRpc.open(cp.rpcUrl);
    await c.ok('createAgent', { agentId: 'metrics-secret-session-1', type: 'echo' });
    await c.ok('createAgent', { agentId: 'metrics-secret-session-2', type: 'echo' });
    await c.ok('stopAgent', { agentId: 'metrics-secret-session-2' });
    await c.ok('sendMessage', { agentId: 'metrics-secret-session-1', message: 'hi' });
    for (let i = 0; i < 5; i++) await c.ok('ping');
    await c.err('getAgent', { agentId: 'metrics-secret-session-3' });
    await c.err('noSuchMethod-metrics-secret-session');
    await waitFor(async () => (await rt.getAgent('metrics-secret-session-1')).lastSeq > 0, 'message handled');
    await c.ok('createAgent', { agentId: 'metrics-secret-session-4', type: 'echo' });
    await c.ok('sleepAgent', { agentId: 'metrics-secret-session-4', durationMs: 100 });
    await waitFor(async () => (await rt.getAgent('metrics-secret-session-4')).state === 'idle', 'timed wake');

    const text = await waitFor(async () => {
      const t = await (await fetch(`${cp.url}/metrics`)).text();
      return /agentry_sessions\{state="stopped"\} 1/.test(t) && /agentry_sessions\{state="idle"\} 2/.test(t) ? t : null;
    }, 'store counts refreshed');
    const res = await fetch(`${cp.url}/metrics`);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const fams = parsePrometheus(text);
    const value = (name: string, labels: Record<string, string> = {}): number | undefined => {
      for (const f of fams.values()) {
        const s = f.samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
        if (s) return s.value;
      }
      return undefined;
    };
    expect(fams.get('agentry_sessions')?.type).toBe('gauge');
    expect(value('agentry_sessions', { state: 'idle' })).toBe(2);
    expect(value('agentry_sessions', { state: 'stopped' })).toBe(1);
    expect(value('agentry_sessions_live')).toBeGreaterThanOrEqual(1);
    expect(value('agentry_sessions_running')).toBe(0);
    expect(value('agentry_handler_runs_total')).toBeGreaterThanOrEqual(1);
    expect(value('agentry_commits_total')).toBeGreaterThanOrEqual(3);
    expect(value('agentry_activation_duration_seconds_count')).toBeGreaterThanOrEqual(1);
    // The timed wake above fired: the gauge reports the scheduler's own record of it (seconds).
    const lateness = rt.wakeups.scheduler.lateness.slice(-1000);
    expect(lateness.length).toBeGreaterThanOrEqual(1);
    expect(value('agentry_wake_lateness_seconds', { quantile: 'max' })).toBe(Math.max(...lateness) / 1000);
    expect(value('agentry_rpc_requests_total', { method: 'ping', outcome: 'ok' })).toBe(5);
    expect(value('agentry_rpc_requests_total', { method: 'getAgent', outcome: 'error' })).toBe(1);
    expect(value('agentry_rpc_requests_total', { method: '_unknown', outcome: 'error' })).toBe(1);
    expect(value('agentry_rpc_errors_total', { type: 'UNKNOWN_SESSION' })).toBe(1);
    expect(value('agentry_rpc_request_duration_seconds_count', { method: 'ping' })).toBe(5);
    expect(value('agentry_ws_connections')).toBe(1);
    expect(value('agentry_ready', { check: 'all' })).toBe(1);
    expect(value('agentry_ready', { check: 'nats' })).toBe(1);
    expect(value('agentry_node_info', { node: rt.config.nodeId, version: packageVersion()! })).toBe(1);
    expect(fams.get('agentry_node_info')?.samples).toHaveLength(1);
    expect(value('agentry_partitions_owned')).toBe(rt.config.partitions); // one node owns them all
    expect(value('agentry_lease_renewal_age_seconds')).toBeLessThan(rt.config.leaseTtlMs / 1000);
    // Postgres on this host: its clock is this process's, the offset a round trip at most (runtime/storeClock.ts).
    expect(Math.abs(value('agentry_clock_offset_seconds')!)).toBeLessThan(1);
    expect(value('agentry_clock_sync_age_seconds')).toBeGreaterThanOrEqual(0);
    expect(value('agentry_consumer_restarts_total')).toBe(0); // nothing broke order here
    expect(value('agentry_inbox_ack_pending', { partition: '0' })).toBeDefined(); // found under the per-epoch consumer name
    expect(fams.has('process_cpu_user_seconds_total') || fams.has('process_cpu_user_seconds')).toBe(true);
    // Inbox backlog per partition (bounded label: the partition number).
    const pending = fams.get('agentry_inbox_pending')!;
    expect(pending.samples.map((s) => s.labels.partition).sort()).toEqual(Array.from({ length: 8 }, (_, i) => String(i)).sort());
    // No session id ever becomes a label (nor appears anywhere).
    expect(text).not.toContain('metrics-secret-session');
    c.close();
  });
});

describe('/readyz', () => {
  it('turns 503 when NATS stops and 200 again when it is back', async () => {
    const ready = async (): Promise<{ status: number; body: { ok: boolean; checks: Record<string, boolean> } }> => {
      const r = await fetch(`${cp.url}/readyz`);
      return { status: r.status, body: await r.json() as { ok: boolean; checks: Record<string, boolean> } };
    };
    expect(await ready()).toEqual({ status: 200, body: { ok: true, checks: { nats: true, store: true, migrations: true, streams: true } } });
    await nats.stop();
    const down = await waitFor(async () => { const r = await ready(); return r.status === 503 ? r : null; }, '/readyz 503', 60_000);
    expect(down.body).toMatchObject({ ok: false, checks: { nats: false, store: true } });
    expect((await fetch(`${cp.url}/healthz`)).status).toBe(200); // alive, just not ready
    await nats.restart();
    const up = await waitFor(async () => { const r = await ready(); return r.status === 200 ? r : null; }, '/readyz 200 again', 60_000);
    expect(up.body.ok).toBe(true);
  }, 180_000);
});

describe('other endpoints', () => {
  it('/openrpc.json describes every method with its params and result', async () => {
    const doc = await (await fetch(`${cp.url}/openrpc.json`)).json() as { openrpc: string; methods: { name: string; params: { name: string; schema: unknown }[]; result: { schema: unknown }; errors: { code: number; message: string }[] }[] };
    expect(doc.openrpc).toBe('1.2.6');
    expect(doc.methods.map((m) => m.name)).toEqual(METHOD_NAMES);
    const create = doc.methods.find((m) => m.name === 'createAgent')!;
    expect(create.params.map((p) => p.name)).toEqual(['agentId', 'type', 'config', 'state', 'policy', 'tenant', 'tags']);
    expect(create.errors.map((e) => e.message)).toContain('SESSION_EXISTS');
    expect(doc.methods.find((m) => m.name === 'wakeAgent')!.errors).toContainEqual({ code: 4010, message: 'INVALID_TRANSITION' });
    for (const m of doc.methods) expect(m.result.schema, m.name).toBeTypeOf('object');
  });

  it('answers the HTTP edge cases plainly', async () => {
    expect((await fetch(`${cp.url}/rpc`)).status).toBe(426);
    expect((await fetch(`${cp.url}/healthz`, { method: 'POST' })).status).toBe(405);
    expect((await fetch(`${cp.url}/nope.js`)).status).toBe(404);
    const spa = await fetch(`${cp.url}/sessions/abc`); // client-side route of the UI
    expect(spa.status).toBe(200);
    expect(await spa.text()).toContain('<title>inspector</title>');
    const js = await fetch(`${cp.url}/assets/app.js`);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    // Served from memory: the files read at start, not the disk now.
    rmSync(join(ui.dir, 'assets', 'app.js'));
    expect(await (await fetch(`${cp.url}/assets/app.js`)).text()).toBe('console.log("inspector")');
    expect((await fetch(`${cp.url}/assets/../../package.json`)).status).toBe(404);
    expect(spa.headers.get('content-security-policy')).toContain("default-src 'self'");
    const etag = spa.headers.get('etag')!;
    expect((await fetch(`${cp.url}/`, { headers: { 'If-None-Match': etag } })).status).toBe(304);
  });
});
