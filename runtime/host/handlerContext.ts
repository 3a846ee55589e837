/**
 * Owns what a handler sees during one run: the `HandlerContext` (actors/defineAgent.ts declares
 * it; this is its implementation). Outputs are buffered, not sent: replies, mail, events and
 * subscription changes leave only when the run's commit lands (the host's outbox), so a run
 * that is aborted, retried or refused by the store leaves nothing behind. Only `stream()`
 * chunks go out at once, and never from an aborted run.
 *
 * Cheap by default: a run that never logs, never reads `history` and never reads `signal`
 * allocates no child logger, no history copy and no AbortController.
 */
import { AgentryError, TerminalError, errorInfo } from '../../actors/errors.js';
import { assertSessionId } from '../../actors/sessionId.js';
import { assertEventPattern, isEventType, sleepResult, waitResult, type HandlerBudget, type HandlerContext, type HistoryItem } from '../../actors/defineAgent.js';
import type { RunInput } from '../../actors/types.js';
import type { Logger } from '../logger.js';
import { EVENT_SUBJECT, H, INBOX_SUBJECT, OUT_SUBJECT } from '../transport.js';
import type { PendingOutput } from './commitRecord.js';
import { waitpointSpecOf } from '../waitpoints.js';
import type { RunTrace } from '../tracing.js';

/** A handler run in flight; its AbortController exists only once the handler asked for its signal. */
export interface RunHandle {
  readonly runId: number;
  ctl: AbortController | null;
  aborted: boolean;
  /** Chunks `ctx.stream()` published (a run that streamed and is not committed gets a `retracted` notice). Absent: none. */
  streamed?: number;
  /** The handler's promise settled (an aborted run still running past the grace ignored its signal). */
  settled?: boolean;
  /** The budget limit a reservation of this run broke (its policy decides the turn's fate). */
  budgetBreach?: { readonly policy: string };
  /** Set when the handler starts: the state it started from, its batch, and its live draft (for `onAbort`). */
  started?: { readonly state: unknown; readonly batch: RunInput['batch']; readonly draft: () => unknown };
  /** The run's span (runtime/tracing.ts); its `traceparent` goes on every output. Ended (and unset) once. */
  trace?: RunTrace | undefined;
  /** Ends the run as failed with `err` at once (a turn past its time limit), if it has not ended. */
  fail?: (err: unknown) => void;
  /** The turn's time limit (`turnTimeoutMs`) and when it passes (the clock's ms); absent: no limit. */
  turnLimitMs?: number;
  deadline?: number;
}

/** Aborts a run: its signal fires (if it was ever read) and its late results are ignored. */
export function abortRunHandle(run: RunHandle): void {
  run.aborted = true;
  run.ctl?.abort();
}

export interface HandlerContextDeps {
  readonly input: RunInput;
  readonly run: RunHandle;
  /** Where buffered outputs go (the host keeps them until the run's commit). */
  readonly outputs: PendingOutput[];
  /** The session's recent history, oldest first (a new array: made when the handler reads it). */
  readonly history: () => HistoryItem[];
  /** The run's logger (made on first use). */
  readonly log: () => Logger;
  readonly now: () => number;
  /** The session's tenant (null: none). */
  readonly tenant: string | null;
  /** Makes the run's `ctx.budget` (on first use). */
  readonly budget: () => HandlerBudget;
  /** Publishes a streamed chunk now (core NATS). */
  readonly publishChunk: (subject: string, body: string, headers: Record<string, string>) => void;
}

/** A run's context, and the state it leaves. */
export interface RunContext {
  readonly ctx: HandlerContext;
  /**
   * The state the run leaves: its starting state itself when the handler never touched
   * `ctx.state` (nothing to copy or check), else the value it read or set, as JSON.
   * Throws a TerminalError when that value is not JSON-serializable.
   */
  readonly finalState: () => unknown;
}

/** No trace headers (shared, never changed). */
const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

/**
 * A run's `HandlerContext`: one object per run. Its functions (`reply`, `mail`, …) are made on
 * first use and kept, so `const { reply } = ctx` still works, and a run that calls none of
 * them allocates none (twenty closures per run were ~4 % of the host's allocation per message).
 */
class RunHandlerContext implements HandlerContext {
  readonly sessionId: string;
  readonly agentType: string;
  readonly runId: number;
  readonly attempt: number;
  readonly tenant: string | null;
  readonly now: () => number;
  /** The run's trace context on every output: a reply, a chunk, mail (the recipient continues the trace), an event. */
  readonly #tr: Readonly<Record<string, string>>;
  readonly #d: HandlerContextDeps;
  #touched = false;
  #state: unknown;
  #history: HistoryItem[] | undefined;
  #log: HandlerContext['log'] | undefined;
  #budget: HandlerBudget | undefined;
  #reply: HandlerContext['reply'] | undefined;
  #stream: HandlerContext['stream'] | undefined;
  #mail: HandlerContext['mail'] | undefined;
  #publish: HandlerContext['publish'] | undefined;
  #subscribe: HandlerContext['subscribe'] | undefined;
  #unsubscribe: HandlerContext['unsubscribe'] | undefined;
  #sleep: HandlerContext['sleep'] | undefined;
  #waitFor: HandlerContext['waitFor'] | undefined;

