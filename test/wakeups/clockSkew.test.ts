// Two runtime processes on one NATS server and one Postgres whose wall clocks disagree: one runs
// 20 s ahead, the other 20 s behind (the preload test/fixtures/skewClock.mjs shifts Date.now,
// new Date() and performance.timeOrigin; the monotonic clock and timers are untouched, as on a
// host whose NTP is broken). Sleepers are set on both, with a due time the test gives (in its own
// time, which is Postgres' too: same host) and with a duration the node turns into a due time;
// then the ahead node is SIGKILLed and the behind node fires what was set on it. Every wake is
// recorded with the real (unshifted) time it ran: none may be early, none more than LATE_MS late.
// A cron task every 2 s on each node (the ahead node's taken over by the behind one) likewise.
// Before runtime/storeClock.ts each node fired by its own wall clock: the ahead node fired 20 s
// early, the behind one 20 s late, and a duration set on the ahead node and fired on the behind
// one came 40 s late.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import type { SessionRecord } from '../../persistence/types.js';
import { partitionOf } from '../../runtime/index.js';
import { assertBuildIsFresh, startChild, tail, type ChildConfig, type ChildRuntime } from '../durability/childRuntime.js';
import { PG_URL, dropSchema, natsClient, schemaName, sleep, startNats, tempDir, waitFor } from '../helpers.js';

const PARTS = 4;
const SKEW_MS = 20_000;
/** Generous for a busy 2-core machine; the fault it catches is 20 s. Early is never allowed. */
const LATE_MS = 5_000;

type Nats = Awaited<ReturnType<typeof startNats>>;
let nats: Nats;
let nc: NatsConnection;
let schema: string;
const logs = tempDir('agentry-clockskew-');
const nodes: ChildRuntime[] = [];

interface Wake { at: number; reason: string | null; i: number | null; until: number | null; real: number }
/**
 * One sleeper: when it must wake (by the store's clock, which is the test's), and for a duration,
 * how far the due time the node set is off the test's time of the request plus the duration.
 */
interface Sleeper { sid: string; node: string; how: 'until' | 'duration'; dueAt: number; setOffMs: number; rightDueAt: number }

/** The wakes a `rec-sleep` session recorded in its committed state. */
const wakesIn = (rec: SessionRecord | null): Wake[] => (rec?.snapshot as { context?: { userState?: { wakes?: Wake[] } } } | undefined)?.context?.userState?.wakes ?? [];

const cfgOf = (id: string, skew: number): ChildConfig => ({
  natsUrl: nats.url, partitions: PARTS, ctlSubject: `test.ctl.${schema}.${id}`, databaseUrl: PG_URL, schema,
  clockSkewMs: skew, extra: { nodeId: id, leaseTtlMs: 2000 },
});
const logOf = (id: string): string => join(logs.dir, `${id}.log`);

beforeAll(async () => {
  assertBuildIsFresh();
  nats = await startNats(PARTS);
  nc = await natsClient(nats.url);
  schema = schemaName('clockskew');
});

afterAll(async () => {
  for (const n of nodes) if (!n.exited()) await n.kill();
  await nc?.close();
  await nats?.cleanup();
  if (schema) await dropSchema(schema);
  logs.cleanup();
});

const owned = async (n: ChildRuntime): Promise<number[]> => (await n.ctl<{ owned: number[] | null }>('ping')).owned ?? [];

/** Session ids of the given partitions, `count` of them. */
function sessionsOn(parts: readonly number[], prefix: string, count: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < count; i++) if (parts.includes(partitionOf(`${prefix}-${i}`, PARTS))) out.push(`${prefix}-${i}`);
  return out;
}

