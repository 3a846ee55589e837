// A node on a nats-server cluster of a version known to lose acknowledged inbox messages (before
// 2.10: nats-io/nats-server#3953, #5612, #5638; measured with test/durability/natsClusterLoss.test.ts,
// docs/operations.md "A NATS cluster") says so at start, at error level, and keeps the warning for
// readiness and metrics; on a single server with natsReplicas 1 it says nothing, whatever the
// version. Real nats-server (whichever the tests run: the expectation follows its version), no
// cluster: natsReplicas 3 is what a node meant for a cluster is configured with, and the transport
// warns before its streams are made (where a single server then refuses the start).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import pino from 'pino';
import { createTransport } from '../../runtime/transport.js';
import { clusterLosesAckedMessages } from '../../runtime/natsVersion.js';
import { startNats } from '../helpers.js';

describe('the nats-server cluster-faults warning', () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  beforeAll(async () => { nats = await startNats(8); });
  afterAll(async () => { await nats?.cleanup(); });

  /** Opens a transport with `replicas` and returns the warnings it kept, the server's version and the error lines it logged. */
  async function open(replicas: number): Promise<{ codes: string[]; version: string; errors: { code?: string; msg: string }[] }> {
    const lines: string[] = [];
    const sink = new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(chunk.toString()); cb(); } });
    const t = await createTransport({
      url: nats.url, partitions: 8, streamPrefix: 'AGENTRY', ackWaitMs: 30_000, consumerBuffer: 64,
      maxPayloadBytes: 1 << 20, replicas, logger: pino({ level: 'warn' }, sink), name: 'natswarn',
    });
    try {
      const errors = lines.map((l) => JSON.parse(l) as { level: number; code?: string; msg: string }).filter((l) => l.level >= 50);
      return { codes: t.serverWarnings().map((w) => w.code), version: t.nc.info?.version ?? '', errors };
    } finally {
      await t.close();
    }
  }

  it('a single server with natsReplicas 1: nothing logged, nothing kept', async () => {
    const r = await open(1);
    expect(r.codes).toEqual([]);
    expect(r.errors.filter((e) => e.code === 'NATS_SERVER_CLUSTER_FAULTS')).toEqual([]);
  }, 60_000);

  it('natsReplicas 3: logged at error level and kept exactly when the server is before 2.10', async () => {
    const r = await open(3);
    const expected = clusterLosesAckedMessages(r.version) ? ['NATS_SERVER_CLUSTER_FAULTS'] : [];
    expect(r.codes, `nats-server ${r.version}`).toEqual(expected);
    expect(r.errors.filter((e) => e.code === 'NATS_SERVER_CLUSTER_FAULTS').map((e) => e.code)).toEqual(expected);
    if (expected.length > 0) expect(r.errors.find((e) => e.code === 'NATS_SERVER_CLUSTER_FAULTS')!.msg).toContain('2.10 or later');
  }, 60_000);
});
