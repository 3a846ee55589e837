/**
 * Owns the handler runs of this node's sessions: the statechart's `running` state calls
 * `startRun` on entry and `cancelRun` on exit (provided as machine actions by the host); a run
 * builds its HandlerContext (handlerContext.ts), applies budgets (budgets.ts, budgetTurn.ts),
 * calls the agent's handler after the transition that started it (paced over event-loop turns:
 * runPacer.ts) and reports RUN_DONE / RUN_FAILED to the actor. An aborted run (a merge, an
 * interrupt, a stop) reports nothing: its streamed chunks are retracted, the agent's `onAbort`
 * may repair the state the next turn starts from, and a handler that ignores `ctx.signal` past
 * `abortGraceMs` is counted.
 *
 * A turn has a time limit (`turnTimeoutMs`: the agent type's, else the runtime's; 15 minutes by
 * default): a handler still running past it — awaiting an LLM call or a socket that never
 * answers — is failed at once with a `TIMEOUT` error (its signal fires with that reason, its
 * result is discarded whenever it comes, `onAbort` may repair the state), and the attempt counts
 * like a thrown error: retried, then dead-lettered after `maxAttempts`. Before 2026-11-29 such a
 * turn held its session, and every message after it, forever. Checked by `expireTurns` on the
 * host's one-second sweep: no timer per run.
 */
import { AgentryError, TerminalError } from '../../actors/errors.js';
import { nextStepOf, type HandlerBudget } from '../../actors/defineAgent.js';
import { runInputOf, type SessionContext, type SessionEvent } from '../../actors/sessionMachine.js';
import type { RunInput, RunOutput } from '../../actors/types.js';
import type { BudgetBreach } from '../../persistence/budget.js';
import { exceededError, runKeyOf, turnKeyOf } from '../budgets.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import { endRunTrace, nextStepWithTrace, startRunTrace } from '../tracing.js';
import { H, OUT_SUBJECT } from '../transport.js';
import { budgetNotices, heldTurn } from './budgetTurn.js';
import type { PendingOutput } from './commitRecord.js';
import { abortRunHandle, createHandlerContext, type RunHandle } from './handlerContext.js';
import type { HostDeps, HostStats } from './hostContract.js';
import { abortRun, historyItemsOf, type LiveSession } from './liveSession.js';
import { splitExpired } from './mailboxRules.js';
import { RunPacer } from './runPacer.js';

/** Whether a message of the batch has an expiry (a loop: this runs for every run). */
function mayExpire(batch: RunInput['batch']): boolean {
  for (let i = 0; i < batch.length; i++) if (batch[i]!.expiresAt !== undefined) return true;
  return false;
}

/** What runs need of the host beyond its deps. */
export interface RunPort {
  readonly clock: Clock;
  readonly stats: HostStats;
  /** The live session with this id (a run of a session no longer live does nothing). */
  sessionOf(sid: string): LiveSession | undefined;
  /** Stops a session through the normal command path (a person's budget answer "stop"). */
  stop(sid: string, reason: string): Promise<unknown>;
}

/** Handler runs (see the module comment). */
export class HandlerRuns {
  /** Spreads handler starts over event-loop turns (handlers that never await must not starve I/O). */
  private readonly pacer = new RunPacer();
  private readonly clock: Clock;

  /** The clock as a function, made once (a run's `ctx.now`). */
  private readonly now: () => number;

  /** Runs with a time limit, until they end (insertion order: oldest first). */
  private readonly timed = new Map<RunHandle, string>(); // → its session's id; the limit is on the handle (no object per run)

  constructor(private readonly deps: HostDeps, private readonly port: RunPort) {
    this.clock = port.clock;
    const clock = port.clock;
    this.now = () => clock.now();
  }

