// The runtime on a 3-server NATS cluster with its streams replicated (natsReplicas 3), and the
// server that leads the inbox stream — the worst one to lose — killed with SIGKILL under load,
// then started again. Producers connected to all three servers publish in order per session,
// each message retried with its Nats-Msg-Id until acknowledged. Every acknowledged message must
// be applied exactly once and in order, and the node must become ready again, with no restart.
// Real nats-server cluster (test/natsCluster.ts) and Postgres; no wall-clock thresholds: the
// times measured are printed, not asserted.
//
// Its result depends on the nats-server (AGENTRY_TEST_NATS_SERVER picks one, docs/testing.md; the
// runs per version are in docs/operations.md, "A NATS cluster"). On 2.9.10 it fails now and then
// for the server's faults, fixed in 2.10 (the node warns of them, NATS_SERVER_CLUSTER_FAULTS): a
// partition whose consumer cannot be created again ("filtered consumer not unique on workqueue
// stream" with no such consumer listed; test/ops/natsWqGhost.test.ts reproduces it without the
// runtime), and runs of acknowledged messages never delivered. On 2.10.29 and 2.11.8 nothing
// acknowledged was lost; 2.11.8 once left the inbox with no leader (both followers had reset their
// copies), which the test reports as a cluster that did not recover, after checking every
// acknowledged message anyway. On a loss it prints the session, the partition's consumers and the
// JetStream advisories.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { defineAgent } from '../../actors/index.js';
import { openStore } from '../../persistence/index.js';
import type { Store } from '../../persistence/types.js';
import type { Runtime } from '../../runtime/index.js';
import { clusterLosesAckedMessages } from '../../runtime/natsVersion.js';
import { partitionOf } from '../../runtime/partition.js';
import { consumerNames } from '../../runtime/partitionFeed.js';
import { Load } from '../chaos/load.js';
import { PG_URL, dropSchema, schemaName, sleep, startNats, startRuntime, waitFor } from '../helpers.js';
import { startNatsCluster, type NatsCluster } from '../natsCluster.js';

const recorder = defineAgent({
  type: 'cl-recorder',
  onMessage: 'queue',
  initialState: () => ({ seen: [] as number[] }),
  handle(batch, ctx) {
    for (const m of batch) ctx.state.seen.push((m.body as { i: number }).i);
  },
});

const SESSIONS = 30;
const MESSAGES = 60;
const PARTITIONS = 8;
/** The production default: a lease-bucket leader election can outlast it (then every lease is taken again). */
const LEASE_TTL_MS = 6_000;

/** Partition leases this node lost (its log says so): counted, not asserted — losing one is safe, only slower. */
let leaseLosses = 0;
const advisories: string[] = [];
const logger = pino({ level: 'warn' }, {
  write(line: string) {
    if (line.includes('"partition lease lost"')) leaseLosses++;
    if (process.env.TEST_LOG_LEVEL) process.stdout.write(line);
  },
});

