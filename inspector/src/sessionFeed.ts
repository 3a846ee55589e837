/**
 * Owns everything the session view shows about one session: its view (`getAgent`), transitions
 * (`getTransitions`, paged), history (`getHistory`), cron tasks (`listTasks`), dead letters
 * (`listDeadLetters`) and its live state changes and outputs (`subscribe { agentId }`). A state
 * notification is applied at once (so `active` shows while the handler runs) and triggers one
 * debounced re-read of the rest.
 */
import type { Notification, OutputData, ResultOf, StateChange } from '../../client/index.js';
import { describeError, type Connection } from './connection.js';
import type { LastTransition } from './statechart/graph.js';

/** `getAgent`'s result. */
export type AgentView = ResultOf<'getAgent'>;
/** One recorded transition. */
export type Transition = ResultOf<'getTransitions'>['transitions'][number];
/** One history message. */
export type HistoryMessage = ResultOf<'getHistory'>['messages'][number];
/** One cron task. */
export type Task = ResultOf<'listTasks'>['tasks'][number];
/** One dead letter. */
export type DeadLetter = ResultOf<'listDeadLetters'>['deadLetters'][number];

/** An output seen live on the subscription. */
/** One live output; `retracted` marks a chunk whose run was aborted (a `retracted` notice followed it). */
export interface LiveOutput { readonly at: number; readonly kind: string; readonly body: unknown; readonly run?: number; readonly retracted?: boolean }

const HISTORY_LIMIT = 200;
const TRANSITION_PAGE = 1000;
const MAX_TRANSITION_PAGES = 20;
/** Transitions kept in memory (the timeline draws the newest 500 of them). */
const MAX_TRANSITIONS = 20_000;
const REFRESH_MS = 150;

const transitionKey = (t: Transition): string => `${t.at}|${t.from}|${t.to}|${t.event}`;

type Listener = () => void;

/** The live data of one session; create one per open session view and `close()` it on leave. */
export class SessionFeed {
  view: AgentView | null = null;
  transitions: Transition[] = [];
  history: HistoryMessage[] = [];
  tasks: Task[] = [];
  deadLetters: DeadLetter[] = [];
  outputs: LiveOutput[] = [];
  last: LastTransition | null = null;
  error = '';
  loading = true;
  private readonly seen = new Set<string>();
  private readonly listeners = new Set<Listener>();
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  private unsubscribe: (() => Promise<void>) | null = null;
  private closed = false;
  private readonly detach: () => void;
  private frame = 0;
  /** Counts state notifications, so a re-read that raced one does not put an older state back. */
  private stateSeq = 0;

  constructor(private readonly conn: Connection, readonly agentId: string) {
    this.detach = conn.onOpen(() => { void this.open(); });
  }

  /** Repaint callbacks (at most once per animation frame). */
  onChange(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => { this.listeners.delete(fn); };
  }

  /** Stops the subscription and timers. */
  close(): void {
    this.closed = true;
    this.detach();
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    if (this.frame) cancelAnimationFrame(this.frame);
    void this.unsubscribe?.();
  }

  /** Re-reads everything soon (after a control call, or when a notification said something changed). */
  refreshSoon(): void {
    if (this.closed || this.refreshTimer) return;
    this.refreshTimer = setTimeout(() => { this.refreshTimer = null; void this.refresh(); }, REFRESH_MS);
  }

  private async open(): Promise<void> {
    try {
      const sub = await this.conn.client.subscribe({ agentId: this.agentId, kinds: ['state', 'output'] }, (n) => { this.onNotification(n); }, {
        onGap: () => { this.refreshSoon(); },
      });
      if (this.closed) { void sub.unsubscribe(); return; }
      this.unsubscribe = () => sub.unsubscribe();
    } catch (e) {
      this.error = `cannot follow this session live: ${describeError(e)}`;
    }
    await this.refresh(true);
  }

