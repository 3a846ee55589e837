// A partition feed (runtime/partitionFeed.ts) must never be left with no consumer and nothing on
// its way to make one while its partition is owned and not suspended: no event would bring it
// back, and the partition would handle nothing until its lease moved (the "NEVER recovered" a
// loaded natsCut run showed once, 2026-11-28; not reproduced since). Real nats-server, the feed
// driven directly, its hooks (`confirm`, `admit`) used to place events exactly.
//
// 1. A `restart()` asked at the turn a restart loop ends (the loop saw the feed paused, a lease
//    `resumed` comes right after) was dropped until 2026-11-29: it saw the loop's promise still
//    set (cleared one microtask later by a `.finally`) and returned, the loop was gone, and the
//    feed stayed unpaused with no consumer for good. Tried at every microtask depth around the
//    loop's end; the old code lost the restart at depth 1 (Node 20.20), the feed never consumed again.
// 2. The watchdog (`watchdog()`, every 5 s from the transport): a feed left idle by whatever path
//    is restarted after IDLE_RESTART_MS, a consumer that heard nothing from the server after
//    QUIET_RESTART_MS (fake clock); a paused, stopped or restarting feed is not touched, so it
//    never makes a second consumer; a consumer deleted under the feed comes back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  RetentionPolicy, StorageType, jetstream, jetstreamManager,
  type ConsumerMessages, type JetStreamClient, type JetStreamManager, type JsMsg,
} from '@nats-io/jetstream';
import { IDLE_RESTART_MS, PartitionFeed, QUIET_RESTART_MS, consumerNames, type PartitionFeedOptions } from '../../runtime/partitionFeed.js';
import { createLogger } from '../../runtime/logger.js';
import { natsClient, startNats, waitFor } from '../helpers.js';

const STREAM = 'FEEDWD_INBOX';
const log = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

