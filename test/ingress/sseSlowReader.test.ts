// Issue 11 item 7: an event-stream client that never reads must not keep its slot forever. A
// raw TCP client opens GET /agents/:id/stream and never reads a byte while the session produces
// large replies: once what is queued for it stops draining (kernel buffers full), the server
// closes it and its slot is free again (the streams cap is 2: a third stream is refused until
// then). A reading client on the same session gets every reply, in order, meanwhile.
import { connect as netConnect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineAgent } from '../../actors/index.js';
import { waitFor } from '../helpers.js';
import { startIngressEnv, type IngressEnv } from './env.js';
import { openSse } from './sseClient.js';

/** Replies with a large body per message, so unread output piles up quickly. */
const loud = defineAgent({
  type: 'loud',
  onMessage: 'queue',
  handle(batch, ctx) {
    for (const m of batch) ctx.reply({ n: (m.body as { n: number }).n, pad: 'p'.repeat(256 * 1024) });
    return undefined;
  },
});

let env: IngressEnv;

beforeAll(async () => {
  env = await startIngressEnv('ingress_sse_slow', [loud], {
    controlPlane: { ingress: { maxStreams: 2, streamStallMs: 2000, ratePerSec: 1000, burst: 1000 } },
  });
  await env.rt.createAgent('slow-sse', 'loud');
}, 60_000);

afterAll(async () => {
  await env?.stop();
});

/** Opens the stream over raw TCP and never reads: no 'data' listener, so the socket stays paused. */
function openNonReader(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect(env.cp.port, '127.0.0.1', () => {
      s.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${env.token}\r\nAccept: text/event-stream\r\n\r\n`);
      resolve(s);
    });
    s.on('error', reject);
  });
}

describe('event streams whose client never reads', () => {
  it('are closed once nothing drains for the stall time, freeing the slot; a reading client is unaffected', async () => {
    const url = `${env.cp.url}/agents/slow-sse/stream`;
    const reader = await openSse(url, env.auth);
    expect(reader.status).toBe(200);
    const slow = await openNonReader('/agents/slow-sse/stream');
    slow.on('error', () => undefined); // the server resets it
    // Both slots are taken: a third stream is refused.
    await waitFor(async () => {
      const r = await fetch(url, { headers: env.auth });
      await r.body?.cancel();
      return r.status === 429;
    }, 'the non-reader to hold the second slot', 10_000);

    // Produce output until the non-reader's slot comes free (each round ~2.5 MB of replies).
    let sent = 0;
    let third: Awaited<ReturnType<typeof openSse>> | null = null;
    const deadline = Date.now() + 120_000;
    while (third === null && Date.now() < deadline) {
      for (let i = 0; i < 10; i++) expect((await env.post('/agents/slow-sse/messages', { message: { n: ++sent } })).status).toBe(202);
      await reader.until((ev) => ev.filter((e) => e.event === 'reply').length >= sent, `${sent} replies on the reading stream`, 60_000);
      const x = await openSse(url, env.auth);
      if (x.status === 200) third = x;
      else {
        x.close();
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    expect(third, `the non-reader still holds its slot after ${sent} replies (~${(sent / 4).toFixed(0)} MB)`).not.toBeNull();
    console.log(`non-reading stream closed after ${sent} replies of 256 KiB`);

    // The reading client got every reply, in order, and is still open.
    const ns = reader.events.filter((e) => e.event === 'reply').map((e) => (e.json as { body: { n: number } }).body.n);
    expect(ns).toEqual(Array.from({ length: sent }, (_, i) => i + 1));
    expect(reader.ended).toBe(false);
    // The non-reader, reading at last, finds its connection ended by the server.
    const ended = new Promise<void>((resolve) => { slow.on('close', () => { resolve(); }); });
    slow.resume();
    await ended;
    third!.close();
    reader.close();
    slow.destroy();
  });
});