  /**
   * Entry of `running`: runs the handler on the batch and tells the actor how it ended. The
   * run's abort signal is made only if the handler reads it; a run that is cancelled meanwhile
   * reports nothing (its batch runs again, merged, or is settled by an interrupt or a stop).
   */
  startRun(context: SessionContext, self: unknown): void {
    const s = this.port.sessionOf(context.sessionId);
    if (!s || s.actor !== self) return;
    const run: RunHandle = { runId: context.runId, ctl: null, aborted: false };
    s.run = run;
    const settle = (event: SessionEvent): void => {
      this.timed.delete(run);
      if (run.aborted || s.run !== run || s.broken) return;
      s.run = null;
      if (event.type === 'RUN_FAILED') this.retract(s, run, 'failed'); // a retry or a dead letter: its chunks are void
      else s.repair = undefined; // the turn that started from the repair completed: its state holds it
      s.actor.send(event);
    };
    let input = runInputOf(context);
    // Messages that expired before this turn started are dropped from it (recorded with its commit).
    if (mayExpire(input.batch)) {
      const { live, expired } = splitExpired(input.batch, this.clock.now());
      if (expired.length > 0) {
        for (const m of expired) if (!s.expired.has(m.seq)) s.expired.set(m.seq, this.clock.now());
        input = { ...input, batch: live };
      }
    }
    // The handler starts after the transition that started it, never inside XState's step, and
    // in a later event-loop turn once this turn has run handlers for long enough (runPacer.ts).
    this.pacer.start(() => {
      if (run.aborted || s.run !== run || s.broken) return; // cancelled while waiting for its turn
      if (input.batch.length === 0) { // everything expired: no handler run, the turn commits the expiries
        run.settled = true;
        settle({ type: 'RUN_DONE', runId: run.runId, output: { userState: s.repair ? s.repair.state : input.userState, next: { type: 'idle' }, finishedAt: this.clock.now() } });
        return;
      }
      run.fail = (error) => { settle({ type: 'RUN_FAILED', runId: run.runId, error }); };
      const limit = this.deps.agents.get(input.agentType)?.turnTimeoutMs ?? this.deps.config.turnTimeoutMs;
      if (limit > 0) { run.turnLimitMs = limit; run.deadline = this.clock.now() + limit; this.timed.set(run, s.id); }
      this.runHandler(s, input, run).then(
        (output) => { settle({ type: 'RUN_DONE', runId: run.runId, output }); },
        (error: unknown) => { settle({ type: 'RUN_FAILED', runId: run.runId, error }); },
      );
    });
  }

  /** Exit of `running` (a merge, an interrupt, a stop): the run in flight is aborted. */
  cancelRun(sid: string, self: unknown, reason: string): void {
    const s = this.port.sessionOf(sid);
    if (!s || s.actor !== self) return;
    const run = abortRun(s);
    if (run) this.timed.delete(run);
    this.afterAbort(s, run, reason);
  }

  /**
   * Fails every turn running past its time limit (see the module comment); the host calls it
   * about once a second. A run that ended or was aborted meanwhile is only forgotten.
   */
  expireTurns(): void {
    if (this.timed.size === 0) return;
    const now = this.clock.now();
    for (const [run, sid] of this.timed) {
      if (now < (run.deadline ?? Infinity)) continue;
      this.timed.delete(run);
      const s = this.port.sessionOf(sid);
      if (!s || s.run !== run || run.aborted || run.settled || !run.fail) continue;
      const limitMs = run.turnLimitMs;
      const err = new AgentryError('TIMEOUT', `turn ${run.runId} of session ${s.id} ran past its limit of ${limitMs} ms (turnTimeoutMs): aborted, counted as a failed attempt`, { retryable: true, details: { turnTimeoutMs: limitMs } });
      this.port.stats.turnTimeouts++;
      s.log.warn({ runId: run.runId, turnTimeoutMs: limitMs }, 'a turn ran past turnTimeoutMs: aborted and counted as a failed attempt');
      run.fail(err); // RUN_FAILED: s.run is cleared, so the handler's late result is ignored
      run.ctl?.abort(err);
      abortRunHandle(run);
      this.afterAbort(s, run, 'timeout');
    }
  }

  /**
   * After a run was aborted: its streamed chunks are retracted, and a handler still running
   * `abortGraceMs` later is counted (`abortIgnored`, metric agentry_handler_abort_ignored_total)
   * and logged: it ignores `ctx.signal`. Its result is discarded whenever it comes (the run is
   * marked aborted: no RUN_DONE, no outputs).
   */
  afterAbort(s: LiveSession, run: RunHandle | null, reason: string): void {
    if (!run) return;
    endRunTrace(run.trace, 'aborted', reason);
    run.trace = undefined;
    // A turn dropped by a newer message: the run that replaces it links its messages.
    if ((reason === 'superseded' || reason === 'rolled-back') && run.started) {
      (s.dropped ??= []).push(...run.started.batch.filter((m) => m.traceparent !== undefined).map((message) => ({ message, fate: reason })));
    }
    const streamed = run.streamed ?? 0;
    this.retract(s, run, reason);
    this.repairAfterAbort(s, run, reason, streamed);
    if (run.settled) return;
    const grace = this.deps.config.abortGraceMs;
    const t = setTimeout(() => {
      if (run.settled) return;
      this.port.stats.abortIgnored++;
      s.log.warn({ runId: run.runId, graceMs: grace, reason }, 'an aborted handler is still running past the grace: it ignores ctx.signal; its result will be discarded');
    }, grace);
    t.unref();
  }