describe('a partition feed is never left without a consumer', () => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let jsm: JetStreamManager;
  beforeAll(async () => {
    nats = await startNats(8);
    nc = await natsClient(nats.url);
    js = jetstream(nc);
    jsm = await jetstreamManager(nc);
    // The feed's filter is `agentry.part.<p>.>`, as in the runtime's inbox stream.
    await jsm.streams.add({ name: STREAM, subjects: ['agentry.part.>'], retention: RetentionPolicy.Workqueue, storage: StorageType.Memory });
  });
  afterAll(async () => {
    await nc?.close().catch(() => undefined);
    await nats?.cleanup();
  });

  /** A feed on partition p of the test stream; what it hands over is recorded and acked. */
  function feedOf(p: number, o: Partial<PartitionFeedOptions> = {}): { feed: PartitionFeed; got: string[] } {
    const got: string[] = [];
    const feed = new PartitionFeed({
      nc, jsm, js, stream: STREAM, partition: p, epoch: 1, ackWaitMs: 30_000, maxAckPending: -1, buffer: 64, logger: log,
      onMessage: (_p, m: JsMsg) => { got.push(m.string()); m.ack(); },
      ...o,
    });
    return { feed, got };
  }
  const send = async (p: number, body: string): Promise<void> => { await js.publish(`agentry.part.${p}.s`, body); };
  const consumersOf = async (p: number): Promise<string[]> => (await consumerNames(nc, jsm, STREAM)).filter((n) => n.startsWith(`part-${p}-`));

  it('a restart asked as a restart loop ends (paused by a suspension, resumed at once) is not lost, at any microtask depth', async () => {
    const lost: number[] = [];
    for (let depth = 0; depth <= 12; depth++) {
      let pauseInConfirm = false;
      let resumeAfterOpen = false;
      let feedRef: PartitionFeed | null = null;
      const { feed, got } = feedOf(depth % 8, {
        // The lease is suspended while the restart confirms it: the feed is paused meanwhile.
        confirm: () => { if (pauseInConfirm) { pauseInConfirm = false; feedRef!.pause(); } return Promise.resolve(true); },
        // The open finds the feed paused and makes no consumer; the lease's `resumed` comes
        // `depth` microtasks after the open's slot is given back: around the loop's end.
        admit: async <T>(fn: () => Promise<T>): Promise<T> => {
          const r = await fn();
          if (resumeAfterOpen) {
            resumeAfterOpen = false;
            let chain = Promise.resolve();
            for (let i = 0; i < depth; i++) chain = chain.then(() => undefined);
            void chain.then(() => { feedRef!.restart('lease renewed after a lapse'); });
          }
          return r;
        },
      });
      feedRef = feed;
      await feed.start();
      await send(depth % 8, `first-${depth}`);
      await waitFor(() => got.includes(`first-${depth}`) || null, `depth ${depth}: the first message`, 15_000);
      pauseInConfirm = true;
      resumeAfterOpen = true;
      feed.restart('NATS reconnected');
      // Settled: the confirm paused it, the open found it paused, the resume asked for a restart.
      await waitFor(() => (!pauseInConfirm && !resumeAfterOpen) || null, `depth ${depth}: the race played`, 15_000);
      await send(depth % 8, `second-${depth}`);
      try {
        await waitFor(() => got.includes(`second-${depth}`) || null, `depth ${depth}: a message after the resume`, 8_000);
      } catch {
        lost.push(depth);
      }
      await feed.stop();
    }
    expect(lost, 'microtask depths at which the resume was lost and the feed never consumed again').toEqual([]);
  }, 240_000);

  it('the watchdog restarts an idle feed, and leaves paused, restarting and stopped feeds alone', async () => {
    let now = 1_000_000;
    let confirmAnswer: boolean | null = true;
    const { feed, got } = feedOf(3, { now: () => now, confirm: () => Promise.resolve(confirmAnswer) });
    await feed.start();
    await send(3, 'a');
    await waitFor(() => got.includes('a') || null, 'the first message');
    expect(feed.watchdog().state).toBe('consuming');

    // Whatever path leaves it so: the consumer closed and forgotten, no restart on its way.
    const inner = feed as unknown as { messages: ConsumerMessages | null; gen: number };
    const m = inner.messages!;
    inner.gen++;
    inner.messages = null;
    await m.close();
    expect(feed.watchdog().state).toBe('idle');
    await send(3, 'b');
    now += IDLE_RESTART_MS - 1;
    expect(feed.watchdog().state).toBe('idle'); // not yet: a moment of idleness is no fault
    expect(feed.restarts).toBe(0);
    now += 1;
    feed.watchdog(); // idle for IDLE_RESTART_MS: restarted
    await waitFor(() => got.includes('b') || null, 'the message sent while the feed was idle, after the watchdog restarted it');
    expect(feed.restarts).toBe(1);
    expect(await consumersOf(3)).toHaveLength(1);

    // Paused (lease suspended): no consumer, and the watchdog must not start one.
    feed.pause();
    now += 10 * IDLE_RESTART_MS;
    expect(feed.watchdog().state).toBe('paused');
    now += 10 * IDLE_RESTART_MS;
    expect(feed.watchdog().state).toBe('paused');
    expect(feed.restarts).toBe(1);

    // A restart that cannot confirm its lease retries by itself: the watchdog starts no second one.
    confirmAnswer = null;
    feed.restart('lease renewed after a lapse');
    for (let i = 0; i < 5; i++) {
      now += 10 * IDLE_RESTART_MS;
      expect(feed.watchdog().state).toBe('restarting');
    }
    confirmAnswer = true;
    await send(3, 'c');
    await waitFor(() => got.includes('c') || null, 'the message after the restart could confirm', 20_000);
    expect(feed.watchdog().state).toBe('consuming');
    expect(await consumersOf(3)).toHaveLength(1);

    // A consumer deleted under the feed (an operator): it comes back by itself.
    const name = feed.consumerName()!;
    await jsm.consumers.delete(STREAM, name);
    await send(3, 'd');
    await waitFor(() => got.includes('d') || null, 'the message after the consumer was deleted', 30_000);
    expect(feed.consumerName()).not.toBe(name);
    expect(await consumersOf(3)).toHaveLength(1);

    // A consumer that heard nothing from the server for QUIET_RESTART_MS (a live server answers a
    // waiting pull every 2.5 s): restarted.
    const restartsBefore = feed.restarts;
    now += QUIET_RESTART_MS - 1;
    expect(feed.watchdog().state).toBe('consuming');
    now += 1;
    expect(feed.watchdog().quietMs).toBeGreaterThanOrEqual(QUIET_RESTART_MS);
    await waitFor(() => feed.restarts > restartsBefore || null, 'the restart of the quiet consumer');
    await send(3, 'e');
    await waitFor(() => got.includes('e') || null, 'the message after the quiet consumer was restarted');
    expect(await consumersOf(3)).toHaveLength(1);

    await feed.stop();
    now += 10 * IDLE_RESTART_MS;
    expect(feed.watchdog().state).toBe('stopped');
    expect(got.filter((b) => b === 'b')).toHaveLength(1);
  }, 120_000);
});
