// Mail and cron firings are outbox rows: published after their commit with the row id as
// `Nats-Msg-Id`, so a row sent twice (its PubAck lost, then a sweep) is dropped by the inbox
// stream — but only while the stream remembers that id. A nats-server restart forgets the ids of
// messages a work queue already removed (seen in chaos seed 303 for event copies: stored twice
// 51 s apart under one id), so a row whose first copy was consumed is stored again and, before
// the recipient remembered rows, applied twice. Here such a second copy is replayed exactly as
// the outbox sent it (captured on the wire), under a msgId the stream has never seen, against
// real NATS and Postgres: the recipient must skip it, also after a restart.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { headers as natsHeaders, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { defineAgent } from '../../actors/index.js';
import type { Runtime } from '../../runtime/index.js';
import { deliveryIdOf } from '../../runtime/host/outbox.js';
import { natsClient, publish, startRuntime, startStack, type Stack, waitFor } from '../helpers.js';

let stack: Stack;
let rt: Runtime;
let nc: NatsConnection;

/** Mails `{ n }` to `to` for every `{ to, n }` it gets. */
const mailer = defineAgent<Record<string, never>>({
  type: 'row-mailer',
  initialState: () => ({}),
  handle(batch, ctx) {
    for (const m of batch) {
      const b = m.body as { to?: string; n?: number } | null;
      if (b?.to !== undefined) ctx.mail(b.to, { n: b.n });
    }
  },
});

/** Records every mail and cron task it handles. */
const rcpt = defineAgent<{ got: string[] }>({
  type: 'row-rcpt',
  onMessage: 'queue',
  initialState: () => ({ got: [] }),
  handle(batch, ctx) {
    for (const m of batch) if (m.kind === 'mail' || m.kind === 'task') ctx.state.got.push(`${m.kind}:${JSON.stringify(m.body)}`);
  },
});

const agents = [mailer, rcpt];

async function got(sid: string): Promise<string[]> {
  return ((await rt.getAgent(sid)).userState as { got: string[] }).got;
}

/** Sends a plain message and waits for it to be handled: everything published before it was handled or skipped. */
async function settle(sid: string): Promise<void> {
  const seq = await publish(nc, sid, { ping: true });
  await waitFor(async () => ((await rt.getHistory(sid, { limit: 1 }))[0]?.seq ?? -1) >= seq, `ping ${seq} handled`, 30_000);
}

let n = 0;
/** Publishes `m` (captured on the partition subject nats.conf maps `agentry.in.<sid>` to) into the inbox again, every header as sent, under a msgId the stream has not seen. */
async function replay(m: Msg): Promise<void> {
  const h = natsHeaders();
  for (const k of m.headers!.keys()) if (k !== 'Nats-Msg-Id') h.set(k, m.headers!.get(k));
  const sid = m.subject.slice(m.subject.lastIndexOf('.') + 1); // seen on agentry.part.<p>.<sid>, sent to agentry.in.<sid>
  await jetstream(nc, { timeout: 30_000 }).publish(`agentry.in.${sid}`, m.data, { headers: h, msgID: `forgotten-${Date.now()}-${n++}` });
}

async function restart(): Promise<void> {
  await rt.stop();
  rt = await startRuntime(stack.nats.url, { agents, store: stack.store });
  Object.assign(stack, { rt });
}

beforeAll(async () => {
  stack = await startStack('rowmemory', { agents });
  rt = stack.rt;
  nc = await natsClient(stack.nats.url);
});
afterAll(async () => { await nc?.close(); await stack?.stop(); });

describe('a recipient remembers the outbox rows it got', () => {
  it('skips a mail row stored again under a forgotten msgId, also after a restart; another row is still handled', async () => {
    await rt.createAgent('rm-to', 'row-rcpt');
    await rt.createAgent('rm-from', 'row-mailer');
    const seen: Msg[] = [];
    const sub = nc.subscribe('agentry.part.*.rm-to', { callback: (_e, m) => { if (m.headers?.get('Agentry-Kind') === 'mail') seen.push(m); } });
    try {
      await publish(nc, 'rm-from', { to: 'rm-to', n: 1 });
      await waitFor(async () => (await got('rm-to')).length === 1 && seen.length === 1, 'the mail handled');
      const sent = seen[0]!;
      expect(sent.headers!.get('Agentry-Delivery-Id')).toMatch(/^r[0-9a-z]+\.[0-9a-z]+$/);
      expect(sent.headers!.get('Agentry-Delivery-Id')).toBe(deliveryIdOf({ id: sent.headers!.get('Nats-Msg-Id'), createdAt: parseInt(sent.headers!.get('Agentry-Delivery-Id').split('.')[1]!, 36) }));

      await replay(sent);
      await settle('rm-to');
      expect(await got('rm-to')).toEqual(['mail:{"n":1}']);

      // Loaded again from its stored row, the session still knows the row.
      await restart();
      await replay(sent);
      await settle('rm-to');
      expect(await got('rm-to')).toEqual(['mail:{"n":1}']);

      // The memory is by row: the sender's next mail is a new row and is handled.
      await publish(nc, 'rm-from', { to: 'rm-to', n: 2 });
      await waitFor(async () => (await got('rm-to')).length === 2, 'the second mail handled');
      expect(await got('rm-to')).toEqual(['mail:{"n":1}', 'mail:{"n":2}']);
    } finally { sub.unsubscribe(); }
  }, 120_000);

  it('skips a cron firing stored again under a forgotten msgId', async () => {
    await rt.createAgent('rm-cron', 'row-rcpt');
    const seen: Msg[] = [];
    const sub = nc.subscribe('agentry.part.*.rm-cron', { callback: (_e, m) => { if (m.headers?.get('Agentry-Kind') === 'task') seen.push(m); } });
    try {
      const { taskId } = await rt.scheduleTask('rm-cron', { tick: true }, '*/2 * * * * *');
      await waitFor(async () => seen.length >= 1 && (await got('rm-cron')).length >= 1, 'a firing handled', 30_000);
      await rt.cancelTask(taskId);
      await settle('rm-cron');
      const before = await got('rm-cron');
      expect(before.length).toBe(seen.length); // every firing sent was handled once
      await replay(seen[0]!);
      await settle('rm-cron');
      expect(await got('rm-cron')).toEqual(before);
    } finally { sub.unsubscribe(); }
  }, 120_000);
});