  /**
   * Runs the agent's `onAbort` hook for a turn whose handler had started: it gets a draft of the
   * state the turn started from and may repair it; the next turn starts from the repair (and
   * commits it). Synchronous, so the repair is there before the next turn's handler starts.
   */
  private repairAfterAbort(s: LiveSession, run: RunHandle, reason: string, streamed: number): void {
    const hook = this.deps.agents.get(s.type)?.onAbort;
    const started = run.started;
    if (!hook || !started) return;
    try {
      const actx = {
        sessionId: s.id, agentType: s.type, state: structuredClone<unknown>(started.state), now: () => this.clock.now(),
        log: {
          debug: (msg: string, f?: Record<string, unknown>) => { s.log.debug(f ?? {}, msg); },
          info: (msg: string, f?: Record<string, unknown>) => { s.log.info(f ?? {}, msg); },
          warn: (msg: string, f?: Record<string, unknown>) => { s.log.warn(f ?? {}, msg); },
          error: (msg: string, f?: Record<string, unknown>) => { s.log.error(f ?? {}, msg); },
        },
      };
      const r = (hook as (...a: unknown[]) => unknown)(actx, { runId: run.runId, reason, batch: started.batch, state: started.draft(), streamed });
      if (r instanceof Promise) s.log.warn({ runId: run.runId }, 'onAbort returned a promise: it must be synchronous; only what it changed before its first await counts');
      s.repair = { state: JSON.parse(JSON.stringify(actx.state ?? null)) as unknown };
    } catch (err) {
      s.log.warn({ err, runId: run.runId }, 'onAbort failed; the repair is dropped');
    }
  }

  /**
   * Publishes a `retracted` notice after the chunks a run streamed, when that run will not be
   * committed (aborted, rolled back, failed): `agentry.out.<id>` with `Agentry-Kind: retracted`,
   * `Agentry-Run: <runId>` and body `{ run, chunks, reason }`, so clients drop those chunks.
   */
  private retract(s: LiveSession, run: RunHandle, reason: string): void {
    const chunks = run.streamed ?? 0;
    if (chunks === 0) return;
    run.streamed = 0;
    this.deps.transport.publishCore(OUT_SUBJECT(s.id), JSON.stringify({ run: run.runId, chunks, reason }), { [H.kind]: 'retracted', [H.run]: String(run.runId) });
  }

  private async runHandler(s: LiveSession, input: RunInput, run: RunHandle): Promise<RunOutput> {
    const budgets = this.deps.budgets;
    if (!budgets) return this.runAgent(s, input, run, null);
    // Budgets (runtime/budgets.ts, host/budgetTurn.ts): the runtime's own budget messages are
    // taken out, a person's answer applied, the limits checked before the turn, and a breach of
    // a pause or ask limit holds the turn's messages instead of running or failing them.
    const { tenant, incarnation } = s.actor.getSnapshot().context;
    const subject = { sessionId: s.id, type: s.type, tenant: tenant ?? null };
    const metered = budgets.applies(subject);
    const runKey = runKeyOf(incarnation, input.runId);
    const { rest, decision } = budgetNotices(input.batch);
    const started = this.clock.now();
    const hold = (b: BudgetBreach, policy: string): RunOutput | null => {
      if (policy === 'abort') throw exceededError(b);
      return policy === 'pause' || policy === 'ask' ? heldTurn(input, rest, b, policy, this.clock.now(), { askTimeoutMs: this.deps.config.budgetAskTimeoutMs, recheckMs: this.deps.config.budgetRecheckMs }) : null;
    };
    try {
      if (decision === 'stop') {
        setTimeout(() => {
          void this.port.stop(s.id, 'budget: stopped by a person').catch((err: unknown) => { s.log.warn({ err }, 'could not stop the session after a budget answer'); });
        }, 0);
        return { userState: input.userState, next: { type: 'sleep', wake: { until: null, events: [], mailPriority: null } }, finishedAt: this.clock.now(), requeue: rest };
      }
      if (rest.length === 0) return { userState: input.userState, next: { type: 'idle' }, finishedAt: this.clock.now() };
      const pre = metered ? await budgets.beforeTurn(subject, runKey) : null;
      if (pre) {
        const held = hold(pre, decision === 'pause' && pre.limit.policy === 'ask' ? 'pause' : pre.limit.policy);
        if (held) return held;
      }
      const batch = rest.length === input.batch.length ? input.batch : rest.map((i) => input.batch[i]!);
      let breach: BudgetBreach | null = null;
      const turnKey = turnKeyOf(input.batch, input.runId, incarnation);
      const ctxBudget = () => budgets.handlerBudget(subject, turnKey, (b) => { breach = b; run.budgetBreach = { policy: b.limit.policy }; });
      let out: RunOutput;
      try {
        out = await this.runAgent(s, { ...input, batch }, run, ctxBudget);
      } catch (err) {
        const b = breach as BudgetBreach | null;
        const held = b ? hold(b, b.limit.policy) : null;
        if (held) return held;
        throw err;
      }
      const b = breach as BudgetBreach | null;
      const held = b ? hold(b, b.limit.policy) : null; // the handler caught the breach: its policy still applies
      if (held) { s.outputs.delete(input.runId); return held; }
      return out;
    } finally {
      if (metered) budgets.meterTurn(subject, runKey, this.clock.now() - started);
    }
  }

