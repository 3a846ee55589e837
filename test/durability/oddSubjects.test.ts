// Producers can put almost anything in a subject token: an id too long, reserved, with a NUL,
// with bytes that are not UTF-8 (raw protocol), or merely unusual (quotes, non-ASCII letters).
// Each message must either reach its session or cost one dead letter, and nothing else: the
// partition goes on with the next message, nothing is left unacked.
import { createConnection } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { defineAgent } from '../../actors/index.js';
import { natsClient, publish, startStack, waitFor, type Stack } from '../helpers.js';

const seen = new Map<string, unknown[]>();
const rec = defineAgent({
  type: 'odd-rec',
  onMessage: 'queue',
  handle(batch, ctx) {
    for (const m of batch) seen.set(ctx.sessionId, [...(seen.get(ctx.sessionId) ?? []), (m.body as { i?: unknown }).i ?? m.body]);
  },
});

/** Publishes `payload` on a subject given as raw bytes, over the plain protocol (no client library to re-encode it). */
async function rawPublish(port: number, subject: Buffer, payload: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const sock = createConnection({ host: '127.0.0.1', port }, () => {
      sock.write('CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\n');
      sock.write(Buffer.concat([Buffer.from('PUB '), subject, Buffer.from(` ${Buffer.byteLength(payload)}\r\n${payload}\r\nPING\r\n`)]));
    });
    let got = '';
    sock.on('data', (d) => { got += d.toString('latin1'); if (got.includes('PONG')) { sock.end(); resolve(); } });
    sock.on('error', reject);
    setTimeout(() => { sock.destroy(); reject(new Error(`raw publish: no PONG (${got.slice(0, 200)})`)); }, 10_000).unref();
  });
}

describe('odd subjects', () => {
  let stack: Stack;
  beforeAll(async () => { stack = await startStack('oddsubj', { agents: [rec], config: { defaultAgentType: 'odd-rec' } }); }, 60_000);
  afterAll(async () => { await stack?.stop(); });

  it('each message reaches its session or is one dead letter; nothing stays unacked', async () => {
    const nc = await natsClient(stack.nats.url);
    try {
      const bad = ['x'.repeat(129), '$reserved', 'a\u0000b', 'tab\u0001x'];
      const good = ['é-ü', 'a"b\\c', "o'brien"];
      for (const id of bad) await publish(nc, id, { i: 1 });
      for (const id of good) await publish(nc, id, { i: 1 });
      // Not UTF-8: the client decodes it as U+FFFD, whose bytes hash to another partition than the server's mapping used.
      const port = Number(new URL(stack.nats.url).port);
      await rawPublish(port, Buffer.concat([Buffer.from('agentry.in.ab'), Buffer.from([0xff, 0xfe])]), '{"i":1}');
      for (const id of good) await publish(nc, id, { i: 2 });
      await waitFor(() => good.every((id) => (seen.get(id)?.length ?? 0) >= 2) || null, `every good session handled its messages (${JSON.stringify([...seen])})`, 30_000, 50);
      expect(good.map((id) => seen.get(id))).toEqual(good.map(() => [1, 2]));
      const jsm = await jetstreamManager(nc);
      await waitFor(async () => (await jsm.streams.info(stack.rt.transport.inboxStream)).state.messages === 0 || null, 'the inbox to be empty (everything acked)', 30_000, 100);
      const dls = await stack.store.listDeadLetters();
      // One dead letter per bad id; the non-UTF-8 one either reached a session of its own or is one dead letter.
      expect(dls.filter((d) => d.reason === 'invalid-session-id').length).toBe(bad.length);
      const odd = dls.filter((d) => d.reason !== 'invalid-session-id');
      expect(odd.length + (seen.has('ab\ufffd') ? 1 : 0)).toBe(1);
    } finally {
      await nc.close();
    }
  }, 120_000);
});
