/* eslint-disable @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-argument -- the raw client deals in untyped JSON on purpose: it must not share the server's types */
// Issue 14, the cluster view where an operator looks: the control API's listNodes and
// getPartitions over a real WebSocket, and `agentry nodes` / `agentry partitions` as a user runs
// them (`node dist/runtime/cli.js`), against two runtimes on one nats-server and one Postgres
// schema. Also a "node" that reports nothing about itself (a heartbeat without version or
// sessions, as a node of another version might write): the view shows its fields as unknown,
// and since it counts as live the two real nodes hold a smaller share each, leaving partitions
// free — shown as free. Finally NATS stops: both answer NOT_READY (retryable), the CLI exits 2.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineAgent } from '../../actors/index.js';
import { methods } from '../../client/index.js';
import { openStore } from '../../persistence/index.js';
import type { Store } from '../../persistence/types.js';
import { packageVersion } from '../../runtime/cluster.js';
import { partitionOf, startControlPlane, type ControlPlane, type Runtime } from '../../runtime/index.js';
import { PG_URL, dropSchema, natsClient, publish, schemaName, startNats, startRuntime, tempDir, waitFor } from '../helpers.js';
import { assertDistFresh } from '../builtFresh.js';
import { RawRpc } from './rawRpc.js';

const PARTS = 8;
const TTL = 4000;
const TOKEN = `cluster-${Math.random().toString(36).slice(2)}`;
const CLI = join(process.cwd(), 'dist', 'runtime', 'cli.js');
const idle = defineAgent({ type: 'idle', initialState: () => ({}), handle: () => undefined });

let nats: Awaited<ReturnType<typeof startNats>>;
let nc: NatsConnection;
let schema: string;
let store: Store;
let a: Runtime;
let b: Runtime;
let cpA: ControlPlane;
let cpB: ControlPlane;
let rpcA: RawRpc;
let rpcB: RawRpc;
let data: ReturnType<typeof tempDir>;

/**
 * A result, or null for a NOT_READY answer (a lease read that timed out on a loaded box: the
 * view is refused rather than partial), so a poll tries again; any other error fails the test.
 */
async function okOrNull(rpc: RawRpc, method: string): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const r = await rpc.call(method, {});
  if (r.error && (r.error as { code?: number }).code === 5003) return null;
  if (r.error) throw new Error(`${method} failed: ${JSON.stringify(r.error)}`);
  return r.result;
}

/** Asserts a result matches the method's published result schema. */
function conforms(method: keyof typeof methods, result: unknown): void {
  const r = methods[method].result.safeParse(result);
  expect(r.success, `${method} result ${JSON.stringify(result)?.slice(0, 300)} vs schema: ${r.error?.message ?? ''}`).toBe(true);
}

/** Runs one CLI command against node-a's control plane. */
function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env, AGENTRY_URL: cpA.rpcUrl, AGENTRY_TOKEN: TOKEN, AGENTRY_DATA_DIR: data.dir, AGENTRY_LOG_LEVEL: 'silent' };
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** The rows of a CLI table (header and summary line dropped), cut at the header's column starts. */
function rows(stdout: string): string[][] {
  const lines = stdout.trimEnd().split('\n');
  const starts = [...lines[0]!.matchAll(/\S+(?: \S+)*/g)].map((m) => m.index);
  return lines.slice(1, -1).map((l) => starts.map((st, i) => l.slice(st, starts[i + 1]).trim()));
}

/** Partitions per owner (null: free), from a getPartitions result. */
function owners(parts: { nodeId: string | null }[]): Map<string | null, number> {
  const m = new Map<string | null, number>();
  for (const p of parts) m.set(p.nodeId, (m.get(p.nodeId) ?? 0) + 1);
  return m;
}

