// An operator deletes one of the runtime's JetStream streams while it runs (`nats stream rm`, a
// clean-up script). What the stream held is gone — the operator deleted it — but the runtime must
// notice, fail readiness, re-create the stream with its config and go on by itself, with no
// restart: every message published after the re-creation is applied exactly once and in order
// (none skipped as "already applied" because the new stream's sequences started over), a publish
// meanwhile is refused with a retryable error (never acknowledged and dropped), and events
// published after the event stream's re-creation reach every subscriber once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { defineAgent } from '../../actors/defineAgent.js';
import { partitionOf } from '../../runtime/partition.js';
import { openStore } from '../../persistence/index.js';
import { PG_URL, dropSchema, natsClient, publish, schemaName, sleep, startNats, startRuntime, startStack, waitFor, type Stack } from '../helpers.js';

const handled = new Map<string, number[]>();

const rec = defineAgent({
  type: 'sdel-rec',
  onMessage: 'queue',
  subscribe: ['sdel.*'],
  handle(batch, ctx) {
    for (const m of batch) {
      const n = (m.body as { n?: number } | null)?.n ?? -1;
      handled.set(ctx.sessionId, [...(handled.get(ctx.sessionId) ?? []), m.kind === 'event' ? 1000 + n : n]);
    }
  },
});