  private async refresh(initial = false): Promise<void> {
    const api = this.conn.client;
    const id = this.agentId;
    const seqAtStart = this.stateSeq;
    try {
      const [view, history, tasks, dead] = await Promise.all([
        api.getAgent({ agentId: id }),
        api.getHistory({ agentId: id, limit: HISTORY_LIMIT }),
        api.listTasks({ agentId: id }),
        api.listDeadLetters({ agentId: id, limit: 100 }),
        this.loadTransitions(),
      ]);
      if (this.closed) return;
      const newer = this.stateSeq !== seqAtStart && this.view;
      this.view = newer ? { ...view, state: newer.state, stateValue: newer.stateValue } : view;
      this.history = history.messages;
      this.tasks = tasks.tasks;
      this.deadLetters = dead.deadLetters;
      this.error = '';
      if (initial && !this.last) {
        const t = this.transitions[this.transitions.length - 1];
        if (t) this.last = { from: t.from, to: t.to, event: t.event, key: `loaded:${transitionKey(t)}` };
      }
    } catch (e) {
      if (!this.closed) this.error = describeError(e);
    } finally {
      this.loading = false;
      this.changed();
    }
  }

  /** Pages forward from the last transition we hold (`after` is exclusive, so start 1 ms early and drop repeats). */
  private async loadTransitions(): Promise<void> {
    for (let page = 0; page < MAX_TRANSITION_PAGES; page++) {
      const lastAt = this.transitions[this.transitions.length - 1]?.at;
      const r = await this.conn.client.getTransitions({ agentId: this.agentId, limit: TRANSITION_PAGE, ...(lastAt !== undefined ? { after: lastAt - 1 } : {}) });
      const before = this.transitions.length;
      for (const t of r.transitions) this.addTransition(t);
      if (r.transitions.length < TRANSITION_PAGE || this.transitions.length === before) return;
    }
  }

  private addTransition(t: Transition): void {
    const k = transitionKey(t);
    if (this.seen.has(k)) {
      // A live notice carries no id; the stored row that repeats it does (time travel and fork name steps by id).
      if (t.id !== undefined) {
        const i = this.transitions.findIndex((x) => x.id === undefined && transitionKey(x) === k);
        if (i >= 0) this.transitions[i] = t;
      }
      return;
    }
    this.seen.add(k);
    this.transitions.push(t);
    // A page left open on a busy session must not grow without bound: keep the newest.
    if (this.transitions.length > MAX_TRANSITIONS) {
      for (const old of this.transitions.splice(0, this.transitions.length - MAX_TRANSITIONS + 1000)) this.seen.delete(transitionKey(old));
    }
    // Live notifications and stored rows can interleave: keep time order.
    const n = this.transitions.length;
    if (n > 1 && this.transitions[n - 2]!.at > t.at) this.transitions.sort((a, b) => a.at - b.at);
  }

  private onNotification(n: Notification): void {
    if (n.kind === 'state') {
      const d = n.data as StateChange;
      this.stateSeq++;
      this.last = { from: d.from, to: d.to, event: d.event, key: `live:${n.seq}:${d.at}` };
      if (this.view) this.view = { ...this.view, state: d.state as AgentView['state'], stateValue: d.to };
      this.addTransition({ at: d.at, event: d.event, from: d.from, to: d.to });
    } else if (n.kind === 'output') {
      const d = n.data as OutputData;
      const kept = d.kind === 'retracted' ? this.outputs.map((o) => (o.kind === 'chunk' && o.run === d.run ? { ...o, retracted: true } : o)) : this.outputs;
      this.outputs = [{ at: Date.now(), kind: d.kind, body: d.body, ...(d.run !== undefined ? { run: d.run } : {}) }, ...kept].slice(0, 50);
    }
    this.changed();
    this.refreshSoon();
  }

  private changed(): void {
    this.frame ||= requestAnimationFrame(() => {
      this.frame = 0;
      for (const fn of [...this.listeners]) fn();
    });
  }
}
