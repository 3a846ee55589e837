// The production NATS users (ops/nats-prod.conf = nats.conf + ops/nats-auth.conf): without
// credentials nothing connects; the runtime user runs the runtime (credentials in NATS_URL); the
// publisher user can put messages into inboxes and events on the bus, and nothing else: in
// particular it reads replies only under its own inbox prefix (`_INBOX_publisher`), never
// `_INBOX.>` where other clients' replies and the runtime's consumer deliveries go.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echo } from '../../examples/echo.js';
import { freePort } from '../../ops/natsServer.js';
import type { Runtime } from '../../runtime/index.js';
import { sleep, startRuntime, tempDir, testNatsServerBinary, waitFor } from '../helpers.js';

let child: ChildProcess;
let port: number;
let dir: ReturnType<typeof tempDir>;
let rt: Runtime;
// Letters first: nats-server's config parser reads a value that looks like a number ("12e5…") as one.
const runtimePassword = `pw${randomBytes(18).toString('hex')}`;
const publisherPassword = `pw${randomBytes(18).toString('hex')}`;
/** The publisher's private inbox prefix (ops/nats-auth.conf); JetStream acks come back under it. */
const PUBLISHER_INBOX = '_INBOX_publisher';

/** A producer's connection, as docs/operations.md tells producers to connect. */
function connectPublisher(): Promise<NatsConnection> {
  return connect({ servers: `127.0.0.1:${port}`, user: 'publisher', pass: publisherPassword, inboxPrefix: PUBLISHER_INBOX });
}

/**
 * Subscribes and resolves with the server's refusal; 'not denied' when none came within 30 s
 * (a generous deadline: a loaded box answers late, and only a refusal passes).
 */
async function subscribeOutcome(nc: NatsConnection, subject: string): Promise<string> {
  const sub = nc.subscribe(subject);
  return Promise.race([sub.closed.then((e) => (e ? String(e) : 'closed')), sleep(30_000).then(() => 'not denied')]);
}

function portOpen(p: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(p, '127.0.0.1');
    const t = setTimeout(() => { s.destroy(); resolve(false); }, 2000); // something that never speaks is no nats-server
    s.once('data', () => { clearTimeout(t); s.destroy(); resolve(true); });
    s.once('error', () => { clearTimeout(t); resolve(false); });
  });
}

beforeAll(async () => {
  dir = tempDir('agentry-nats-auth-');
  // A free port can be taken by another suite's process between the check and the server's
  // bind (seen under a full parallel run): a server that exits is started again on another one.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    const log = join(dir.dir, `nats-${attempt}.log`);
    child = spawn(testNatsServerBinary(), ['-c', join('ops', 'nats-prod.conf'), '-a', '127.0.0.1', '-p', String(port), '-sd', join(dir.dir, 'js'), '-l', log], {
      env: { ...process.env, AGENTRY_NATS_RUNTIME_PASSWORD: runtimePassword, AGENTRY_NATS_PUBLISHER_PASSWORD: publisherPassword },
      stdio: 'ignore',
    });
    const proc = child;
    const up = await waitFor(async () => (proc.exitCode !== null ? 'exited' : (await portOpen(port)) ? 'up' : null), 'nats-server with the production config', 30_000, 50);
    if (up === 'up') break;
    const tail = existsSync(log) ? readFileSync(log, 'utf8').split('\n').slice(-5).join('\n') : '(no log)';
    if (attempt >= 3) throw new Error(`nats-server with ops/nats-prod.conf exited (code ${proc.exitCode}):\n${tail}`);
  }
  // nats.conf ships 64 partitions; the runtime must agree.
  rt = await startRuntime(`nats://runtime:${runtimePassword}@127.0.0.1:${port}`, { agents: [echo], partitions: 64 });
}, 150_000); // up to three server starts of 30 s each, then the runtime

afterAll(async () => {
  await rt?.stop();
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  dir?.cleanup();
});