// Opt-in (AGENTRY_CLUSTER_TESTS=1): CI has Debian's nats-server 2.9.10, on which it fails often
// enough for the server's faults (above) to fail CI for the server's sake; `AGENTRY_CLUSTER_TESTS=1
// npx vitest run test/durability/natsClusterLoss.test.ts` runs it, with AGENTRY_TEST_NATS_SERVER
// for another server.
describe.runIf(process.env.AGENTRY_CLUSTER_TESTS === '1')('a NATS cluster losing one server under load', () => {
  let cluster: NatsCluster;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let quickJsm: JetStreamManager;
  let store: Store;
  const schema = schemaName('natscl');
  let rt: Runtime | undefined;
  let load: Load | undefined;
  let watch: ReturnType<typeof setInterval> | undefined;

  beforeAll(async () => {
    cluster = await startNatsCluster({ partitions: PARTITIONS });
    nc = await connect({ servers: cluster.urls.split(','), maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    jsm = await jetstreamManager(nc, { timeout: 10_000 });
    // For polling a stream's leader: a request to a leader that died goes unanswered until its timeout.
    quickJsm = await jetstreamManager(nc, { timeout: 1_000 });
    // The servers' own account of what happened (leader elections, messages they dropped), printed on a failure.
    const t0 = Date.now();
    nc.subscribe('$JS.EVENT.ADVISORY.>', { callback: (_e, m) => { advisories.push(`+${Date.now() - t0}ms ${m.subject} ${m.string().slice(0, 300)}`); } });
    store = openStore({ databaseUrl: PG_URL, schema });
  }, 120_000);
  afterAll(async () => {
    clearInterval(watch);
    await load?.stop();
    await rt?.stop();
    await store?.close();
    await nc?.close();
    await cluster?.cleanup();
    await dropSchema(schema);
  }, 120_000);

  it('streams made with 1 replica are scaled to 3 at the next start: the inbox, the events, the lease bucket and their consumers', async () => {
    // As an earlier version (or natsReplicas 1) left them.
    const before = await startRuntime(cluster.urls, { agents: [recorder], store, partitions: PARTITIONS, config: { defaultAgentType: 'cl-recorder' } });
    await before.stop();
    expect((await jsm.streams.info('AGENTRY_INBOX')).config.num_replicas).toBe(1);
    rt = await startRuntime(cluster.urls, {
      agents: [recorder], store, partitions: PARTITIONS,
      // The production lease TTL: a leader election must not cost the node its partitions for long.
      logger, config: { defaultAgentType: 'cl-recorder', natsReplicas: 3, leaseTtlMs: LEASE_TTL_MS },
    });
    for (const s of ['AGENTRY_INBOX', 'AGENTRY_EVENTS', 'KV_AGENTRY_LEASES']) {
      expect((await jsm.streams.info(s)).config.num_replicas, s).toBe(3);
      // Right after the scale-up the new group may still be electing its leader.
      await waitFor(async () => {
        const c = (await jsm.streams.info(s)).cluster;
        return c?.leader && c.replicas?.length === 2;
      }, `${s}: a leader and two followers`, 60_000, 250);
    }
    // The partition consumers inherit the stream's replicas (nats-server: a work-queue stream's must).
    // Waited for: right after the scale-up a partition's consumer create may go unanswered (the
    // node lets the partition go and takes it again), and a listing may miss consumers whose
    // groups are still electing (nats-server 2.11.8: 4 of 8 listed once, 2026-11-29).
    const names = await waitFor(async () => {
      const n: string[] = [];
      for await (const ci of jsm.consumers.list('AGENTRY_INBOX')) n.push(ci.name);
      return n.length === PARTITIONS ? n : null;
    }, `${PARTITIONS} partition consumers listed`, 60_000, 250);
    for (const name of names) {
      await waitFor(async () => {
        const c = (await jsm.consumers.info('AGENTRY_INBOX', name)).cluster;
        return c?.leader && c.replicas?.length === 2;
      }, `${name}: a leader and two followers`, 60_000, 250);
    }
    // The event router's durable consumer outlived the scale-up: scaled with its stream.
    const router = await waitFor(async () => {
      const i = await jsm.consumers.info('AGENTRY_EVENTS', 'router');
      return i.cluster?.leader && i.cluster.replicas?.length === 2 ? i : null;
    }, 'the router consumer with 3 replicas', 60_000, 250);
    expect(router.config.num_replicas ?? 0).not.toBe(1);
    // A server before 2.10 is known to lose acknowledged messages in a cluster: readiness says so
    // (and stays ok); a fixed server says nothing.
    const version = rt.transport.nc.info?.version;
    const r = rt.readiness();
    expect(r.ok).toBe(true);
    expect((r.warnings ?? []).map((w) => w.code), `nats-server ${version}`).toEqual(clusterLosesAckedMessages(version) ? ['NATS_SERVER_CLUSTER_FAULTS'] : []);
  }, 120_000);

  it('the inbox leader killed mid-load, then the lease bucket leader, then the server the node is connected to; each restarted: every acknowledged message applied once, in order; ready again', async () => {
    const r = rt!;
    const sessions = Array.from({ length: SESSIONS }, (_, s) => `cl-${s}`);
    load = new Load({ url: cluster.urls, sessions, messages: MESSAGES, ratePerSec: 150, publishTimeoutMs: 5_000 });
    const total = SESSIONS * MESSAGES;
    let notReady = 0;
    let readySince: number | null = Date.now();
    watch = setInterval(() => {
      if (!r.readiness().ok) { notReady++; readySince = null; } else readySince ??= Date.now();
    }, 20);
    await load.start();
    const notes: string[] = [];
    // A wait on the cluster that timed out (no new leader, no acks, a restarted server never
    // current again) is recorded here and ends the kills, but not the test: the victim is started
    // again and the loss check below still runs, so a failure says whether anything acknowledged
    // was lost or only the cluster did not recover (nats-server 2.11.8: an inbox with no leader
    // for 5 minutes after its two followers had reset their copies; 2026-11-29).
    const clusterProblems: string[] = [];

    /** Kills `victim` with SIGKILL at `at` acks, lets `more` acks pass with it down, restarts it, waits for it to be current. */
    const killAndRestart = async (pick: () => Promise<string>, at: number, what: string, led = 'AGENTRY_INBOX'): Promise<void> => {
      if (clusterProblems.length > 0) return;
      await waitFor(() => load!.ackedCount() >= at, `${at} acknowledged`, 300_000, 50);
      const name = await pick();
      const victim = cluster.byName(name);
      const killedAt = Date.now();
      const acked = load!.ackedCount();
      const notReadyBefore = notReady;
      const lossesBefore = leaseLosses;
      await victim.kill();
      // When the stream the victim led has a leader again (polled: an upper bound).
      let electedMs: number | null = null;
      const elected = waitFor(async () => {
        const l = (await quickJsm.streams.info(led).catch(() => null))?.cluster?.leader;
        return l && l !== name ? l : null;
      }, `a new leader of ${led}`, 300_000, 100).then((l) => { electedMs = Date.now() - killedAt; return l; });
      elected.catch(() => undefined); // awaited below, or given up on with the wait that failed first
      let acksAgainMs = 0;
      let leader: string | undefined;
      let readyMs = 0;
      try {
        await waitFor(() => load!.ackedCount() >= Math.min(total, acked + 100), `publishing goes on without ${name}`, 300_000, 50);
        acksAgainMs = Date.now() - killedAt;
        leader = await elected;
        await waitFor(() => load!.ackedCount() >= Math.min(total, acked + 250), `more load without ${name}`, 300_000, 50);
        await waitFor(() => r.readiness().ok, 'ready with one server down', 300_000, 50);
        readyMs = notReady > notReadyBefore && readySince !== null ? readySince - killedAt : 0;
      } catch (err) {
        clusterProblems.push(`${what} ${name} killed: ${(err as Error).message} (${JSON.stringify(await streamSummary(quickJsm))})`);
      }
      await victim.restart();
      if (clusterProblems.length > 0) return; // no gate: the loss check is what matters now
      try {
        await waitFor(async () => {
          const info = await jsm.streams.info('AGENTRY_INBOX').catch(() => null);
          return info?.cluster?.leader && info.cluster.replicas?.length === 2 && info.cluster.replicas.every((p) => p.current);
        }, `${name} current again`, 300_000, 250);
      } catch (err) {
        clusterProblems.push(`${what} ${name} restarted: ${(err as Error).message} (${JSON.stringify(await streamSummary(quickJsm))})`);
        return;
      }
      notes.push(`${what} ${name} killed: acks again after ${acksAgainMs} ms, new ${led} leader ${leader} after ${electedMs} ms, lease losses ${leaseLosses - lossesBefore}, ready checks failed ${notReady - notReadyBefore}×, ready again ${readyMs} ms after the kill, current again ${Date.now() - killedAt} ms after`);
    };
    await killAndRestart(async () => (await jsm.streams.info('AGENTRY_INBOX')).cluster!.leader!, total / 5, 'the inbox leader');
    // The lease bucket's leader: renewals wait for a new one. With the production TTL (6 s) an
    // election on this machine outlasted it: every lease lapsed and was taken again (safe, slower).
    await killAndRestart(async () => (await jsm.streams.info('KV_AGENTRY_LEASES')).cluster!.leader!, (2 * total) / 5, 'the lease bucket leader', 'KV_AGENTRY_LEASES');
    // The data connection's server: the node's feeds lose their deliveries in flight and restart.
    await killAndRestart(() => Promise.resolve(r.transport.nc.info!.server_name), (3 * total) / 5, 'the node\'s server');

    // Every server is up again here; a cluster that still cannot take the rest in 5 minutes is a
    // problem of its own, and what was acknowledged until then is checked all the same.
    const done = await Promise.race([load.finished().then(() => true), sleep(300_000).then(() => false)]);
    if (!done) {
      clusterProblems.push(`the load did not finish within 5 minutes of the last restart (${load.ackedCount()} of ${total} acknowledged; ${JSON.stringify(await streamSummary(quickJsm))})`);
      await load.stop();
    }
    const lastAck = Date.now();
    await allApplied(r, jsm, load, 'after the kills and restarts');
    console.log(`[natsClusterLoss] nats-server ${r.transport.nc.info?.version}: ${notes.join('; ')}; publish retries ${load.retries}; all ${load.ackedCount()} acknowledged applied once, in order, ${Date.now() - lastAck} ms after the last ack; consumer restarts ${r.transport.consumerRestarts()}${clusterProblems.length > 0 ? `; CLUSTER PROBLEMS: ${clusterProblems.join('; ')}` : ''}`);
    expect(clusterProblems, 'the cluster did not recover by itself (nothing acknowledged was lost: checked above)').toEqual([]);
    await waitFor(() => r.readiness().ok, 'the node ready again', 120_000, 50);
    clearInterval(watch);
  }, 900_000);
});

/** The inbox's and the lease bucket's leader, replicas and sequences, for a failure's message. */
async function streamSummary(jsm: JetStreamManager): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const s of ['AGENTRY_INBOX', 'KV_AGENTRY_LEASES']) {
    out[s] = await jsm.streams.info(s).then(
      (i) => ({ leader: i.cluster?.leader, replicas: i.cluster?.replicas?.map((p) => `${p.name}${p.current ? '' : ' not current'}${p.offline ? ' offline' : ''}${p.lag ? ` lag ${p.lag}` : ''}`), firstSeq: i.state.first_seq, lastSeq: i.state.last_seq, messages: i.state.messages }),
      (e: unknown) => String(e));
  }
  return out;
}