  private async runAgent(s: LiveSession, input: RunInput, run: RunHandle, budget: (() => HandlerBudget) | null): Promise<RunOutput> {
    const agent = this.deps.agents.get(input.agentType);
    if (!agent) throw new TerminalError(`agent type ${input.agentType} is not registered on this node`);
    this.port.stats.runs++;
    if (input.attempt > 1) this.port.stats.retries++;
    const outputs: PendingOutput[] = [];
    // The run's logger is made on first use: most runs never log (a child logger per run cost ~2% of CPU).
    let runLog: Logger | undefined;
    const log = (): Logger => (runLog ??= s.log.child({ runId: input.runId, attempt: input.attempt }));
    const now = this.now;
    // After an aborted turn the agent's onAbort may have repaired the state: start from that.
    const startInput = s.repair ? { ...input, userState: s.repair.state } : input;
    run.trace = startRunTrace(s.id, s.type, input.runId, input.attempt, input.batch, s.dropped?.splice(0));
    const { ctx, finalState } = createHandlerContext({
      input: startInput, run, outputs, now, log, history: () => historyItemsOf(s.historyView),
      tenant: s.actor.getSnapshot().context.tenant ?? null,
      budget: budget ?? (() => { throw new AgentryError('INVALID_ARGUMENT', 'budgets are not enabled on this runtime'); }),
      publishChunk: (subject, body, headers) => { this.deps.transport.publishCore(subject, body, headers); },
    });
    run.started = { state: startInput.userState, batch: input.batch, draft: () => ctx.state };
    let result: Awaited<ReturnType<typeof agent.handle>>;
    try {
      result = await agent.handle(input.batch, ctx);
    } catch (err) {
      // Each failed attempt, with its stack (a dead letter keeps only the message); not a superseded run.
      if (!run.aborted && !run.budgetBreach) log().warn({ err, seqs: input.batch.map((m) => m.seq), maxAttempts: agent.limits.maxAttempts }, 'handler failed');
      this.endTrace(s, run, input.runId, 'failed', err);
      throw err;
    } finally {
      run.settled = true;
    }
    const runTrace = run.trace;
    this.endTrace(s, run, input.runId, 'ok');
    const userState = finalState();
    if (!run.aborted && outputs.length > 0) s.outputs.set(input.runId, outputs); // a run that sent nothing leaves no entry
    return { userState, next: runTrace ? nextStepWithTrace(nextStepOf(result), runTrace.headers) : nextStepOf(result), finishedAt: now() };
  }

  /** Ends a run's span (once) and keeps its context for the span of the run's commit. */
  private endTrace(s: LiveSession, run: RunHandle, runId: number, outcome: 'ok' | 'failed', err?: unknown): void {
    const t = run.trace;
    if (!t) return;
    endRunTrace(t, outcome, err);
    run.trace = undefined;
    if (!run.aborted && t.span) (s.runTraces ??= new Map()).set(runId, t.span.spanContext());
  }
}