beforeAll(async () => {
  assertDistFresh('dist/runtime/cli.js', ['client', join('runtime', 'cli'), join('runtime', 'http'), join('runtime', 'cli.ts'), join('runtime', 'cluster.ts')]);
  data = tempDir('agentry-cluster-cli-');
  nats = await startNats(PARTS);
  nc = await natsClient(nats.url);
  schema = schemaName('control_cluster');
  store = openStore({ databaseUrl: PG_URL, schema });
  const config = { leaseTtlMs: TTL, defaultAgentType: 'idle', store: 'auto' as const };
  a = await startRuntime(nats.url, { agents: [idle], store, partitions: PARTS, config: { ...config, nodeId: 'node-a' } });
  b = await startRuntime(nats.url, { agents: [idle], store, partitions: PARTS, config: { ...config, nodeId: 'node-b' } });
  cpA = await startControlPlane(a, { port: 0, token: TOKEN });
  cpB = await startControlPlane(b, { port: 0, token: TOKEN });
  const auth = { headers: { Authorization: `Bearer ${TOKEN}` } };
  rpcA = await RawRpc.open(cpA.rpcUrl, auth);
  rpcB = await RawRpc.open(cpB.rpcUrl, auth);
}, 120_000);

afterAll(async () => {
  rpcA?.close();
  rpcB?.close();
  await cpB?.close();
  await cpA?.close();
  await b?.stop();
  await a?.stop();
  await store?.close();
  await nc?.close();
  await nats?.cleanup();
  if (schema) await dropSchema(schema);
  data?.cleanup();
});

