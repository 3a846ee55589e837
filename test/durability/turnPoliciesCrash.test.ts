// Turn policies across kill -9: a runtime in a child process (the compiled build) handles
// sessions of the policies crash.test.ts does not cover — latest, reject, debounce, rollback —
// while a producer publishes to them at a pace that lands messages in running turns, and is
// SIGKILLed mid-work and restarted against the same nats-server and Postgres schema. Afterwards,
// message by message from the store: every published message has exactly one history row (a
// fate decided and committed once: a redelivered superseded, rejected or rolled-back message is
// skipped as applied, never settled or applied twice), the messages applied are exactly the
// `ok` rows, once each and in order, every refusal has its dead letter `busy`, and the newest
// message of each session was applied (the oldest, under reject).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { snapshotContext } from '../../actors/index.js';
import { natsClient, sleep, startNats, tempDir, waitFor } from '../helpers.js';
import { storeBackends, type StoreBackend } from './backends.js';
import { assertBuildIsFresh, startChild, tail, type ChildConfig, type ChildRuntime } from './childRuntime.js';

const PARTITIONS = 8;
const PER_POLICY = 20;
const MESSAGES = 20;
const KILLS = 2;
const TYPES = { latest: 'rec-latest', reject: 'rec-reject', debounce: 'rec-debounce', rollback: 'rec-rollback' } as const;
type Policy = keyof typeof TYPES;
const ALLOWED: Record<Policy, string[]> = { latest: ['ok', 'superseded'], reject: ['ok', 'rejected'], debounce: ['ok'], rollback: ['ok', 'rolled-back'] };

describe.each(storeBackends('tp_crash').filter(([name]) => name === 'postgres'))('turn policies across SIGKILL on %s', (name, makeBackend) => {
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
  const unacked = async (): Promise<number> => (await (await jetstreamManager(nc)).streams.info('AGENTRY_INBOX')).state.messages;

  beforeAll(async () => {
    assertBuildIsFresh();
    nats = await startNats(PARTITIONS);
    nc = await natsClient(nats.url);
    backend = makeBackend();
    logs = tempDir(`agentry-tp-crash-logs-${name}-`);
    cfg = { natsUrl: nats.url, partitions: PARTITIONS, ctlSubject: `test.ctl.tpcrash.${name}`, ...backend.childConfig };
  });

  afterAll(async () => {
    await child?.kill();
    await nc?.close();
    await nats?.cleanup();
    await backend?.cleanup();
    logs?.cleanup();
  });

  it(`SIGKILLed ${KILLS} times mid-turn: every message of latest/reject/debounce/rollback sessions settled once, applied ones once and in order`, async () => {
    const sessions = (Object.keys(TYPES) as Policy[]).flatMap((p) => Array.from({ length: PER_POLICY }, (_, i) => ({ sid: `tpc-${p}-${i}`, policy: p })));
    await start();
    await Promise.all(sessions.map((s) => child!.ctl('createAgent', s.sid, TYPES[s.policy])));

    const published = new Map<string, number[]>(sessions.map((s) => [s.sid, []]));
    const pub = await natsClient(nats.url);
    const js = jetstream(pub);
    let round = 0;
    // Rounds every ~20 ms (the recorders work 0-2 ms a turn, debounce waits 20 ms): messages
    // land in running turns and debounce waits. One connection keeps each session's order.
    const publishRound = async (): Promise<void> => {
      const i = round++;
      const acks = await Promise.all(sessions.map(async (s) => {
        const h = natsHeaders();
        h.set('Agentry-Kind', 'message');
        return [s.sid, (await js.publish(`agentry.in.${s.sid}`, JSON.stringify({ i }), { headers: h })).seq] as const;
      }));
      for (const [sid, seq] of acks) published.get(sid)!.push(seq);
      await sleep(20);
    };

    const kills: { afterRound: number; unackedAfter: number }[] = [];
    for (let k = 0; k < KILLS; k++) {
      const upTo = Math.floor(((k + 1) * MESSAGES) / (KILLS + 1));
      while (round < upTo) await publishRound();
      await waitFor(async () => (await child!.ctl<{ stats: { commits: number } }>('ping')).stats.commits > 0, 'this incarnation to commit', 60_000, 50);
      // Publish one more round without waiting for it: the kill lands while it is handled.
      const inFlight = publishRound();
      await sleep(Math.floor(Math.random() * 40));
      await child!.kill();
      await inFlight;
      kills.push({ afterRound: round, unackedAfter: await unacked() });
      await start();
    }
    while (round < MESSAGES) await publishRound();
    await pub.close();

    await waitFor(async () => (await unacked()) === 0, 'the inbox stream to drain', 120_000, 100);
    expect(await child!.stop(), tail(join(logs.dir, `child-${incarnation - 1}.log`))).toBe(0);
    child = undefined;
    console.log(`[turn policies crash ${name}] kills: ${JSON.stringify(kills)}`);
    expect(Math.max(...kills.map((k) => k.unackedAfter))).toBeGreaterThan(0);

    const store = backend.open();
    try {
      const wrong: string[] = [];
      const fatesSeen = new Map<Policy, Set<string>>();
      const busy = new Set((await store.listDeadLetters({ limit: 100_000 })).filter((d) => d.reason === 'busy').map((d) => d.id));
      for (const s of sessions) {
        const rec = await store.loadSession(s.sid);
        const seen = rec ? (snapshotContext(rec.snapshot).userState as { seen: unknown[] }).seen : null;
        const hist = (await store.getHistory(s.sid, { limit: 1000 })).reverse();
        const seqs = published.get(s.sid)!;
        const f = fatesSeen.get(s.policy) ?? new Set<string>();
        fatesSeen.set(s.policy, f);
        for (const h of hist) f.add(h.outcome);
        const ok = hist.filter((h) => h.outcome === 'ok').map((h) => (h.body as { i: number }).i);
        const problems = [
          (rec === null || rec.status !== 'idle' || rec.lastSeq !== seqs.at(-1)) && `status=${rec?.status} lastSeq=${rec?.lastSeq}/${seqs.at(-1)}`,
          JSON.stringify(hist.map((h) => h.seq)) !== JSON.stringify(seqs) && `history seqs ${JSON.stringify(hist.map((h) => h.seq))} vs published ${JSON.stringify(seqs)}`,
          JSON.stringify(seen) !== JSON.stringify(ok) && `seen ${JSON.stringify(seen)} vs ok rows ${JSON.stringify(ok)}`,
          hist.some((h) => !ALLOWED[s.policy].includes(h.outcome)) && `outcomes ${JSON.stringify(hist.map((h) => h.outcome))}`,
          hist.some((h) => h.outcome === 'rejected' && !busy.has(`${s.sid}:${h.seq}`)) && 'a rejected message without its dead letter',
          s.policy !== 'reject' && hist.at(-1)?.outcome !== 'ok' && 'newest message not applied',
          s.policy === 'reject' && hist[0]?.outcome !== 'ok' && 'oldest message not applied',
        ].filter(Boolean);
        if (problems.length > 0) wrong.push(`${s.sid}: ${problems.join('; ')}`);
      }
      console.log(`[turn policies crash ${name}] outcomes seen: ${JSON.stringify(Object.fromEntries([...fatesSeen].map(([p, f]) => [p, [...f].sort()])))}`);
      expect(wrong.slice(0, 5), `${wrong.length} sessions differ`).toEqual([]);
    } finally {
      await store.close();
    }
  }, 240_000);
});