/** Publishes into a session's inbox until JetStream acknowledges it; returns when it was acked and whether the try that worked began after `after()` became true. */
async function publishUntilAcked(nc: NatsConnection, sid: string, n: number, after: () => boolean, deadline: number): Promise<{ seq: number; after: boolean }> {
  const js = jetstream(nc, { timeout: 5_000 });
  for (;;) {
    const began = after();
    const h = natsHeaders();
    h.set('Agentry-Kind', 'message');
    try {
      const ack = await js.publish(`agentry.in.${sid}`, JSON.stringify({ n }), { headers: h, msgID: `${sid}:${n}` });
      return { seq: ack.seq, after: began };
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${sid} n=${n} was never acknowledged (last error: ${(err as Error).message})`);
      await sleep(100);
    }
  }
}

describe('JetStream streams deleted by an operator while the runtime runs', () => {
  let stack: Stack;
  beforeAll(async () => { stack = await startStack('streamdel', { agents: [rec], config: { defaultAgentType: 'sdel-rec' } }); }, 60_000);
  afterAll(async () => { await stack?.stop(); });

  it('the inbox stream, mid-load: readiness fails, the stream comes back, every later message is applied once and in order', async () => {
    const { rt } = stack;
    // Sessions over several partitions.
    const sids: string[] = [];
    for (let i = 0; sids.length < 6; i++) {
      const sid = `sd-${i}`;
      if (!sids.some((o) => partitionOf(o, 8) === partitionOf(sid, 8))) sids.push(sid);
    }
    const PER = 50;
    const nc = await natsClient(stack.nats.url);
    let deleted = false;
    const acked = new Map<string, { n: number; seq: number; after: boolean }[]>(sids.map((s) => [s, []]));
    const notReady: boolean[] = [];
    const sampler = setInterval(() => { if (deleted) notReady.push(!rt.readiness().ok); }, 20);
    try {
      const deadline = Date.now() + 120_000;
      // The load: each session's messages in order (n+1 only after n was acked), 20 ms apart.
      const load = Promise.all(sids.map(async (sid) => {
        for (let n = 1; n <= PER; n++) {
          const r = await publishUntilAcked(nc, sid, n, () => deleted, deadline);
          acked.get(sid)!.push({ n, ...r });
          await sleep(20);
        }
      }));
      await waitFor(() => sids.every((s) => (handled.get(s)?.length ?? 0) >= 5) || null, 'every session to apply 5 messages before the delete', 60_000);
      const jsm = await jetstreamManager(nc);
      const lastBefore = (await jsm.streams.info(rt.transport.inboxStream)).state.last_seq;
      await jsm.streams.delete(rt.transport.inboxStream);
      deleted = true;
      await load;
      // Every message whose publish began after the delete went into the re-created stream.
      for (const sid of sids) {
        const later = acked.get(sid)!.filter((a) => a.after).map((a) => a.n);
        await waitFor(() => later.every((n) => handled.get(sid)?.includes(n)) || null,
          `${sid}: every message published after the delete to be applied (${later.filter((n) => handled.get(sid)?.includes(n)).length} of ${later.length})`, 60_000);
      }
      await waitFor(() => rt.readiness().ok || null, 'ready again', 30_000);
      for (const sid of sids) {
        const seen = handled.get(sid)!;
        const later = acked.get(sid)!.filter((a) => a.after).map((a) => a.n);
        expect(later.length, `${sid}: messages published after the delete`).toBeGreaterThan(10);
        // Once each, in order (what the deleted stream still held is gone: a gap, never a repeat or a swap).
        expect(new Set(seen).size, `${sid} applied a message twice: ${seen.join(',')}`).toBe(seen.length);
        expect([...seen].sort((a, b) => a - b), `${sid} out of order`).toEqual(seen);
        expect(seen.filter((n) => later.includes(n))).toEqual(later);
      }
      // The new stream started past the old one: nothing of it could be taken for "already applied".
      const info = await (await jetstreamManager(nc)).streams.info(rt.transport.inboxStream);
      expect(info.state.first_seq).toBeGreaterThan(lastBefore);
      expect(Math.min(...[...acked.values()].flat().filter((a) => a.after).map((a) => a.seq))).toBeGreaterThan(lastBefore);
      expect(notReady.some(Boolean), 'readiness failed while the stream was missing').toBe(true);
      expect(rt.transport.streamsRecreated()).toBeGreaterThanOrEqual(1);
    } finally {
      clearInterval(sampler);
      await nc.close();
    }
  }, 240_000);

  it('the event stream: events published after its re-creation reach every subscriber once', async () => {
    const { rt } = stack;
    const ids = ['sde-1', 'sde-2', 'sde-3'];
    for (const id of ids) await rt.createAgent(id, 'sdel-rec');
    await rt.publishEvent('sdel.x', { n: 1 });
    await waitFor(() => ids.every((id) => handled.get(id)?.includes(1001)) || null, 'the first event handled', 30_000);
    const nc = await natsClient(stack.nats.url);
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.delete(rt.transport.eventStream);
      // Refused (retryable) until the stream is back; never acknowledged and dropped.
      const refusals: string[] = [];
      const deadline = Date.now() + 60_000;
      for (;;) {
        try {
          await rt.publishEvent('sdel.x', { n: 2 }, { msgId: 'sdel-2' });
          break;
        } catch (err) {
          refusals.push(String((err as { code?: string }).code));
          if (Date.now() > deadline) throw new Error(`publishEvent never accepted after the event stream was deleted (${refusals.length} refusals, last ${(err as Error).message})`);
          await sleep(100);
        }
      }
      expect(refusals.every((c) => c === 'NOT_READY')).toBe(true);
      await waitFor(() => ids.every((id) => handled.get(id)?.includes(1002)) || null,
        `every subscriber to handle the event published after the delete (${ids.filter((id) => handled.get(id)?.includes(1002)).length} of ${ids.length} did)`, 60_000);
      await sleep(500);
      expect(ids.map((id) => handled.get(id))).toEqual(ids.map(() => [1001, 1002]));
      await waitFor(() => rt.readiness().ok || null, 'ready again', 30_000);
    } finally {
      await nc.close();
    }
  }, 120_000);
});

describe('the inbox stream deleted while the runtime was down', () => {
  it('a node that starts creates it past every session’s last_seq: the next messages are applied, not skipped as already applied', async () => {
    const nats = await startNats(8);
    const schema = schemaName('streamdel-down');
    const store = openStore({ databaseUrl: PG_URL, schema });
    const nc = await natsClient(nats.url);
    try {
      const sid = 'sd-down';
      let rt = await startRuntime(nats.url, { store, agents: [rec], config: { defaultAgentType: 'sdel-rec' } });
      try {
        // Other sessions first, so this one's last_seq is well above 1.
        for (let n = 1; n <= 20; n++) await publish(nc, `sd-other-${n % 4}`, { n });
        for (let n = 1; n <= 3; n++) await publish(nc, sid, { n });
        await waitFor(async () => (await store.getHistory(sid)).length >= 3 || null, 'the first three committed', 30_000);
      } finally {
        await rt.stop();
      }
      const before = (await store.loadSession(sid))!.lastSeq;
      expect(before).toBeGreaterThan(3);
      await (await jetstreamManager(nc)).streams.delete('AGENTRY_INBOX');
      rt = await startRuntime(nats.url, { store, agents: [rec], config: { defaultAgentType: 'sdel-rec' } });
      try {
        for (let n = 4; n <= 6; n++) await publish(nc, sid, { n });
        await waitFor(() => (handled.get(sid)?.length ?? 0) >= 6 || null,
          `messages published after the restart applied (${handled.get(sid)?.join(',')}; a stream restarted at sequence 1 has them skipped as ≤ last_seq ${before})`, 30_000);
        expect(handled.get(sid)).toEqual([1, 2, 3, 4, 5, 6]);
      } finally {
        await rt.stop();
      }
    } finally {
      await nc.close();
      await store.close();
      await nats.cleanup();
      await dropSchema(schema);
    }
  }, 120_000);
});