/** Puts `sid` to sleep on `n`: until `Date.now() + ms` as the test reckons it, or for `ms` as the node reckons it. */
async function putToSleep(n: ChildRuntime, node: string, sid: string, how: 'until' | 'duration', ms: number): Promise<Sleeper> {
  await n.ctl('createAgent', sid, 'rec-sleep');
  if (how === 'until') {
    const dueAt = Date.now() + ms;
    await n.ctl('sendMessage', sid, { i: 1, sleepUntil: dueAt });
    // Asleep, or (a node that fires early: the old code) woken already.
    await waitFor(async () => {
      const rec = await n.ctl<SessionRecord>('loadSession', sid);
      return rec.status === 'sleeping' || wakesIn(rec).some((w) => w.reason === 'time');
    }, `${sid} asleep`);
    return { sid, node, how, dueAt, setOffMs: 0, rightDueAt: dueAt };
  }
  const asked = Date.now();
  const r = await n.ctl<{ state: string; wake: { until: number | null } | null }>('sleepAgent', sid, { durationMs: ms });
  const answered = Date.now();
  expect(r.state).toBe('sleeping');
  const dueAt = r.wake?.until ?? NaN;
  // The node turned the duration into a due time by its clock: it must be the store's (the
  // test's) time of the request plus the duration (0 when within the request's round trip).
  const setOffMs = dueAt > answered + ms ? dueAt - (answered + ms) : dueAt < asked + ms ? dueAt - (asked + ms) : 0;
  return { sid, node, how, dueAt, setOffMs, rightDueAt: answered + ms };
}

/**
 * Waits until every sleeper recorded its timer's wake, or until the last right due time (not one
 * a skewed node set) plus LATE_MS (and a little to read it) passed; returns each one's wake as
 * recorded (null: none yet).
 */
async function wakesOf(reader: () => ChildRuntime, sleepers: readonly Sleeper[]): Promise<Map<string, Wake | null>> {
  const deadline = Math.max(...sleepers.map((s) => s.rightDueAt)) + LATE_MS + 2_000;
  const out = new Map<string, Wake | null>();
  for (;;) {
    for (const s of sleepers) {
      const rec = await reader().ctl<SessionRecord | null>('loadSession', s.sid);
      out.set(s.sid, wakesIn(rec).find((w) => w.reason === 'time') ?? null);
    }
    if ([...out.values()].every((w) => w !== null) || Date.now() > deadline) return out;
    await sleep(100);
  }
}

/**
 * What went wrong with each sleeper (none may wake before its due time, none LATE_MS after it, a
 * due time set from a duration must be the request's time plus it, within a second), and a line
 * per sleeper for the report.
 */
function judge(sleepers: readonly Sleeper[], wakes: Map<string, Wake | null>): { lines: string[]; problems: string[] } {
  const lines: string[] = [];
  const problems: string[] = [];
  for (const s of sleepers) {
    const w = wakes.get(s.sid);
    const what = `${s.sid} (${s.how}, set on ${s.node})`;
    const set = s.how === 'duration' ? `, due time set ${s.setOffMs} ms off` : '';
    lines.push(w ? `${what}: woke ${w.real - s.dueAt} ms after its due time${set}` : `${what}: not woken by ${LATE_MS} ms after its due time${set}`);
    if (Math.abs(s.setOffMs) > 1000) problems.push(`${what}: due time set ${s.setOffMs} ms off`);
    if (!w) problems.push(`${what}: not woken within ${LATE_MS} ms of its due time`);
    else if (w.real < s.dueAt) problems.push(`${what}: woke ${s.dueAt - w.real} ms early`);
    else if (w.real - s.dueAt >= LATE_MS) problems.push(`${what}: woke ${w.real - s.dueAt} ms late`);
  }
  return { lines, problems };
}

