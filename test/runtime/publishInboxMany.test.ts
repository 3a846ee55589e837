// Transport.publishInboxMany: the event router's fan-out publish (one reply subscription and one
// timer per chunk instead of a JetStream request per recipient). The router acks an event only
// once this resolves, so it must resolve only when every message is stored (a duplicate counts:
// it was stored before), and reject when any one is refused. Real nats-server with nats.conf.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { createLogger } from '../../runtime/logger.js';
import { partitionOf } from '../../runtime/partition.js';
import { createTransport, type Transport } from '../../runtime/transport.js';
import { natsClient, startNats } from '../helpers.js';

const transportOf = (url: string): Promise<Transport> => createTransport({
  url, partitions: 8, streamPrefix: 'AGENTRY', ackWaitMs: 5000, consumerBuffer: 100, maxPayloadBytes: 4096,
  logger: createLogger('silent'), name: 'pim-test',
});

describe('publishInboxMany', () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let nc: NatsConnection;
  let t: Transport;
  beforeAll(async () => {
    nats = await startNats(8);
    nc = await natsClient(nats.url);
    t = await transportOf(nats.url);
  });
  afterAll(async () => { await t?.close(); await nc?.close(); await nats?.cleanup(); });

  it('refuses when no stream stores the inbox (503, no responders), before the streams exist', async () => {
    await expect(t.publishInboxMany(['a', 'b'], ['m:a', 'm:b'], '{}', { 'Agentry-Kind': 'event' }, 10_000)).rejects.toMatchObject({ code: 'NOT_READY' });
  });

  it('stores one message per recipient with its msg id and headers, and a repeat is de-duplicated', async () => {
    await t.ensureStreams();
    const jsm = await jetstreamManager(nc);
    const before = (await jsm.streams.info(t.inboxStream)).state.messages;
    const ids = Array.from({ length: 300 }, (_, i) => `pim-${i}`);
    await t.publishInboxMany(ids, ids.map((sid) => `evt:1:${sid}`), '{"k":1}', { 'Agentry-Kind': 'event', 'Agentry-Event-Type': 'x.y' }, 10_000);
    expect((await jsm.streams.info(t.inboxStream)).state.messages - before).toBe(300);
    // The same ids again (a router re-routing after a crash): all acknowledged as duplicates, nothing stored twice.
    await t.publishInboxMany(ids, ids.map((sid) => `evt:1:${sid}`), '{"k":1}', { 'Agentry-Kind': 'event' }, 10_000);
    expect((await jsm.streams.info(t.inboxStream)).state.messages - before).toBe(300);
    const m = await jsm.streams.getMessage(t.inboxStream, { last_by_subj: `agentry.part.${partitionOf('pim-7', 8)}.pim-7` });
    expect(m?.header.get('Nats-Msg-Id')).toBe('evt:1:pim-7');
    expect(m?.header.get('Agentry-Event-Type')).toBe('x.y');
    expect(m?.json()).toEqual({ k: 1 });
  });

  it('rejects when the stream refuses one message (larger than the stream allows)', async () => {
    await expect(t.publishInboxMany(['big-1'], ['m:big-1'], 'x'.repeat(8192), { 'Agentry-Kind': 'event' }, 10_000)).rejects.toMatchObject({ code: 'NOT_READY' });
  });

  it('rejects when not every acknowledgement arrives in time', async () => {
    const ids = Array.from({ length: 2000 }, (_, i) => `pim-late-${i}`);
    await expect(t.publishInboxMany(ids, ids.map((sid) => `late:${sid}`), '{}', { 'Agentry-Kind': 'event' }, 0)).rejects.toMatchObject({ code: 'TIMEOUT' });
  });

  it('resolves at once for no recipients', async () => {
    await t.publishInboxMany([], [], '{}', {}, 10);
  });
});
