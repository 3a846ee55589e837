// A stream's size limit as the stream keeper applies it (runtime/streamKeeper.ts, "the size
// rule"). nats-server enforces a lowered max_bytes at once by deleting the oldest messages, even
// in a work-queue stream with discard `new` (checked on 2.9.10: 100 messages updated to half
// their bytes kept the newest 47). So a lower limit — a deploy that sets AGENTRY_INBOX_MAX_BYTES
// while a backlog waits, or the first start of the code that introduced the limit — must not cut
// the backlog: it is held back and applied once the stream has drained. And a limit the server
// cannot reserve (more than its max_file_store) must not stop the runtime from starting: it is
// halved until it fits. Real nats-server.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DiscardPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { createLogger } from '../../runtime/logger.js';
import { StreamKeeper } from '../../runtime/streamKeeper.js';
import { natsClient, startNats, waitFor } from '../helpers.js';

describe('stream size limits', () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  const keepers: StreamKeeper[] = [];
  const keeper = (): StreamKeeper => {
    const k = new StreamKeeper({ nc, jsm, logger: createLogger('silent'), checkEveryMs: 200 });
    keepers.push(k);
    return k;
  };

  beforeAll(async () => {
    nats = await startNats();
    nc = await natsClient(nats.url);
    jsm = await jetstreamManager(nc);
  }, 30_000);
  afterAll(async () => {
    for (const k of keepers) await k.stop();
    await nc?.close();
    await nats?.cleanup();
  });

  it('a lower max_bytes never deletes a backlog: held back while the stream holds more than half of it, applied once it drained', async () => {
    const base = { name: 'CAP_WQ', subjects: ['capwq.>'], retention: RetentionPolicy.Workqueue, storage: StorageType.File, discard: DiscardPolicy.New };
    await jsm.streams.add(base);
    const js = jetstream(nc);
    for (let i = 0; i < 100; i++) await js.publish(`capwq.${i}`, 'x'.repeat(1000));
    const k = keeper();
    await k.ensure({ ...base, max_bytes: 50_000 }); // the backlog is ~105 KB
    let si = await jsm.streams.info('CAP_WQ');
    expect(si.state.messages).toBe(100);
    expect(si.config.max_bytes).toBe(-1);
    // Drained to 10 messages (~10 KB, under half the limit): the periodic check applies it.
    await jsm.streams.purge('CAP_WQ', { seq: 91 });
    k.start();
    si = await waitFor(async () => { const s = await jsm.streams.info('CAP_WQ'); return s.config.max_bytes === 50_000 ? s : null; }, 'the limit applied', 10_000, 100);
    expect(si.state.messages).toBe(10);
    // Raising it is never held back.
    await k.ensure({ ...base, max_bytes: 80_000 });
    expect((await jsm.streams.info('CAP_WQ')).config.max_bytes).toBe(80_000);
  }, 60_000);

  it('a limit the server cannot reserve is halved until it fits, and once more for room; the stream is created and takes messages', async () => {
    // nats.conf gives JetStream a 10 GB file store: 64 GiB cannot be reserved, 8 GiB can; 4 GiB is set.
    const k = keeper();
    await k.ensure({ name: 'CAP_BIG', subjects: ['capbig.>'], retention: RetentionPolicy.Workqueue, storage: StorageType.File, discard: DiscardPolicy.New, max_bytes: 64 * 1024 ** 3 });
    const si = await jsm.streams.info('CAP_BIG');
    expect(si.config.max_bytes).toBe(4 * 1024 ** 3);
    await expect(jetstream(nc).publish('capbig.a', 'y')).resolves.toMatchObject({ stream: 'CAP_BIG' });
    await jsm.streams.delete('CAP_BIG');
  }, 60_000);
});