describe('nodes whose wall clocks disagree by 40 s', () => {
  it('fire sleepers by the store\'s clock: none early, none late, also after a failover from the ahead node to the behind one', async () => {
    const t0 = Date.now();
    const ahead = await startChild(nc, cfgOf('ahead', SKEW_MS), logOf('ahead'));
    nodes.push(ahead);
    const behind = await startChild(nc, cfgOf('behind', -SKEW_MS), logOf('behind'));
    nodes.push(behind);
    await waitFor(async () => (await owned(ahead)).length === PARTS / 2 && (await owned(behind)).length === PARTS / 2, 'the partitions split between the nodes', 30_000, 100);
    const aheadParts = await owned(ahead);
    const behindParts = await owned(behind);

    // A cron task every 2 s on each node (the ahead one's moves to the behind one at the failover).
    const [ca] = sessionsOn(aheadParts, 'ca', 1);
    const [cb] = sessionsOn(behindParts, 'cb', 1);
    for (const [n, sid] of [[ahead, ca!], [behind, cb!]] as const) {
      await n.ctl('createAgent', sid, 'rec-mailbox');
      await n.ctl('scheduleTask', sid, { tick: true }, '*/2 * * * * *');
    }

    // Both alive: each fires its own sleepers.
    const [ua, da] = sessionsOn(aheadParts, 'a1', 2);
    const [ub, db] = sessionsOn(behindParts, 'b1', 2);
    const first = await Promise.all([
      putToSleep(ahead, 'ahead', ua!, 'until', 4_000), putToSleep(ahead, 'ahead', da!, 'duration', 4_000),
      putToSleep(behind, 'behind', ub!, 'until', 4_000), putToSleep(behind, 'behind', db!, 'duration', 4_000),
    ]);
    const both = judge(first, await wakesOf(() => behind, first));

    type Status = { source: string; offsetMs: number | null; uncertaintyMs: number | null } | null;
    const aheadStatus = await ahead.ctl<Status>('clockStatus');

    // Set on the ahead node, which is then SIGKILLed: the behind node takes its partitions and fires them.
    const [uf, df] = sessionsOn(aheadParts, 'a2', 2);
    // Due well after the takeover (lease TTL 2 s), even on a loaded machine.
    const second = await Promise.all([putToSleep(ahead, 'ahead', uf!, 'until', 12_000), putToSleep(ahead, 'ahead', df!, 'duration', 12_000)]);
    const killedAt = Date.now();
    await ahead.kill();
    await waitFor(async () => (await owned(behind)).length === PARTS, 'the behind node to take the ahead node\'s partitions', 20_000, 100);
    const tookOverAt = Date.now();
    const failover = judge(second, await wakesOf(() => behind, second));

    // Every cron firing handled so far (by either node): at or after the time it was scheduled for, not LATE_MS after.
    const cron: string[] = [];
    for (const sid of [ca!, cb!]) {
      const rec = await behind.ctl<SessionRecord | null>('loadSession', sid);
      const fires = (rec?.snapshot as { context?: { userState?: { fires?: [number, number, number][] } } } | undefined)?.context?.userState?.fires ?? [];
      const offs = fires.map(([due, , real]) => real - due);
      // A firing due while no node owned the task (between the kill and the takeover) fires at the takeover: not judged late.
      const late = fires.filter(([due]) => due < killedAt || due > tookOverAt).map(([due, , real]) => real - due);
      both.lines.push(`${sid} (cron every 2 s): ${fires.length} firings, handled ${offs.length ? `${Math.min(...offs)} to ${Math.max(...offs)}` : '-'} ms after their times`);
      if (fires.length < 2) cron.push(`${sid}: ${fires.length} cron firings in ${Math.round((Date.now() - t0) / 1000)} s`);
      for (const o of offs) if (o < 0) cron.push(`${sid}: a cron firing ${-o} ms early`);
      for (const o of late) if (o >= LATE_MS) cron.push(`${sid}: a cron firing ${o} ms late`);
    }
    both.problems.push(...cron);

    // What the nodes measured: Postgres' clock minus their wall clocks, about -20 s and +20 s.
    const behindStatus = await behind.ctl<Status>('clockStatus');
    console.log([...both.lines, ...failover.lines, `ahead node's clock: ${JSON.stringify(aheadStatus)}`, `behind node's clock: ${JSON.stringify(behindStatus)}`].join('\n'));
    expect([...both.problems, ...failover.problems]).toEqual([]);
    expect(aheadStatus?.source).toBe('store');
    expect(Math.abs(aheadStatus!.offsetMs! + SKEW_MS)).toBeLessThan(1000);
    expect(behindStatus?.source).toBe('store');
    expect(Math.abs(behindStatus!.offsetMs! - SKEW_MS)).toBeLessThan(1000);
    expect(tail(logOf('ahead'), 400)).toMatch(/wall clock is \d+ ms ahead of the store's/);
    expect(tail(logOf('behind'), 400)).toMatch(/wall clock is \d+ ms behind the store's/);
  }, 90_000);
});