  constructor(d: HandlerContextDeps) {
    this.#d = d;
    this.sessionId = d.input.sessionId;
    this.agentType = d.input.agentType;
    this.runId = d.input.runId;
    this.attempt = d.input.attempt;
    this.tenant = d.tenant;
    this.now = d.now;
    this.#tr = d.run.trace?.headers ?? NO_HEADERS;
  }

  get signal(): AbortSignal {
    const run = this.#d.run;
    if (!run.ctl) {
      run.ctl = new AbortController();
      if (run.aborted) run.ctl.abort();
    }
    return run.ctl.signal;
  }

  get state(): unknown {
    if (!this.#touched) { this.#touched = true; this.#state = structuredClone(this.#d.input.userState); }
    return this.#state;
  }

  set state(v: unknown) { this.#touched = true; this.#state = v; }

  get history(): readonly HistoryItem[] { return (this.#history ??= this.#d.history()); }

  get log(): HandlerContext['log'] {
    const d = this.#d;
    return (this.#log ??= {
      debug: (msg, f) => { d.log().debug(f ?? {}, msg); },
      info: (msg, f) => { d.log().info(f ?? {}, msg); },
      warn: (msg, f) => { d.log().warn(f ?? {}, msg); },
      error: (msg, f) => { d.log().error(f ?? {}, msg); },
    });
  }

  get budget(): HandlerBudget { return (this.#budget ??= this.#d.budget()); }

  get reply(): HandlerContext['reply'] {
    const { outputs } = this.#d;
    const sid = this.sessionId;
    const tr = this.#tr;
    return (this.#reply ??= (body) => { outputs.push({ kind: 'reply', subject: OUT_SUBJECT(sid), headers: { ...tr, [H.kind]: 'reply' }, body }); });
  }

  get stream(): HandlerContext['stream'] {
    const d = this.#d;
    const { run } = d;
    const sid = this.sessionId;
    const tr = this.#tr;
    const runId = this.runId;
    return (this.#stream ??= (chunk) => {
      if (run.aborted) return;
      d.publishChunk(OUT_SUBJECT(sid), JSON.stringify(chunk), { ...tr, [H.kind]: 'chunk', [H.run]: String(runId) });
      run.streamed = (run.streamed ?? 0) + 1;
    });
  }

  get mail(): HandlerContext['mail'] {
    const { outputs } = this.#d;
    const sid = this.sessionId;
    const tr = this.#tr;
    return (this.#mail ??= (to, body, o = {}) => {
      assertSessionId(to);
      outputs.push({ kind: 'mail', subject: INBOX_SUBJECT(to), headers: { ...tr, [H.kind]: 'mail', [H.from]: sid, [H.priority]: o.priority ?? 'normal' }, body });
    });
  }

  get publish(): HandlerContext['publish'] {
    const { outputs } = this.#d;
    const sid = this.sessionId;
    const tr = this.#tr;
    return (this.#publish ??= (type, data, o = {}) => {
      if (!isEventType(type)) throw new AgentryError('INVALID_ARGUMENT', `invalid event type ${JSON.stringify(type)}`);
      outputs.push({ kind: 'event', subject: EVENT_SUBJECT(type), headers: { ...tr, [H.kind]: 'event', [H.from]: sid, [H.priority]: o.priority ?? 'normal', [H.eventType]: type }, body: data ?? null });
    });
  }

  get subscribe(): HandlerContext['subscribe'] {
    const { outputs } = this.#d;
    return (this.#subscribe ??= (pattern) => { outputs.push({ kind: 'subscribe', subject: '', headers: {}, body: assertEventPattern(pattern, 'subscribe') }); });
  }

  get unsubscribe(): HandlerContext['unsubscribe'] {
    const { outputs } = this.#d;
    return (this.#unsubscribe ??= (pattern) => { outputs.push({ kind: 'unsubscribe', subject: '', headers: {}, body: pattern }); });
  }

  get sleep(): HandlerContext['sleep'] {
    const now = this.now;
    return (this.#sleep ??= (o) => sleepResult(o, now()));
  }

  /** A waitpoint gets its id and JSON Schema here; it is stored by the commit of this run (a re-run makes another). */
  get waitFor(): HandlerContext['waitFor'] {
    const now = this.now;
    return (this.#waitFor ??= (o) => waitResult(o, now(), o.waitpoint !== undefined ? waitpointSpecOf(o.waitpoint) : undefined));
  }

  /** The state run `c` leaves (see RunContext.finalState); static, so handlers do not see it on `ctx`. */
  static finalStateOf(c: RunHandlerContext): unknown {
    if (!c.#touched) return c.#d.input.userState;
    try {
      return JSON.parse(JSON.stringify(c.#state ?? null)) as unknown;
    } catch (e) {
      throw new TerminalError(`handler left user state that is not JSON-serializable: ${errorInfo(e).message}`);
    }
  }
}

/**
 * The context one run of a handler gets. `state` is copied on first access (a turn that never
 * reads it copies nothing: two deep copies per message were a tenth of the host's allocation).
 */
export function createHandlerContext(d: HandlerContextDeps): RunContext {
  const ctx = new RunHandlerContext(d);
  return { ctx, finalState: () => RunHandlerContext.finalStateOf(ctx) };
}
