// The cluster view (issue 14): any node answers listNodes / getPartitions for the whole cluster
// from the lease bucket — every live node with its version, uptime, sessions and the partitions
// its leases name; every partition with its owner and fencing epoch (the one its owner commits
// under). A node that leaves disappears from the view and its partitions move. The view comes
// from each node's watch-fed mirror of the lease bucket and agrees with a key-by-key read. Two
// runtimes on one nats-server and one Postgres schema.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { defineAgent } from '../../actors/index.js';
import { openStore } from '../../persistence/index.js';
import type { Store } from '../../persistence/types.js';
import { packageVersion } from '../../runtime/cluster.js';
import { partitionOf, type Runtime } from '../../runtime/index.js';
import { PG_URL, dropSchema, natsClient, publish, schemaName, startNats, startRuntime, waitFor } from '../helpers.js';

const PARTS = 8;
const idle = defineAgent({ type: 'idle', initialState: () => ({}), handle: () => undefined });
let nats: Awaited<ReturnType<typeof startNats>>;
let nc: NatsConnection;
let schema: string;
let store: Store;
let a: Runtime;
let b: Runtime | undefined;

beforeAll(async () => {
  nats = await startNats(PARTS);
  nc = await natsClient(nats.url);
  schema = schemaName('cluster_view');
  store = openStore({ databaseUrl: PG_URL, schema });
  const config = { leaseTtlMs: 2000, defaultAgentType: 'idle', store: 'auto' as const };
  a = await startRuntime(nats.url, { agents: [idle], store, partitions: PARTS, config: { ...config, nodeId: 'node-a' } });
  b = await startRuntime(nats.url, { agents: [idle], store, partitions: PARTS, config: { ...config, nodeId: 'node-b' } });
});

afterAll(async () => {
  await b?.stop();
  await a?.stop();
  await store?.close();
  await nc?.close();
  await nats?.cleanup();
  await dropSchema(schema);
});

describe('cluster view', () => {
  it('every node and partition, from any node, agreeing with what the owners hold', async () => {
    // Wait until the two have split the partitions (b took its share from a).
    const parts = await waitFor(async () => {
      const p = await a.getPartitions();
      return p.every((x) => x.nodeId !== null) && p.filter((x) => x.nodeId === 'node-b').length === PARTS / 2 ? p : null;
    }, 'the partitions split 4/4', 60_000, 100);
    expect(parts.map((p) => p.partition)).toEqual([...Array(PARTS).keys()]);
    for (const p of parts) {
      const owner = p.nodeId === 'node-a' ? a : b!;
      expect(owner.leases.owns(p.partition)).toBe(true);
      expect(p.epoch).toBe(owner.leases.epochOf(p.partition));
      expect(p.renewalAgeMs).toBeGreaterThanOrEqual(0);
    }
    expect(await b!.getPartitions()).toEqual(parts.map((p) => ({ ...p, renewalAgeMs: expect.any(Number) as unknown })));
    // Answered from the watch's mirror of the lease bucket, not key by key; the same as a read.
    const reads = a.leases.viewReads;
    const mirrored = await a.leases.clusterView();
    expect(a.leases.viewReads).toBe(reads);
    const read = await a.leases.clusterView({ read: true });
    expect(a.leases.viewReads).toBeGreaterThan(reads);
    const owners = (v: typeof read): unknown[] => v.partitions.map((p) => [p.partition, p.nodeId, p.epoch]);
    expect(owners(mirrored)).toEqual(owners(read));
    expect(mirrored.nodes.map((n) => n.nodeId)).toEqual(read.nodes.map((n) => n.nodeId));

    // A session on b's side: b reports it live in its next heartbeat.
    const sid = Array.from({ length: 200 }, (_, i) => `cv-${i}`).find((s) => parts[partitionOf(s, PARTS)]!.nodeId === 'node-b')!;
    await publish(nc, sid, { text: 'hello' });
    const nodes = await waitFor(async () => {
      const n = await a.listNodes();
      return n.length === 2 && (n.find((x) => x.nodeId === 'node-b')?.liveSessions ?? 0) >= 1 ? n : null;
    }, 'b to report its live session', 60_000, 100);
    expect(nodes.map((n) => [n.nodeId, n.self])).toEqual([['node-a', true], ['node-b', false]]);
    for (const n of nodes) {
      expect(n.version).toBe(packageVersion());
      expect(n.version).toMatch(/^\d+\.\d+\.\d+/);
      expect(n.uptimeMs).toBeGreaterThanOrEqual(0);
      expect(n.heartbeatAgeMs).toBeGreaterThanOrEqual(0);
      expect(n.leaseRenewalAgeMs).toBeGreaterThanOrEqual(0);
      expect(n.activeSessions).toBeGreaterThanOrEqual(0);
      expect(Math.abs(n.clockOffsetMs!)).toBeLessThan(1000); // Postgres on this host: a round trip at most
      expect([...n.partitions].sort((x, y) => x - y)).toEqual((n.nodeId === 'node-a' ? a : b!).leases.owned());
    }
  });

  it('a node that leaves is gone from the view and its partitions are the others\'', async () => {
    await b!.stop();
    b = undefined;
    const nodes = await waitFor(async () => {
      const n = await a.listNodes();
      return n.length === 1 && n[0]!.partitions.length === PARTS ? n : null;
    }, 'a alone with every partition', 60_000, 100);
    expect(nodes[0]!.nodeId).toBe('node-a');
    expect((await a.getPartitions()).every((p) => p.nodeId === 'node-a')).toBe(true);
  });
});
