/**
 * Owns replay: a regression check for agent code. The recorded message history of a session is
 * run, turn by turn, through an agent definition (the one registered now, or a module's) in a
 * sandbox, and each resulting state is compared with the state the flight recorder kept for that
 * turn (runtime/fork.ts's checkpoints).
 *
 * The sandbox: the handler gets a `HandlerContext` whose outputs are collected and dropped
 * (nothing is published), whose clock is the recorded time of the turn's newest message, whose
 * signal never fires, and whose history is the replay's own. Nothing is committed: the store is
 * only read. A replay is as deterministic as the handler: one that reads `Date.now()`, calls an
 * LLM or random numbers differs where the recording did.
 *
 * What is compared, per recorded turn (history rows of one batch that committed `ok`, in run
 * order): the user state and the state it rested in (idle, sleeping, waiting) against the newest
 * checkpoint of that turn (same run id in the snapshot). A turn whose checkpoint is not recorded
 * (coalesced into a later commit, pruned) is run but not compared (`expected: null`). The replay
 * starts from the oldest checkpoint kept (the state before the turns after it), or from the
 * agent's initial state when none is kept. Turns that failed, were superseded or rejected changed
 * nothing and are not run.
 */
import { AgentryError, errorInfo } from '../actors/errors.js';
import { nextStepOf, type AnyAgent, type HandlerBudget, type HistoryItem } from '../actors/defineAgent.js';
import { snapshotContext } from '../actors/sessionMachine.js';
import type { InboxMessage, Priority } from '../actors/types.js';
import type { Checkpoint, HistoryEntry, Store } from '../persistence/types.js';
import { createHandlerContext, type RunHandle } from './host/handlerContext.js';
import type { PendingOutput } from './host/commitRecord.js';
import { createLogger } from './logger.js';

/** Options of `replaySession`. */
export interface ReplayOptions {
  /** The agent to run (default: the one registered for the session's type). */
  readonly agent?: AnyAgent;
  /** Most history rows read (newest kept; default 1000, at most 10,000). */
  readonly maxMessages?: number;
}

/** What one turn left: the state it rests in and the user state. */
export interface TurnState {
  readonly status: string;
  readonly userState: unknown;
}

/** One recorded turn whose replayed state differs from the recorded one. */
export interface ReplayDifference {
  /** The turn's run id (history's batchId). */
  readonly batchId: string;
  /** The inbox messages of the turn (0: a wake record). */
  readonly seqs: readonly number[];
  readonly expected: TurnState;
  /** What the agent produced; `error` when it threw. */
  readonly actual: TurnState & { readonly error?: string };
  /** Where they differ: `status`, `userState.a.b`, `error`. */
  readonly paths: readonly string[];
}

/** What `replaySession` reports. */
export interface ReplayReport {
  readonly agentId: string;
  readonly type: string;
  /** Where the replay started: the oldest checkpoint kept (its version), or the agent's initial state. */
  readonly start: { readonly from: 'checkpoint'; readonly version: number } | { readonly from: 'initial' };
  /** Turns run, and how many of them had a recorded state to compare with. */
  readonly turns: number;
  readonly compared: number;
  /** Outputs the agent produced (dropped: a replay publishes nothing). */
  readonly outputs: number;
  readonly differences: readonly ReplayDifference[];
}

const silent = createLogger('silent');

/** `ctx.budget` in a replay: never refuses, records nothing (a replay spends nothing). */
const REPLAY_BUDGET: HandlerBudget = Object.freeze({
  reserve: () => Promise.resolve({ id: 'replay', reused: false }),
  settle: () => Promise.resolve(),
  record: () => Promise.resolve(),
});

function runIdOf(c: Checkpoint): number {
  return snapshotContext(c.snapshot).runId;
}

