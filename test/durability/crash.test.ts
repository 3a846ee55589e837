// Crash recovery: a runtime in a child process is SIGKILLed at random points while 300
// sessions × 50 messages flow through it, and restarted against the same nats-server and the
// same store. Every session must end with each message applied exactly once, in order. Then a
// sleeping session is killed and restarted and must keep its wake conditions.
//
// Runs on Postgres (fresh schema) and on PGlite (temp dataDir). Finding recorded here: a PGlite
// data directory whose process was SIGKILLed reopens cleanly (Postgres' WAL recovery runs on
// open) and keeps every committed transaction, checked by this suite three times per run. What
// SIGKILL cannot show is an OS crash or power loss: PGlite does not promise fsync durability.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { snapshotContext } from '../../actors/index.js';
import type { SessionView } from '../../runtime/index.js';
import { natsClient, sleep, startNats, tempDir, waitFor } from '../helpers.js';
import { storeBackends, type StoreBackend } from './backends.js';
import { assertBuildIsFresh, startChild, tail, type ChildConfig, type ChildRuntime } from './childRuntime.js';

const PARTITIONS = 8;
const QUEUE_SESSIONS = 200; // rec-queue, created on first message by the default agent type
const MERGE_SESSIONS = 100; // rec-merge (cancel-and-merge), created with createAgent
const MESSAGES = 50;
const KILLS = 3;

