// A release that drops sessions of a partition this node owns again must not lose their messages.
// Found in the scale-out bench (2 of ~25 CPU-bound 3-node runs, 20 and 102 messages): after a
// long stall every lease lapsed; this node's next round re-took a partition while the old
// release was still closing its consumer; the new feed filled sessions, then the old release
// dropped them without a feed restart. Their messages stayed unacked in the new consumer, newer
// messages went to a fresh hydration that committed, and when ack_wait redelivered the older
// ones they were acked as duplicates of what was committed: lost, the session "created fresh"
// with only its last messages. Now a partition's release and acquisition run in order, and a
// release that finds the partition owned again restarts its feed from the oldest unacked
// message. Here the stale release is called directly, mid-run, against real NATS and Postgres.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineAgent } from '../../actors/index.js';
import { partitionOf } from '../../runtime/index.js';
import { natsClient, publish, sleep, startStack, waitFor, type Stack } from '../helpers.js';

let release: () => void = () => undefined;
const gate = new Promise<void>((r) => { release = r; });
let gated = false;

const recorder = defineAgent<{ seen: number[] }>({
  type: 'recorder',
  onMessage: 'queue',
  initialState: () => ({ seen: [] }),
  async handle(batch, ctx) {
    for (const m of batch) {
      const i = (m.body as { i: number }).i;
      if (i === 1 && !gated) { gated = true; await gate; }
      ctx.state.seen.push(i);
    }
    return undefined;
  },
});

let stack: Stack;
beforeAll(async () => {
  stack = await startStack('stale_release', { agents: [recorder], config: { defaultAgentType: 'recorder', ackWaitMs: 2_000 } });
});
afterAll(async () => { await stack?.stop(); });

describe('a release that drops sessions of a partition owned again', () => {
  it('restarts the feed: every message applied once, in order, none acked unapplied', async () => {
    const id = 'stale-rel-1';
    const p = partitionOf(id, 8);
    const nc = await natsClient(stack.nats.url);
    try {
      await publish(nc, id, { i: 1 });
      await waitFor(() => gated, 'the first run to start', 30_000);
      await publish(nc, id, { i: 2 });
      await publish(nc, id, { i: 3 });
      await waitFor(async () => (await stack.rt.getAgent(id)).mailbox.pending === 2, 'two messages queued behind the run', 30_000);
      expect(stack.rt.leases.epochOf(p)).toBeGreaterThan(0);
      // The release of an earlier epoch, landing while the partition is owned: it drops the session.
      await stack.rt.host.releasePartition(p, false, 0);
      release();
      await publish(nc, id, { i: 4 });
      await publish(nc, id, { i: 5 });
      const seen = async (): Promise<number[]> =>
        ((await stack.store.loadSession(id))?.snapshot as { context?: { userState?: { seen?: number[] } } } | undefined)?.context?.userState?.seen ?? [];
      await waitFor(async () => (await seen()).includes(5), 'the last message applied', 60_000, 50);
      await sleep(4_000); // past ack_wait: a redelivery of 1-3 would be acked now if it were taken for a duplicate
      await waitFor(async () => (await seen()).length >= 5, 'all five messages applied', 30_000, 50);
      expect(await seen()).toEqual([1, 2, 3, 4, 5]);
      const info = await (await import('@nats-io/jetstream')).jetstreamManager(nc).then((jsm) => jsm.streams.info('AGENTRY_INBOX'));
      expect(info.state.messages).toBe(0);
    } finally { await nc.close(); }
  }, 180_000);
});
