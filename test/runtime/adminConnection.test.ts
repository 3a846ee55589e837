// The runtime asks JetStream's management API (consumers and streams made, listed, deleted)
// over a connection of its own, never over the one that carries deliveries, acks and pings. The
// server runs an API request in the reading loop of the connection that sent it, and on
// nats-server 2.9 a consumer created over a deep inbox takes seconds: on the data connection that
// held up acks and pings until the client took the connection for dead, and the reconnect
// restarted every partition consumer with more such requests (a node in front of a 300k backlog
// stopped consuming for good: bench backlog, 2026-11-28). Real nats-server: the test maps each API
// request's reply subject to the connection that subscribed to it (the server's /connz).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { defineAgent } from '../../actors/defineAgent.js';
import { freePort, projectRoot, startNatsServer, type NatsServerHandle } from '../../ops/natsServer.js';
import { natsClient, publish, startRuntime, testNatsServerBinary, waitFor } from '../helpers.js';

const echo = defineAgent({ type: 'echo', handle(batch, ctx) { for (const m of batch) ctx.reply({ got: m.body }); } });

interface Connz { connections: { name?: string; subscriptions_list_detail?: { subject: string }[] }[] }

describe('the JetStream API goes over the admin connection', () => {
  let dir: string;
  let nats: NatsServerHandle;
  let monitor: number;
  let nc: NatsConnection;
  let spy: Subscription;
  const requests: { subject: string; reply: string }[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'agentry-admin-'));
    monitor = await freePort();
    const conf = join(dir, 'nats-monitored.conf');
    writeFileSync(conf, `${readFileSync(join(projectRoot(), 'nats.conf'), 'utf8')}\nhttp_port: ${monitor}\n`);
    nats = await startNatsServer({ storeDir: join(dir, 'js'), partitions: 8, configPath: conf, binary: testNatsServerBinary() });
    nc = await natsClient(nats.url);
    spy = nc.subscribe('$JS.API.>', { callback: (_e, m) => { requests.push({ subject: m.subject, reply: m.reply ?? '' }); } });
    await nc.flush();
  });
  afterAll(async () => { spy?.unsubscribe(); await nc?.close(); await nats?.stop(); rmSync(dir, { recursive: true, force: true }); });

  it('starting and restarting every partition consumer: none of it from the data connection', async () => {
    const rt = await startRuntime(nats.url, { agents: [echo], config: { defaultAgentType: 'echo', nodeId: 'adm' } });
    try {
      for (let p = 0; p < 8; p++) rt.transport.restartPartition(p, 'test'); // what a NATS reconnect does
      const sub = nc.subscribe('agentry.out.adm-1', { max: 1 });
      const got = (async () => { for await (const m of sub) return m.json<{ got: unknown }>(); })();
      await publish(nc, 'adm-1', { n: 1 });
      expect(await got).toEqual({ got: { n: 1 } });
      const creates = (): number => requests.filter((r) => r.subject.startsWith('$JS.API.CONSUMER.CREATE.AGENTRY_INBOX.part-')).length;
      await waitFor(() => creates() >= 16 || null, 'a consumer create per partition start and per restart');

      // Which connection each reply subject belongs to: the one subscribed to it (a pull's own
      // inbox), or to its request-reply wildcard (`_INBOX.<id>.*`).
      const connz = (await (await fetch(`http://127.0.0.1:${monitor}/connz?subs=detail`)).json()) as Connz;
      const owner = new Map<string, string>();
      for (const c of connz.connections) {
        for (const s of c.subscriptions_list_detail ?? []) if (s.subject.startsWith('_INBOX.')) owner.set(s.subject.endsWith('.*') ? s.subject.slice(0, -1) : s.subject, c.name ?? '');
      }
      const connOf = (reply: string): string => owner.get(reply) ?? owner.get(reply.slice(0, reply.lastIndexOf('.') + 1)) ?? '(unknown)';
      const management = requests.filter((r) => /^\$JS\.API\.(CONSUMER\.(CREATE|DURABLE\.CREATE|DELETE|NAMES|INFO|LIST)|STREAM\.)/.test(r.subject) && r.subject.includes('AGENTRY_INBOX'));
      expect(management.length).toBeGreaterThanOrEqual(16);
      const byConn = new Map<string, number>();
      for (const r of management) byConn.set(connOf(r.reply), (byConn.get(connOf(r.reply)) ?? 0) + 1);
      expect([...byConn.keys()]).toEqual(['agentry-adm-admin']);
      // A feed consumes from the create's answer: no consumer info asked for (a scan of the inbox each on 2.9).
      expect(management.filter((r) => r.subject.startsWith('$JS.API.CONSUMER.INFO.AGENTRY_INBOX.part-'))).toEqual([]);
      // The data connection still pulls (its deliveries are what the API must not hold up).
      expect(requests.some((r) => r.subject.startsWith('$JS.API.CONSUMER.MSG.NEXT.AGENTRY_INBOX.') && connOf(r.reply) === 'agentry-adm')).toBe(true);
    } finally {
      await rt.stop();
    }
  }, 120_000);
});