describe.each(storeBackends('crash'))('crash recovery on %s', (name, makeBackend) => {
  let nats: Awaited<ReturnType<typeof startNats>>;
  let nc: NatsConnection;
  let backend: StoreBackend;
  let logs: ReturnType<typeof tempDir>;
  let child: ChildRuntime | undefined;
  let cfg: ChildConfig;
  let incarnation = 0;

  const start = async (): Promise<ChildRuntime> => {
    child = await startChild(nc, cfg, join(logs.dir, `child-${incarnation++}.log`));
    return child;
  };
  /** Messages still in the work-queue inbox stream: published and not yet acked. */
  const unacked = async (): Promise<number> => (await (await jetstreamManager(nc)).streams.info('AGENTRY_INBOX')).state.messages;

  beforeAll(async () => {
    assertBuildIsFresh();
    nats = await startNats(PARTITIONS);
    nc = await natsClient(nats.url);
    backend = makeBackend();
    logs = tempDir(`agentry-crash-logs-${name}-`);
    cfg = { natsUrl: nats.url, partitions: PARTITIONS, ctlSubject: `test.ctl.crash.${name}`, defaultAgentType: 'rec-queue', ...backend.childConfig };
  });

  afterAll(async () => {
    await child?.kill();
    await nc?.close();
    await nats?.cleanup();
    await backend?.cleanup();
    logs?.cleanup();
  });

  it(`SIGKILLed ${KILLS} times while handling ${QUEUE_SESSIONS + MERGE_SESSIONS} sessions × ${MESSAGES} messages: each message applied exactly once, in order`, async () => {
    const queue = Array.from({ length: QUEUE_SESSIONS }, (_, i) => `q-${i}`);
    const merge = Array.from({ length: MERGE_SESSIONS }, (_, i) => `m-${i}`);
    const sessions = [...queue, ...merge];

    await start();
    await Promise.all(merge.map((sid) => child!.ctl('createAgent', sid, 'rec-merge')));

    // The publisher runs on its own connection for the whole test, paced (~100 ms a round), and
    // holds its last rounds back until the last kill: every kill lands while messages are
    // arriving and being handled, wherever the random delays put it.
    const published = new Map<string, number[]>(sessions.map((s) => [s, []]));
    const pub = await natsClient(nats.url);
    const js = jetstream(pub);
    // The last KILLS + 2 rounds wait for a token each: one is released per incarnation (so each one
    // that gets killed has work to commit first), the rest after the last kill.
    const HELD = KILLS + 2;
    let tokens = 0;
    const tokenWaiters: (() => void)[] = [];
    const release = (n: number): void => { tokens += n; while (tokens > 0 && tokenWaiters.length > 0) { tokens--; tokenWaiters.shift()!(); } };
    const take = (): Promise<void> => {
      if (tokens > 0) { tokens--; return Promise.resolve(); }
      return new Promise((r) => tokenWaiters.push(r));
    };
    const publishing = (async () => {
      for (let i = 0; i < MESSAGES; i++) {
        if (i >= MESSAGES - HELD) await take();
        const round = sessions.map(async (sid) => {
          const h = natsHeaders();
          h.set('Agentry-Kind', 'message');
          const ack = await js.publish(`agentry.in.${sid}`, JSON.stringify({ i }), { headers: h });
          return [sid, ack.seq] as const;
        });
        // One connection keeps publish order, so per session the seqs follow i.
        for (const [sid, seq] of await Promise.all(round)) published.get(sid)!.push(seq);
        await sleep(80);
      }
    })();

    const kills: { afterMs: number; commitsBefore: number; unackedAfter: number }[] = [];
    for (let k = 0; k < KILLS; k++) {
      // The kill must land mid-work: give this incarnation a round of its own, wait for its first
      // commit (PGlite can take a while to open), then a random 0.5–2 s more.
      release(1);
      await waitFor(async () => (await child!.ctl<{ stats: { commits: number } }>('ping')).stats.commits > 0, 'the first commit of this incarnation', 60_000, 50);
      const afterMs = 500 + Math.floor(Math.random() * 1500);
      await sleep(afterMs);
      const { stats } = await child!.ctl<{ stats: { commits: number } }>('ping');
      await child!.kill();
      kills.push({ afterMs, commitsBefore: stats.commits, unackedAfter: await unacked() });
      await start();
    }
    release(HELD - KILLS);
    await publishing;
    await pub.close();

    // Acks come only after commits, and a work-queue stream deletes what is acked: empty = done.
    await waitFor(async () => (await unacked()) === 0, 'the inbox stream to drain', 120_000, 100);
    const last = await child!.ctl<{ stats: Record<string, number> }>('ping');
    expect(await child!.stop(), tail(join(logs.dir, `child-${incarnation - 1}.log`))).toBe(0);
    child = undefined;
    console.log(`[crash ${name}] kills: ${JSON.stringify(kills)}; last incarnation: ${JSON.stringify(last.stats)}`);
    // Every killed incarnation had been committing work (the producer was still publishing:
    // its last rounds wait for the last kill), and at least one died holding unacked messages
    // that a later incarnation had to take over (whether each did depends on where the random
    // delay fell relative to the producer's pace, so that is not asserted per kill).
    for (const kill of kills) expect(kill.commitsBefore).toBeGreaterThan(0);
    expect(Math.max(...kills.map((k) => k.unackedAfter))).toBeGreaterThan(0);

    const store = backend.open();
    try {
      const expected = Array.from({ length: MESSAGES }, (_, i) => i);
      const wrong: string[] = [];
      for (const sid of sessions) {
        const rec = await store.loadSession(sid);
        const seen = rec ? (snapshotContext(rec.snapshot).userState as { seen: unknown[] }).seen : null;
        const hist = (await store.getHistory(sid, { limit: 1000 })).reverse();
        const seqs = published.get(sid)!;
        const ok = rec !== null && rec.status === 'idle' && rec.type === (sid.startsWith('q-') ? 'rec-queue' : 'rec-merge') &&
          JSON.stringify(seen) === JSON.stringify(expected) && rec.lastSeq === seqs.at(-1) &&
          JSON.stringify(hist.map((h) => h.seq)) === JSON.stringify(seqs) &&
          JSON.stringify(hist.map((h) => (h.body as { i: number }).i)) === JSON.stringify(expected) &&
          hist.every((h) => h.outcome === 'ok');
        if (!ok) wrong.push(`${sid}: status=${rec?.status} lastSeq=${rec?.lastSeq}/${seqs.at(-1)} seen=${JSON.stringify(seen)} history=${JSON.stringify(hist.map((h) => [h.seq, h.body, h.outcome]))}`);
      }
      expect(wrong.slice(0, 5), `${wrong.length} sessions differ`).toEqual([]);
    } finally {
      await store.close();
    }
  }, 180_000);

  it('a sleeping session keeps its wake conditions and deferred mail across a SIGKILL', async () => {
    const c = child ?? await start();
    const pub = await natsClient(nats.url);
    const js = jetstream(pub);
    const send = async (sid: string, body: unknown, kind: string, priority = 'normal'): Promise<void> => {
      const h = natsHeaders();
      h.set('Agentry-Kind', kind);
      h.set('Agentry-Priority', priority);
      await js.publish(`agentry.in.${sid}`, JSON.stringify(body), { headers: h });
    };
    try {
      await c.ctl('createAgent', 'sleeper', 'rec-queue');
      await send('sleeper', { i: 0 }, 'message');
      await waitFor(async () => (await c.ctl<SessionView>('getAgent', 'sleeper')).lastSeq > 0, 'the first message to be handled');
      const until = Date.now() + 30 * 24 * 3600_000;
      const slept = await c.ctl<SessionView>('sleepAgent', 'sleeper', { untilTime: until, wakeOnMailPriority: 'high', wakeEvents: ['invoice.paid'] });
      expect(slept.state).toBe('sleeping');
      await send('sleeper', { i: 'normal-mail' }, 'mail', 'normal'); // below the threshold: deferred
      const before = await waitFor(async () => {
        const v = await c.ctl<SessionView>('getAgent', 'sleeper');
        return v.mailbox.deferred.length === 1 ? v : null;
      }, 'the normal mail to be deferred');
      expect(before.wake).toEqual({ until, events: ['invoice.paid'], mailPriority: 'high' });
      // Kill only once the deferral is committed (it is acked then): a deferral still in flight
      // would be redelivered and deferred again, with a new receive time.
      await waitFor(async () => {
        const rec = await c.ctl<{ snapshot: unknown } | null>('loadSession', 'sleeper');
        return rec !== null && snapshotContext(rec.snapshot).deferred.length === 1;
      }, 'the deferral to be committed');

      await c.kill();
      const c2 = await start();
      const after = await c2.ctl<SessionView>('getAgent', 'sleeper');
      const durable = (v: SessionView) => ({ type: v.type, state: v.state, stateValue: v.stateValue, userState: v.userState, lastSeq: v.lastSeq, wake: v.wake, wait: v.wait, mailbox: v.mailbox, lastError: v.lastError });
      expect(durable(after)).toEqual(durable(before));

      // The conditions still act: low mail is deferred too, high mail wakes it, and the handler
      // gets the wake record, then the deferred mail oldest first, then the waking mail.
      await send('sleeper', { i: 'low-mail' }, 'mail', 'low');
      await waitFor(async () => (await c2.ctl<SessionView>('getAgent', 'sleeper')).mailbox.deferred.length === 2, 'the low mail to be deferred');
      expect((await c2.ctl<SessionView>('getAgent', 'sleeper')).state).toBe('sleeping');
      await send('sleeper', { i: 'high-mail' }, 'mail', 'high');
      const woke = await waitFor(async () => {
        const v = await c2.ctl<SessionView>('getAgent', 'sleeper');
        return v.state === 'idle' && (v.userState as { seen: unknown[] }).seen.length === 5 ? v : null;
      }, 'the high mail to wake the session and its batch to run');
      expect((woke.userState as { seen: unknown[] }).seen).toEqual([0, 'wake:mail', 'normal-mail', 'low-mail', 'high-mail']);
      expect(woke.wake).toBeNull();
    } finally {
      await pub.close();
    }
  }, 60_000);
});