/** Paths where two JSON values differ (at most 20). */
export function diffPaths(a: unknown, b: unknown, path: string, out: string[] = []): string[] {
  if (out.length >= 20) return out;
  if (a === b) return out;
  if (a && b && typeof a === 'object' && typeof b === 'object' && Array.isArray(a) === Array.isArray(b)) {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    for (const k of new Set([...ka, ...kb])) diffPaths((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`, out);
    return out;
  }
  out.push(path);
  return out;
}

/** The recorded turns that committed `ok`, in run order, each oldest message first (wake records first). */
export function recordedTurns(rows: readonly HistoryEntry[]): { batchId: string; runId: number; messages: HistoryEntry[] }[] {
  const byBatch = new Map<string, HistoryEntry[]>();
  for (const h of rows) {
    if (h.outcome !== 'ok') continue;
    const list = byBatch.get(h.batchId) ?? [];
    list.push(h);
    byBatch.set(h.batchId, list);
  }
  return [...byBatch.entries()]
    .map(([batchId, messages]) => ({ batchId, runId: Number(batchId), messages: messages.sort((x, y) => (x.seq <= 0 ? -1 : x.seq) - (y.seq <= 0 ? -1 : y.seq)) }))
    .filter((t) => Number.isFinite(t.runId))
    .sort((x, y) => x.runId - y.runId);
}

/**
 * Runs `agentId`'s recorded history through `agent` in a sandbox and reports the turns whose
 * state differs from the recorded one. UNKNOWN_SESSION for an unknown id.
 */
export async function replaySession(store: Store, agentId: string, agent: AnyAgent, opts: ReplayOptions = {}): Promise<ReplayReport> {
  const rec = await store.loadSession(agentId);
  if (!rec) throw new AgentryError('UNKNOWN_SESSION', `no session ${agentId}`);
  const cap = Math.min(Math.max(1, opts.maxMessages ?? 1000), 10_000);
  const rows: HistoryEntry[] = [];
  // Newest first, paged by seq (rows sharing one seq across a page boundary, like several wake
  // records of seq 0, may be cut: a replay of more than one page starts at a turn boundary anyway).
  for (let before: number | undefined; rows.length < cap;) {
    const want = Math.min(1000, cap - rows.length);
    const page = await store.getHistory(agentId, { limit: want, ...(before !== undefined ? { before } : {}) });
    rows.push(...page);
    if (page.length < want) break;
    before = page[page.length - 1]!.seq;
  }
  const checkpoints = await store.listCheckpoints(agentId, 1000);
  // The current row is a checkpoint too (always kept).
  const all: Checkpoint[] = [...checkpoints, {
    sessionId: rec.id, version: rec.version, type: rec.type, status: rec.status, lastSeq: rec.lastSeq, snapshot: rec.snapshot, transitionsBefore: 0, at: rec.updatedAt,
  }];
  const byRun = new Map<number, Checkpoint>();
  for (const c of all) byRun.set(runIdOf(c), c); // oldest first: the newest of each run wins
  const first = checkpoints[0];
  const startRun = first ? runIdOf(first) : 0;
  let state: unknown = first ? snapshotContext(first.snapshot).userState : agent.initialState();
  const view: HistoryItem[] = [];
  const differences: ReplayDifference[] = [];
  let turns = 0;
  let compared = 0;
  let outputs = 0;
  for (const turn of recordedTurns(rows)) {
    if (first && turn.runId <= startRun) continue;
    turns++;
    const batch: InboxMessage[] = turn.messages.map((h) => ({
      seq: h.seq, kind: h.kind as InboxMessage['kind'], body: h.body, priority: h.priority as Priority, at: h.at, ...(h.from ? { from: h.from } : {}),
    }));
    const at = Math.max(...batch.map((m) => m.at));
    const out: PendingOutput[] = [];
    const run: RunHandle = { runId: turn.runId, ctl: null, aborted: false };
    const { ctx, finalState } = createHandlerContext({
      input: { sessionId: agentId, agentType: rec.type, runId: turn.runId, attempt: 1, batch, userState: state },
      run, outputs: out, now: () => at, log: () => silent, history: () => view, publishChunk: () => undefined,
      tenant: snapshotContext(rec.snapshot).tenant ?? null, budget: () => REPLAY_BUDGET,
    });
    let actual: TurnState & { error?: string };
    try {
      const next = nextStepOf(await agent.handle(batch, ctx));
      state = finalState();
      actual = { status: next.type === 'sleep' ? 'sleeping' : next.type === 'wait' ? 'waiting' : 'idle', userState: state };
    } catch (e) {
      actual = { status: 'failed', userState: state, error: errorInfo(e).message };
    }
    outputs += out.length;
    view.push(...turn.messages.map((h) => ({ seq: h.seq, kind: h.kind, body: h.body, from: h.from, batchId: h.batchId, outcome: h.outcome, at: h.at })));
    if (view.length > agent.maxHistory) view.splice(0, view.length - agent.maxHistory);
    // The recorded state of this turn: the newest commit of its run that covers its messages (a
    // commit that took the turn's start only, coalesced with the turn before, does not).
    const cp = byRun.get(turn.runId);
    if (!cp || cp.lastSeq < Math.max(0, ...batch.map((m) => m.seq))) continue;
    compared++;
    const expected: TurnState = { status: cp.status === 'active' ? 'idle' : cp.status, userState: snapshotContext(cp.snapshot).userState };
    const paths = actual.error !== undefined ? ['error'] : [
      ...(expected.status !== actual.status ? ['status'] : []), ...diffPaths(expected.userState, actual.userState, 'userState'),
    ];
    if (paths.length > 0) differences.push({ batchId: turn.batchId, seqs: batch.map((m) => m.seq), expected, actual, paths });
    // Carry on from the recorded state, so one difference is reported where it starts, not at every later turn.
    state = structuredClone(expected.userState);
  }
  return {
    agentId, type: rec.type, start: first ? { from: 'checkpoint', version: first.version } : { from: 'initial' },
    turns, compared, outputs, differences,
  };
}
