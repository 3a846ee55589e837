// AGENTRY_LEASE_TTL_MS lowered between two starts. The partition lease bucket is a stream with
// max_age = the TTL, and nats-server made its duplicate window the TTL too when it created it;
// the next start updates the stream with its whole old config (the client sends it back) and the
// new max_age. Until 2026-11-29 a lower TTL then failed the start with a raw JetStream error,
// "duplicates window can not be larger then max age": the node could not start at all until an
// operator deleted the bucket. And every start warned that JetStream "could not reserve the
// configured max_bytes" of the bucket, which configures none. Real nats-server and Postgres.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import pino from 'pino';
import type { NatsConnection } from '@nats-io/transport-node';
import { defineAgent } from '../../actors/index.js';
import { openStore } from '../../persistence/index.js';
import type { Store } from '../../persistence/types.js';
import { PG_URL, dropSchema, natsClient, publish, schemaName, startNats, startRuntime, waitFor } from '../helpers.js';

const counter = defineAgent({
  type: 'ttl-counter',
  onMessage: 'queue',
  initialState: () => ({ n: 0 }),
  handle(batch, ctx) { ctx.state.n += batch.length; },
});

describe('the partition lease bucket stream at start', () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let nc: NatsConnection;
  let store: Store;
  const schema = schemaName('ttllow');

  beforeAll(async () => {
    nats = await startNats(4);
    nc = await natsClient(nats.url);
    store = openStore({ databaseUrl: PG_URL, schema });
  }, 30_000);
  afterAll(async () => {
    await nc?.close();
    await store?.close();
    await nats?.cleanup();
    await dropSchema(schema);
  }, 60_000);

  it('a start does not warn of a max_bytes it could not reserve when the stream (the lease bucket) has none', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write(line: string) { lines.push(line); } });
    const rt = await startRuntime(nats.url, { agents: [counter], store, partitions: 4, logger, config: { defaultAgentType: 'ttl-counter', leaseTtlMs: 30_000 } });
    await rt.stop();
    expect(lines.filter((l) => l.includes('could not reserve'))).toEqual([]);
  }, 120_000);

  it('starts with the lower TTL, and the bucket takes it', async () => {
    const start = (leaseTtlMs: number) => startRuntime(nats.url, { agents: [counter], store, partitions: 4, config: { defaultAgentType: 'ttl-counter', leaseTtlMs } });
    const first = await start(30_000);
    await first.stop();
    const rt = await start(6_000);
    try {
      const jsm = await jetstreamManager(nc);
      const info = await jsm.streams.info('KV_AGENTRY_LEASES');
      expect(info.config.max_age).toBe(6_000 * 1_000_000);
      await publish(nc, 'ttl-1', { x: 1 });
      await waitFor(async () => ((await rt.getAgent('ttl-1').catch(() => null))?.userState as { n?: number } | undefined)?.n === 1, 'the message applied', 30_000, 50);
    } finally {
      await rt.stop();
    }
  }, 120_000);
});
