// Issue 5, proof 3: a subscriber that stops reading is disconnected once the bytes it left
// unread pass the cap, while a reading subscriber on the same session gets every notification
// in order and other clients keep working; a socket that stops answering pings is reaped.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echo } from '../../examples/echo.js';
import { startControlPlane, type ControlPlane, type Runtime } from '../../runtime/index.js';
import { natsClient, sleep, startNats, waitFor, startStack, type Stack } from '../helpers.js';
import { RawRpc } from './rawRpc.js';

type Nats = Awaited<ReturnType<typeof startNats>>;
let nats: Nats;
let stack: Stack;
let rt: Runtime;
let cp: ControlPlane;

const CAP = 1024 * 1024;

/** The value of one sample in Prometheus text, or 0 when absent. */
async function metric(url: string, sample: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(sample + ' '));
  return line ? Number(line.slice(sample.length + 1)) : 0;
}

beforeAll(async () => {
  stack = await startStack('control_slow', { agents: [echo] });
  ({ nats, rt } = stack);
  cp = await startControlPlane(rt, { port: 0, maxBufferedBytes: CAP });
});

afterAll(async () => {
  await cp?.close();
  await stack?.stop();
});

describe('slow readers and dead sockets', () => {
  it('disconnects a subscriber that never reads at the buffer cap; a reading subscriber and other clients are unaffected', async () => {
    const slow = await RawRpc.open(cp.rpcUrl);
    const fast = await RawRpc.open(cp.rpcUrl);
    const bystander = await RawRpc.open(cp.rpcUrl);
    const sSub = await slow.ok('subscribe', { agentId: 'flood', kinds: ['output'] });
    const fSub = await fast.ok('subscribe', { agentId: 'flood', kinds: ['output'] });
    slow.ws.pause(); // stop reading: the kernel buffers fill, then the server's send buffer grows

    const nc = await natsClient(nats.url);
    const chunk = JSON.stringify({ text: 'z'.repeat(64 * 1024) });
    let published = 0;
    let killed = 0;
    while (published < 4000) {
      for (let i = 0; i < 50; i++) nc.publish('agentry.out.flood', chunk, undefined);
      published += 50;
      await nc.flush();
      // Pace by the reading subscriber, so the runtime's own NATS connection never falls behind.
      await fast.waitFor(() => (fast.notifications.length >= published ? true : undefined), 30_000);
      expect((await bystander.ok('ping')).pong).toBe(true);
      killed = await metric(cp.url, 'agentry_ws_server_disconnects_total{reason="slow_consumer"}');
      if (killed > 0) break;
    }
    expect(killed).toBe(1);
    const mb = (published * chunk.length) / 1024 / 1024;
    console.log(`slow reader closed after ${published} notifications (~${mb.toFixed(0)} MB; cap ${CAP / 1024 / 1024} MiB plus kernel buffers)`);

    // Keep going a little: the reader still gets everything, in order, without gaps.
    for (let i = 0; i < 50; i++) nc.publish('agentry.out.flood', chunk);
    published += 50;
    await nc.flush();
    await fast.waitFor(() => (fast.notifications.length >= published ? true : undefined), 30_000);
    const seqs = fast.notifications.filter((n) => n.params.subscriptionId === fSub.subscriptionId).map((n) => n.params.seq);
    expect(seqs).toEqual(Array.from({ length: published }, (_, i) => i + 1));
    expect(fast.closeCode).toBeNull();
    expect((await fast.ok('ping')).pong).toBe(true);
    expect((await bystander.err('getAgent', { agentId: 'nobody' })).data.type).toBe('UNKNOWN_SESSION');

    // The slow client, reading again, finds its connection gone after what was already in flight.
    slow.ws.resume();
    await waitFor(() => slow.closeCode !== null, 'slow socket to report its close', 20_000);
    const got = slow.notifications.filter((n) => n.params.subscriptionId === sSub.subscriptionId).length;
    expect(got).toBeLessThan(published);
    expect(slow.closeCode).toBe(1006); // terminated: no close handshake with a peer that does not read
    await nc.close();
    fast.close();
    bystander.close();
  }, 120_000);

  it('reaps a socket that stops answering pings; live sockets stay', async () => {
    const hb = await startControlPlane(rt, { port: 0, heartbeatMs: 200 });
    try {
      const dead = await RawRpc.open(hb.rpcUrl);
      const alive = await RawRpc.open(hb.rpcUrl);
      dead.ws.pause(); // a paused ws client does not see pings, so it never answers them
      await waitFor(async () => (await metric(hb.url, 'agentry_ws_server_disconnects_total{reason="heartbeat"}')) === 1, 'heartbeat reaping', 60_000);
      await sleep(600); // three more heartbeats: the live socket answers them
      expect((await alive.ok('ping')).pong).toBe(true);
      expect(await metric(hb.url, 'agentry_ws_connections')).toBe(1);
      alive.close();
      dead.close();
    } finally {
      await hb.close();
    }
  });
});
