// Owns a seeded chaos run: N nodes under open-ended load, faults chosen at random (from the seed)
// one after another — SIGKILL and restart, SIGSTOP past the lease, SIGTERM and restart, a
// nats-server restart, one node's NATS or Postgres refused or blackholed, its Postgres answers
// dropped while statements still commit (ambiguous commits) — with timers set to
// fall due during each fault and poison messages slipped into the load. Part of the load is
// mail between sessions (mailers → mailboxes on other partitions) and cron firings every 2 s. Then the load stops, the
// system settles, and the verifier reports. Used by chaos.test.ts (a short run in CI) and by
// `npm run chaos` (test/chaos/run.mjs) for long runs.
//
// Every step has a deadline (a node that will not start, a SIGTERM that hangs, a settle that
// never ends), so the run is bounded; every process is killed by the scenario's destroy().
import { writeFileSync } from 'node:fs';
import { Rng } from './rng.js';
import { POISON_KINDS } from './load.js';
import { Scenario } from './scenario.js';
import type { FaultRecord, Recovery, Report } from './verifier.js';

export const FAULT_KINDS = [
  'kill', 'pause', 'term', 'nats-restart', 'nats-refuse', 'nats-blackhole', 'pg-refuse', 'pg-blackhole', 'pg-deaf',
  // Two faults at once, and operator faults (added 2026-11-28):
  'pause-nats-restart', 'term-pg-deaf', 'term-nats-blackhole', 'pg-restart', 'consumer-delete',
  // Added 2026-11-29 (it changes which faults a seed picks from then on):
  'lease-bucket-delete',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface ChaosOptions {
  readonly seed: number;
  readonly faults: number;
  readonly nodes: number;
  /** Faults are spread over at least this long (the run lasts longer when faults take longer). */
  readonly durationS: number;
  readonly ratePerSec?: number;
  /** Load sessions (three quarters rec-queue, a quarter rec-merge). */
  readonly sessions?: number;
  readonly sleepers?: number;
  /** Load sessions that mail each message on to a mailbox on another partition (default 6; on top of `sessions`). */
  readonly mailers?: number;
  /** Sessions with a cron task firing every 2 s (default 3). */
  readonly cronSessions?: number;
  readonly leaseTtlMs?: number;
  readonly shutdownGraceMs?: number;
  /** Longest acceptable recovery (see `boundOf`); default 10 s. */
  readonly recoveryBoundMs?: number;
  readonly settleMs?: number;
  readonly kinds?: readonly FaultKind[];
  /** Chance per fault that a poison message is slipped into the load (default 0.5; 0: none). */
  readonly poisonRate?: number;
  /** Write the JSON result here. */
  readonly reportFile?: string;
  readonly keepLogs?: boolean;
}

export interface ChaosResult {
  readonly seed: number;
  readonly options: ChaosOptions;
  readonly startedAt: string;
  readonly elapsedS: number;
  readonly faults: readonly FaultRecord[];
  readonly report: Report;
  readonly recoveryByKind: Record<string, { n: number; p50: number | null; p99: number | null; max: number | null; never: number }>;
  readonly recoveryBoundMs: number;
  /** Faults whose recovery exceeded the bound (or never came). */
  readonly boundViolations: string[];
  readonly ok: boolean;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The recovery a fault is held to: node losses (kill, pause, term) from the fault's start — their
 * partitions must move or come back within the bound — and server faults from when they were lifted.
 */
export function boundedRecoveryMs(r: Recovery): number | null {
  if (r.recoveryMs === null) return null;
  return r.kind === 'kill' || r.kind.startsWith('pause') || r.kind.startsWith('term') ? r.recoveryMs : r.afterEndMs;
}

function percentile(xs: number[], p: number): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

/** Runs one seeded chaos run and returns its result (also written to `reportFile`). */
export async function runChaos(o: ChaosOptions, log: (line: string) => void = (l) => { console.log(l); }): Promise<ChaosResult> {
  const rng = new Rng(o.seed);
  const kinds = o.kinds && o.kinds.length > 0 ? o.kinds : FAULT_KINDS;
  const leaseTtlMs = o.leaseTtlMs ?? 3000;
  const graceMs = o.shutdownGraceMs ?? 3000;
  const bound = o.recoveryBoundMs ?? 10_000;
  const sessions = o.sessions ?? 40;
  const t0 = Date.now();
  const sc = await Scenario.start({
    tag: `chaos${o.seed}`, nodes: o.nodes, leaseTtlMs, shutdownGraceMs: graceMs, messages: null,
    ratePerSec: o.ratePerSec ?? 120, queueSessions: Math.ceil(sessions * 0.75), mergeSessions: Math.floor(sessions * 0.25),
    sleepers: o.sleepers ?? 6, mailers: o.mailers ?? 6, cronSessions: o.cronSessions ?? 3, ...(o.keepLogs ? { keepLogs: true } : {}),
  });
  const c = sc.cluster;
  // Poison goes to the recorders only (as before mail joined the load: a seed picks the same sessions).
  const loadSessions = [...sc.load.published.keys()].filter((s) => !sc.sleepers.includes(s) && !sc.traffic.mailTo.has(s));
  const timerDue = new Map<string, number>(); // sleeper → when its last timer falls due
  try {
    log(`[chaos] seed ${o.seed}: ${o.faults} faults over ≥ ${o.durationS} s, ${o.nodes} nodes, lease ${leaseTtlMs} ms, kinds ${kinds.join(',')}; logs in ${c.dir}`);
    await sleep(2000); // load flowing before the first fault
    const gapMs = (o.durationS * 1000) / Math.max(1, o.faults);
    for (let k = 1; k <= o.faults; k++) {
      const stepStart = Date.now();
      // Every node back and ready, and every partition held, before the next fault (bounded).
      try { await c.waitPartitionsHeld(30_000, 1); } catch (e) { log(`[chaos] fault ${k}: cluster not settled before it: ${(e as Error).message}`); }
      const kind = rng.pick(kinds);
      const node = rng.int(0, o.nodes - 1);
      const heal = rng.next() < 0.5;
      const durationMs =
        kind === 'kill' ? rng.int(1000, 8000)
          : kind === 'pause' || kind === 'pause-nats-restart' ? rng.int(2 * leaseTtlMs, 3 * leaseTtlMs)
            : kind === 'nats-restart' ? rng.int(0, 3000)
              : kind === 'term' || kind === 'consumer-delete' || kind === 'lease-bucket-delete' ? 0 : rng.int(2000, 6000);
      // Timers due during the fault, on sleepers whose last timer has fired by now.
      const free = sc.sleepers.filter((s) => (timerDue.get(s) ?? 0) < Date.now());
      for (let n = 0; n < Math.min(2, free.length); n++) {
        const sid = free[rng.int(0, free.length - 1)]!;
        const until = Date.now() + 1000 + rng.int(0, Math.max(500, durationMs));
        if ((timerDue.get(sid) ?? 0) >= until) continue;
        timerDue.set(sid, until);
        sc.load.sleep(sid, until);
      }
      const poison = rng.next() < (o.poisonRate ?? 0.5) ? { sid: rng.pick(loadSessions), kind: rng.pick(POISON_KINDS) } : null;
      await sleep(1000);
      if (poison) sc.load.injectPoison(poison.sid, poison.kind);
      const detail: Record<string, unknown> = { durationMs, ...(kind.endsWith('blackhole') ? { heal } : {}), ...(poison ? { poison } : {}) };
      const global = kind === 'nats-restart' || kind === 'pg-restart' || kind === 'lease-bucket-delete';
      const f = sc.fault(kind, global ? null : node, detail);
      log(`[chaos] fault ${k}/${o.faults}: ${kind}${global ? '' : ` node-${node}`} ${JSON.stringify(detail)}`);
      try {
        switch (kind) {
          case 'kill':
            await c.killNode(node);
            await sleep(durationMs);
            await c.startNode(node);
            break;
          case 'pause':
            c.pauseNode(node);
            await sleep(durationMs);
            c.resumeNode(node);
            break;
          case 'term': {
            const r = await c.termNode(node, graceMs + 30_000);
            detail.exit = { code: r.code, ms: r.ms, hung: r.hung };
            log(`[chaos]   SIGTERM → ${r.hung ? 'hung, SIGKILLed' : `exit ${r.code}`} after ${r.ms} ms`);
            await c.startNode(node);
            break;
          }
          case 'nats-restart':
            await c.restartNats(durationMs);
            break;
          case 'nats-refuse': case 'nats-blackhole':
            c.natsMode(node, kind === 'nats-refuse' ? 'refuse' : 'blackhole', heal);
            await sleep(durationMs);
            c.natsMode(node, 'pass');
            break;
          case 'pg-refuse': case 'pg-blackhole':
            c.pgMode(node, kind === 'pg-refuse' ? 'refuse' : 'blackhole', heal);
            await sleep(durationMs);
            c.pgMode(node, 'pass');
            break;
          case 'pg-deaf':
            // Statements reach Postgres and commit; their answers are dropped (ambiguous commits).
            c.pgMode(node, 'deaf');
            await sleep(durationMs);
            c.pgMode(node, 'pass');
            break;
          case 'pause-nats-restart': {
            // The node is frozen while nats-server goes away and comes back: it wakes up to a
            // new server connection, leases that lapsed, and partitions that moved meanwhile.
            c.pauseNode(node);
            const t = Date.now();
            await sleep(Math.min(1000, durationMs / 3));
            await c.restartNats(rng.int(0, 2000));
            await sleep(Math.max(0, durationMs - (Date.now() - t)));
            c.resumeNode(node);
            break;
          }
          case 'term-pg-deaf': case 'term-nats-blackhole': {
            // A graceful stop while its Postgres answers are dropped (its last commits are
            // ambiguous) or its NATS swallows everything: it must still exit, and lose nothing.
            if (kind === 'term-pg-deaf') c.pgMode(node, 'deaf'); else c.natsMode(node, 'blackhole');
            await sleep(rng.int(200, 1500));
            const r = await c.termNode(node, graceMs + 30_000);
            detail.exit = { code: r.code, ms: r.ms, hung: r.hung };
            log(`[chaos]   SIGTERM → ${r.hung ? 'hung, SIGKILLed' : `exit ${r.code}`} after ${r.ms} ms`);
            c.pgMode(node, 'pass'); c.natsMode(node, 'pass');
            await c.startNode(node);
            break;
          }
          case 'pg-restart':
            // Postgres restarted (or failed over) for everyone: every node's connections reset.
            for (let i = 0; i < o.nodes; i++) c.pgMode(i, 'refuse');
            await sleep(durationMs);
            for (let i = 0; i < o.nodes; i++) c.pgMode(i, 'pass');
            break;
          case 'lease-bucket-delete': {
            // An operator (or a wiped store) takes the partition lease bucket away under every node.
            await c.deleteLeaseBucket();
            break;
          }
          case 'consumer-delete': {
            // An operator deletes the inbox consumer of one of the node's partitions.
            const deleted = await c.deleteConsumerOf(node, rng.int(0, 63));
            detail.deleted = deleted;
            log(`[chaos]   deleted ${deleted ?? 'nothing (the node owns no partition)'}`);
            break;
          }
        }
      } catch (e) {
        detail.error = (e as Error).message;
        log(`[chaos]   fault step failed: ${(e as Error).message}`);
        // Leave the cluster whole for the next fault: proxies passing, every node running.
        for (let i = 0; i < o.nodes; i++) {
          c.natsMode(i, 'pass'); c.pgMode(i, 'pass'); c.resumeNode(i);
          const n = c.nodes[i]!;
          if (!n.child || n.child.exited()) await c.startNode(i).catch((err: unknown) => { log(`[chaos]   restart of node-${i} failed: ${(err as Error).message}`); });
        }
      }
      f.endNow();
      const rest = gapMs - (Date.now() - stepStart);
      await sleep(Math.max(1000, rest));
    }
    await sleep(5000); // load after the last fault
    const report = await sc.finish(`chaos seed ${o.seed}`, o.settleMs ?? 90_000);
    const byKind: ChaosResult['recoveryByKind'] = {};
    const violations: string[] = [];
    for (const r of report.recovery) {
      if (r.sessions === 0) continue;
      const b = (byKind[r.kind] ??= { n: 0, p50: null, p99: null, max: null, never: 0 });
      b.n++;
      const ms = boundedRecoveryMs(r);
      if (ms === null) { b.never++; violations.push(`${r.kind}@${r.node ?? 'all'} at +${Math.round((r.start - t0) / 1000)} s: never recovered (${r.slowest})`); } else if (ms > bound) {
        violations.push(`${r.kind}@${r.node ?? 'all'} at +${Math.round((r.start - t0) / 1000)} s: recovered in ${ms} ms > ${bound} ms (${r.slowest})`);
      }
    }
    for (const [kind, b] of Object.entries(byKind)) {
      const xs = report.recovery.filter((r) => r.kind === kind && r.sessions > 0).map(boundedRecoveryMs).filter((x): x is number => x !== null);
      b.p50 = percentile(xs, 50); b.p99 = percentile(xs, 99); b.max = xs.length ? Math.max(...xs) : null;
    }
    const result: ChaosResult = {
      seed: o.seed, options: o, startedAt: new Date(t0).toISOString(), elapsedS: Math.round((Date.now() - t0) / 1000),
      faults: sc.faults, report, recoveryByKind: byKind, recoveryBoundMs: bound, boundViolations: violations,
      ok: report.ok && violations.length === 0,
    };
    log(`[chaos] recovery by kind (ms; kill/pause/term from the fault's start, others from its end; bound ${bound} ms):`);
    for (const [kind, b] of Object.entries(byKind)) log(`[chaos]   ${kind.padEnd(14)} n=${b.n} p50=${b.p50 ?? '-'} p99=${b.p99 ?? '-'} max=${b.max ?? '-'} never=${b.never}`);
    for (const v of violations) log(`[chaos] RECOVERY BOUND ${v}`);
    log(`[chaos] seed ${o.seed}: ${result.ok ? 'OK' : 'FAILED'} after ${result.elapsedS} s`);
    if (o.reportFile) writeFileSync(o.reportFile, JSON.stringify(result, null, 2));
    return result;
  } finally {
    await sc.destroy();
  }
}

/** Chaos options from CHAOS_* environment variables (what run.mjs sets), over the CI defaults. */
export function chaosOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): ChaosOptions {
  const num = (k: string, d: number): number => (env[k] !== undefined && env[k] !== '' ? Number(env[k]) : d);
  const kinds = (env.CHAOS_KINDS ?? '').split(',').map((s) => s.trim()).filter((s): s is FaultKind => (FAULT_KINDS as readonly string[]).includes(s));
  return {
    seed: num('CHAOS_SEED', 1), faults: num('CHAOS_FAULTS', 8), nodes: num('CHAOS_NODES', 3), durationS: num('CHAOS_DURATION', 60),
    ratePerSec: num('CHAOS_RATE', 120), sessions: num('CHAOS_SESSIONS', 40), sleepers: num('CHAOS_SLEEPERS', 6),
    mailers: num('CHAOS_MAILERS', 6), cronSessions: num('CHAOS_CRON', 3),
    leaseTtlMs: num('CHAOS_LEASE_MS', 3000), recoveryBoundMs: num('CHAOS_BOUND_MS', 10_000), settleMs: num('CHAOS_SETTLE_MS', 90_000),
    poisonRate: num('CHAOS_POISON_RATE', 0.5),
    ...(kinds.length ? { kinds } : {}),
    ...(env.CHAOS_REPORT ? { reportFile: env.CHAOS_REPORT } : {}),
    ...(env.CHAOS_KEEP_LOGS === '1' ? { keepLogs: true } : {}),
  };
}

/** An upper bound on a run's wall time, for the test's timeout: faults, their worst steps, settling. */
export function chaosTimeoutMs(o: ChaosOptions): number {
  return 120_000 + o.durationS * 1000 + o.faults * (60_000 + 45_000) + (o.settleMs ?? 90_000);
}