describe('cluster view over the control API and the CLI', () => {
  it('listNodes / getPartitions: the same view from either node, agreeing with what the owners hold', async () => {
    const split = await waitFor(async () => {
      const r = await rpcA.ok('getPartitions', {});
      const o = owners(r.partitions);
      return o.get('node-a') === PARTS / 2 && o.get('node-b') === PARTS / 2 ? r : null;
    }, 'the partitions split 4/4', 60_000, 100);
    conforms('getPartitions', split);
    expect(split.leaseTtlMs).toBe(TTL);
    expect(split.partitions.map((p: { partition: number }) => p.partition)).toEqual([...Array(PARTS).keys()]);
    for (const p of split.partitions) {
      const owner = p.nodeId === 'node-a' ? a : b;
      expect(owner.leases.owns(p.partition)).toBe(true);
      expect(p.epoch).toBe(owner.leases.epochOf(p.partition)); // the epoch its commits carry
      expect(p.renewalAgeMs).toBeGreaterThanOrEqual(0);
    }
    const fromB = await rpcB.ok('async.getPartitions', {});
    expect(fromB.partitions.map((p: { partition: number; nodeId: string; epoch: number }) => [p.partition, p.nodeId, p.epoch]))
      .toEqual(split.partitions.map((p: { partition: number; nodeId: string; epoch: number }) => [p.partition, p.nodeId, p.epoch]));

    // A session on b: b reports it live in its next heartbeat, and either node says so.
    const sid = Array.from({ length: 200 }, (_, i) => `cl-${i}`).find((s) => split.partitions[partitionOf(s, PARTS)].nodeId === 'node-b')!;
    await publish(nc, sid, { text: 'hello' });
    const nodes = await waitFor(async () => {
      const r = await rpcA.ok('listNodes', {});
      return r.nodes.length === 2 && (r.nodes.find((n: { nodeId: string }) => n.nodeId === 'node-b')?.liveSessions ?? 0) >= 1 ? r : null;
    }, "b's live session in the view", 60_000, 100);
    conforms('listNodes', nodes);
    expect(nodes.leaseTtlMs).toBe(TTL);
    expect(nodes.nodes.map((n: { nodeId: string; self: boolean }) => [n.nodeId, n.self])).toEqual([['node-a', true], ['node-b', false]]);
    for (const n of nodes.nodes) {
      expect(n.version).toBe(packageVersion());
      expect(n.uptimeMs).toBeGreaterThanOrEqual(0);
      expect(n.startedAt).toBeLessThanOrEqual(Date.now());
      expect(n.heartbeatAgeMs).toBeGreaterThanOrEqual(0);
      expect(n.leaseRenewalAgeMs).toBeGreaterThanOrEqual(0);
      expect(n.activeSessions).toBeGreaterThanOrEqual(0);
      expect([...n.partitions].sort((x: number, y: number) => x - y)).toEqual((n.nodeId === 'node-a' ? a : b).leases.owned());
    }
    const selfB = await rpcB.ok('listNodes', {});
    expect(selfB.nodes.map((n: { nodeId: string; self: boolean }) => [n.nodeId, n.self])).toEqual([['node-a', false], ['node-b', true]]);

    // Params are strict, as everywhere; the OpenRPC document lists both with their error.
    expect(await rpcA.err('listNodes', { node: 'x' })).toMatchObject({ code: -32602, data: { type: 'INVALID_PARAMS' } });
    expect(await rpcA.err('getPartitions', { nodeId: 'node-a' })).toMatchObject({ code: -32602 });
    const doc = await rpcA.ok('rpc.discover');
    for (const name of ['listNodes', 'getPartitions']) {
      expect(doc.methods.find((m: { name: string }) => m.name === name)?.errors).toEqual([{ code: 5003, message: 'NOT_READY' }]);
    }
  });

  it('agentry nodes / agentry partitions: tables, --json, --node, and a usage error', async () => {
    const nodes = await cli('nodes');
    expect(nodes).toMatchObject({ code: 0, stderr: '' });
    const header = nodes.stdout.split('\n')[0]!;
    expect(header.split(/ {2,}/)).toEqual(['NODE', 'SELF', 'VERSION', 'UPTIME', 'PARTS', 'PARTITIONS', 'LIVE', 'ACTIVE', 'HEARTBEAT', 'LEASE LAG']);
    const table = rows(nodes.stdout);
    expect(table.map((r) => r.slice(0, 3))).toEqual([['node-a', '*', packageVersion()], ['node-b', '', packageVersion()]]);
    const aRow = table[0]!;
    expect(aRow[3]).toMatch(/^\d/); // uptime
    expect(aRow[4]).toBe(String(a.leases.owned().length));
    expect(nodes.stdout.trimEnd().split('\n').at(-1)).toBe(`2 node(s), ${PARTS} partition(s) owned; lease TTL 4.0s`);

    const json = await cli('nodes', '--json');
    expect(json.code).toBe(0);
    const parsed = JSON.parse(json.stdout);
    conforms('listNodes', parsed);
    expect(parsed.nodes.map((n: { nodeId: string }) => n.nodeId)).toEqual(['node-a', 'node-b']);

    const parts = await cli('partitions');
    expect(parts.code).toBe(0);
    const prow = rows(parts.stdout);
    expect(prow.map((r) => Number(r[0]))).toEqual([...Array(PARTS).keys()]);
    for (const [p, owner, epoch, renewed] of prow) {
      const rt = owner === 'node-a' ? a : b;
      expect(owner === 'node-a' || owner === 'node-b', `partition ${p} owner ${owner}`).toBe(true);
      expect(Number(epoch)).toBe(rt.leases.epochOf(Number(p)));
      expect(renewed).toMatch(/ ago$/);
    }
    expect(parts.stdout.trimEnd().split('\n').at(-1)).toBe(`${PARTS} partition(s): ${PARTS} owned by 2 node(s), 0 free`);

    const onlyB = await cli('partitions', '--node', 'node-b', '--json');
    expect(onlyB.code).toBe(0);
    const bParts = JSON.parse(onlyB.stdout);
    conforms('getPartitions', bParts);
    expect(bParts.partitions.map((p: { partition: number }) => p.partition)).toEqual(b.leases.owned());
    const nobody = await cli('partitions', '--node', 'node-z');
    expect(nobody.code).toBe(0);
    expect(nobody.stdout.trimEnd().split('\n')).toEqual(['PARTITION  OWNER  EPOCH  RENEWED', 'node node-z owns no partition']);
    expect((await cli('partitions', '--nodes', 'x')).code).toBe(1); // unknown option
  });

  it('a node that reports nothing about itself, and free partitions, read as such', async () => {
    // A third live heartbeat, with no version or session counts: the two real nodes' share
    // drops to ceil(8 / 3) = 3 each, so two partitions stay free while it lives.
    const kv = await new Kvm(nc).open(`${a.config.streamPrefix}_LEASES`);
    const beat = (): Promise<number> => kv.put('node.ghost', JSON.stringify({ node: 'ghost', at: Date.now() }));
    await beat();
    const timer = setInterval(() => { void beat(); }, 250);
    try {
      const view = await waitFor(async () => {
        const r = await okOrNull(rpcB, 'getPartitions');
        if (!r) return null;
        const o = owners(r.partitions);
        return o.get('node-a') === 3 && o.get('node-b') === 3 && o.get(null) === 2 ? r : null;
      }, 'a 3/3/2-free split', 60_000, 100);
      conforms('getPartitions', view);
      const free = view.partitions.filter((p: { nodeId: string | null }) => p.nodeId === null);
      expect(free.map((p: unknown) => ({ ...(p as object) }))).toEqual(free.map((p: { partition: number }) => ({ partition: p.partition, nodeId: null, epoch: null, renewalAgeMs: null })));

      const nodes = await rpcA.ok('listNodes', {});
      conforms('listNodes', nodes);
      const ghost = nodes.nodes.find((n: { nodeId: string }) => n.nodeId === 'ghost');
      expect(ghost).toMatchObject({ self: false, version: null, startedAt: null, uptimeMs: null, partitions: [], liveSessions: null, activeSessions: null, leaseRenewalAgeMs: null });

      const table = await cli('nodes');
      expect(table.code).toBe(0);
      expect(rows(table.stdout).find((r) => r[0] === 'ghost')).toEqual(['ghost', '', '-', '-', '0', '-', '-', '-', expect.stringMatching(/^\d/), '-']);
      const parts = await cli('partitions');
      expect(parts.code).toBe(0);
      const freeRows = rows(parts.stdout).filter((r) => r[1] === '(free)');
      expect(freeRows.map((r) => Number(r[0]))).toEqual(free.map((p: { partition: number }) => p.partition));
      for (const r of freeRows) expect(r.slice(2)).toEqual(['-', '-']);
      expect(parts.stdout.trimEnd().split('\n').at(-1)).toBe(`${PARTS} partition(s): 6 owned by 2 node(s), 2 free`);
    } finally {
      clearInterval(timer);
      await kv.delete('node.ghost');
    }
    // Gone: the two take the free partitions back.
    await waitFor(async () => {
      const r = await okOrNull(rpcA, 'getPartitions');
      if (!r) return null;
      const o = owners(r.partitions);
      return o.get('node-a') === PARTS / 2 && o.get('node-b') === PARTS / 2;
    }, 'the 4/4 split again', 60_000, 100);
    expect((await rpcA.ok('listNodes', {})).nodes.map((n: { nodeId: string }) => n.nodeId)).toEqual(['node-a', 'node-b']);
  });

  it('NATS down: NOT_READY, retryable, from both methods; the CLI exits 2 with the code', async () => {
    await nats.stop();
    try {
      for (const m of ['listNodes', 'getPartitions']) {
        const e = await rpcA.err(m, {});
        expect(e, m).toMatchObject({ code: 5003, data: { type: 'NOT_READY', retryable: true } });
        expect(e.message).toMatch(/lease bucket/);
      }
      const r = await cli('nodes');
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('[NOT_READY]');
      const j = await cli('partitions', '--json');
      expect(j.code).toBe(2);
      expect(JSON.parse(j.stderr).error).toMatchObject({ type: 'NOT_READY', retryable: true });
    } finally {
      await nats.restart();
    }
    // Back: the view answers again.
    await waitFor(async () => (await rpcA.call('listNodes', {})).result?.nodes?.length >= 1, 'listNodes after NATS is back', 60_000, 200);
  }, 180_000);
});
