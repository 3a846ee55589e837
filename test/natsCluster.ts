// Owns a test's 3-server nats-server cluster on loopback: each server on free client and route
// ports, JetStream with a store of its own, a `server_name`, one `cluster { name, listen, routes }`
// block naming all three, and the project's nats.conf (mappings with the partition count
// substituted, as ops/natsServer.ts does for one server), all three the same binary
// (`AGENTRY_TEST_NATS_SERVER`, else PATH: test/helpers.ts `testNatsServerBinary`). Each server is an ordinary
// `startNatsServer` handle, so a test can `kill()` (SIGKILL) one and `restart()` it on the same
// ports and store.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { freePort, projectRoot, startNatsServer, type NatsServerHandle } from '../ops/natsServer.js';
import { tempDir, testNatsServerBinary } from './helpers.js';

/** One server of the cluster. */
export interface ClusterServer extends NatsServerHandle {
  /** Its `server_name` (what JetStream's cluster info calls it: `leader`, `replicas[].name`). */
  readonly name: string;
}

export interface NatsCluster {
  readonly servers: readonly ClusterServer[];
  /** Every server's client URL, comma-separated (what NATS_URL takes). */
  readonly urls: string;
  /** The server called `name`. */
  byName(name: string): ClusterServer;
  /** Stops every server and removes the stores. */
  cleanup(): Promise<void>;
}

/**
 * Starts `size` (default 3) clustered nats-servers and resolves once JetStream can place a
 * stream on all of them: before that, stream creates fail ("JetStream cluster not available",
 * then "no suitable peers for placement"). Waits up to `readyMs` (default 60 s: the machine is shared).
 */
export async function startNatsCluster(opts: { partitions?: number; size?: number; readyMs?: number } = {}): Promise<NatsCluster> {
  const size = opts.size ?? 3;
  // AGENTRY_TEST_NATS_SERVER, or PATH: the same for every server of the cluster.
  const binary = testNatsServerBinary();
  const t = tempDir('agentry-natscluster-');
  const clientPorts: number[] = [];
  const routePorts: number[] = [];
  for (let i = 0; i < size; i++) { clientPorts.push(await freePort()); routePorts.push(await freePort()); }
  const base = readFileSync(join(projectRoot(), 'nats.conf'), 'utf8');
  const routes = routePorts.map((p) => `nats-route://127.0.0.1:${p}`).join(', ');
  const servers: ClusterServer[] = [];
  try {
    for (let i = 0; i < size; i++) {
      const name = `n${i + 1}`;
      const dir = join(t.dir, name);
      mkdirSync(dir, { recursive: true });
      const template = join(dir, 'cluster-template.conf');
      writeFileSync(template, `${base}\nserver_name: ${name}\ncluster {\n  name: agentry-test\n  listen: 127.0.0.1:${routePorts[i]}\n  routes: [${routes}]\n}\n`);
      // The template is materialized into <dir>/nats.conf with the partition count.
      const srv = await startNatsServer({ port: clientPorts[i]!, storeDir: join(dir, 'js'), partitions: opts.partitions ?? 8, configPath: template, binary });
      servers.push(Object.assign(srv, { name }));
    }
    const urls = servers.map((s) => s.url).join(',');
    await waitForPlacement(urls, size, opts.readyMs ?? 60_000);
    return {
      servers, urls,
      byName(n) {
        const s = servers.find((x) => x.name === n);
        if (!s) throw new Error(`no server ${n} in the cluster`);
        return s;
      },
      async cleanup() {
        await Promise.all(servers.map((s) => s.stop()));
        t.cleanup();
      },
    };
  } catch (e) {
    await Promise.all(servers.map((s) => s.stop()));
    t.cleanup();
    throw e;
  }
}

/**
 * Resolves once the cluster can place a stream on all `size` servers (a probe stream made and
 * removed): a meta leader answers before it knows every peer, and a stream create meanwhile is
 * refused with "no suitable peers for placement".
 */
async function waitForPlacement(urls: string, size: number, timeoutMs: number): Promise<void> {
  const nc = await connect({ servers: urls.split(',') });
  try {
    const jsm = await jetstreamManager(nc, { timeout: 5_000, checkAPI: false });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await jsm.streams.add({ name: '_cluster_probe', subjects: ['_cluster_probe'], num_replicas: size });
        await jsm.streams.delete('_cluster_probe');
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`the NATS cluster cannot place a stream on ${size} servers after ${timeoutMs} ms: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    await nc.close();
  }
}