describe('NATS users of the production config', () => {
  it('refuses connections without credentials or with a wrong password', async () => {
    await expect(connect({ servers: `127.0.0.1:${port}`, reconnect: false })).rejects.toThrow(/Authorization/i);
    await expect(connect({ servers: `127.0.0.1:${port}`, user: 'publisher', pass: 'wrong', reconnect: false })).rejects.toThrow(/Authorization/i);
  });

  it('the runtime runs as `runtime` (credentials in NATS_URL); the publisher feeds inboxes and the event bus', async () => {
    await rt.createAgent('auth-a', 'echo');
    const pub = await connectPublisher();
    try {
      const js = jetstream(pub);
      const ack = await js.publish('agentry.in.auth-a', JSON.stringify({ text: 'from the publisher' }));
      expect(ack.seq).toBeGreaterThan(0);
      await waitFor(async () => (await rt.getHistory('auth-a')).some((h) => (h.body as { text?: string }).text === 'from the publisher'), 'message handled');
      const ev = await js.publish('agentry.events.billing.paid', JSON.stringify({ id: 1 }));
      expect(ev.seq).toBeGreaterThan(0);
    } finally {
      await pub.close();
    }
  });

  it('the publisher cannot publish elsewhere nor subscribe to sessions', async () => {
    const watcher: NatsConnection = await connect({ servers: `127.0.0.1:${port}`, user: 'runtime', pass: runtimePassword });
    const forged: string[] = [];
    watcher.subscribe('agentry.out.auth-a', { callback: (_e, m) => { forged.push(m.string()); } });
    watcher.subscribe('agentry.ctl.>', { callback: (_e, m) => { forged.push(m.string()); } });
    await watcher.flush();
    const pub = await connectPublisher();
    const errors: string[] = [];
    void (async () => { for await (const s of pub.status()) if (s.type === 'error') errors.push(String((s as { error?: unknown }).error)); })();
    try {
      pub.publish('agentry.out.auth-a', 'forged reply');
      pub.publish('agentry.ctl.auth-a', 'forged command');
      await pub.flush();
      const denied = await subscribeOutcome(pub, 'agentry.in.>');
      expect(denied).toMatch(/permission/i);
      await waitFor(() => errors.some((e) => /publish/i.test(e) && /permission/i.test(e)), 'publish permission errors reported', 30_000);
      await sleep(200);
      expect(forged).toEqual([]);
      expect(pub.isClosed()).toBe(false); // violations are refused, the connection stays
    } finally {
      await pub.close();
      await watcher.close();
    }
  });

  it("the publisher cannot read others' replies or the runtime's deliveries (_INBOX.>), only its own prefix", async () => {
    await rt.createAgent('auth-b', 'echo');
    const pub = await connectPublisher();
    try {
      for (const subject of ['_INBOX.>', '_INBOX.*', '>', '_INBOX_runtime.>']) {
        expect(await subscribeOutcome(pub, subject), subject).toMatch(/permission/i);
      }
      // Its own prefix works: JetStream acks arrive, messages are handled, in order.
      const js = jetstream(pub, { timeout: 20_000 });
      const seqs: number[] = [];
      for (let i = 0; i < 5; i++) seqs.push((await js.publish('agentry.in.auth-b', JSON.stringify({ n: i }))).seq);
      expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
      await waitFor(async () => (await rt.getHistory('auth-b')).length >= 5, 'five messages handled');
      const bodies = (await rt.getHistory('auth-b')).map((h) => (h.body as { n: number }).n).sort();
      expect(bodies).toEqual([0, 1, 2, 3, 4]);
      expect(pub.isClosed()).toBe(false);
    } finally {
      await pub.close();
    }
  });

  it('a producer that keeps the default _INBOX prefix gets no acknowledgement (its reply subscription is refused)', async () => {
    const pub = await connect({ servers: `127.0.0.1:${port}`, user: 'publisher', pass: publisherPassword });
    try {
      await expect(jetstream(pub, { timeout: 2000 }).publish('agentry.in.auth-b', JSON.stringify({ n: 'no prefix' }))).rejects.toThrow();
    } finally {
      await pub.close();
    }
  });
});