/**
 * Waits until every session applied as many messages as were acknowledged to it, then checks it
 * applied exactly those, in order (a duplicate or a loss both show). Returns when they were.
 */
async function allApplied(r: Runtime, jsm: JetStreamManager, load: Load, what: string): Promise<number> {
  for (const [sid, acked] of load.published) {
    const want = acked.map((p) => p.i);
    const seen = await waitFor(async () => {
      const v = await r.getAgent(sid).catch(() => null);
      const got = (v?.userState as { seen?: number[] } | undefined)?.seen ?? [];
      return got.length >= want.length ? got : null;
    }, `${sid}: ${want.length} messages applied (${what})`, 180_000, 100).catch(async (err: unknown) => {
      // What the stall looks like, for whoever reads the failure.
      const p = partitionOf(sid, PARTITIONS);
      const v = await r.getAgent(sid).catch((e: unknown) => String(e));
      const consumers: unknown[] = [];
      for await (const ci of jsm.consumers.list('AGENTRY_INBOX')) {
        if (ci.config.filter_subject === `agentry.part.${p}.>`) consumers.push({ name: ci.name, delivered: ci.delivered, ackFloor: ci.ack_floor, pending: ci.num_pending, ackPending: ci.num_ack_pending, waiting: ci.num_waiting, cluster: ci.cluster });
      }
      const first = load.published.get(sid)![0]!;
      const stored = await jsm.streams.getMessage('AGENTRY_INBOX', { seq: first.seq }).then((m) => m?.subject ?? 'none', (e: unknown) => String(e));
      const si = await jsm.streams.info('AGENTRY_INBOX').catch((e: unknown) => String(e));
      console.log(`[natsClusterLoss] first message of ${sid}: seq ${first.seq}, acked after ${first.attempts} attempts; in the stream now: ${stored}\nstream ${JSON.stringify(si)}\nadvisories\n${advisories.filter((a) => !a.includes('KV_') && !a.includes('.API.')).join('\n')}`);
      const names = await consumerNames(r.transport.nc, jsm, 'AGENTRY_INBOX').catch((e: unknown) => [String(e)]);
      console.log(`[natsClusterLoss] STALL ${sid} partition ${p}: ${JSON.stringify(v)}\nconsumer names ${names.join(',')}\nconsumers ${JSON.stringify(consumers)}\npartitions ${JSON.stringify(await r.getPartitions())}\nfeed consumer ${r.transport.consumerName(p)}`);
      throw err;
    });
    // A moment more: a duplicate applied after the last wanted one shows too.
    await sleep(0);
    expect(seen, sid).toEqual(want);
  }
  return Date.now();
}

describe('natsReplicas on a server outside a cluster', () => {
  it('refuses to start with CONFIG_INVALID naming AGENTRY_NATS_REPLICAS', async () => {
    const nats = await startNats(PARTITIONS);
    const schema = schemaName('natsr1');
    const store = openStore({ databaseUrl: PG_URL, schema });
    try {
      // Streams made first with one replica, as by an earlier version: the update must be refused too.
      const first = await startRuntime(nats.url, { agents: [recorder], store, partitions: PARTITIONS });
      await first.stop();
      const err = await startRuntime(nats.url, { agents: [recorder], store, partitions: PARTITIONS, config: { natsReplicas: 3 } })
        .then((x) => x.stop().then(() => null), (e: unknown) => e as { code?: string; message?: string });
      expect(err?.code).toBe('CONFIG_INVALID');
      expect(err?.message).toContain('AGENTRY_NATS_REPLICAS');
      const nc2 = await connect({ servers: nats.url });
      const info = await (await jetstreamManager(nc2)).streams.info('AGENTRY_INBOX');
      await nc2.close();
      expect(info.config.num_replicas).toBe(1);
    } finally {
      await store.close();
      await nats.cleanup();
      await dropSchema(schema);
    }
  }, 120_000);
});
