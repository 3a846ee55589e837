/**
 * Owns the inspector's picture of every session: loaded page by page with `listAgents` (cursor),
 * kept current by one `subscribe { kinds: ['state'] }` for all sessions, and completed for the
 * rows on screen with `getAgent` (mailbox depth and wake time are not in the list's summaries).
 *
 * Built for 100,000 rows: notifications are queued and applied once per animation frame; counts
 * by state are maintained incrementally; rows change in place, so the list repaints visible rows
 * every frame but re-filters and re-sorts (O(n log n)) only when the set of rows or the query
 * changed, at most a few times a second (`structureVersion`).
 */
import type { AgentryClient, Notification, StateChange } from '../../client/index.js';
import type { Connection } from './connection.js';
import { STATES, type SessionState } from './states.js';

/** One row of the sessions list. Mutable on purpose: updates patch rows in place. */
export interface SessionRow {
  readonly id: string;
  type: string;
  state: SessionState;
  /** Next wake by time (sleep deadline or wait timeout), epoch ms. */
  wakeAt: number | null;
  /** Last activity (last commit or state change), epoch ms. */
  updatedAt: number;
  /** Pending + running + deferred messages; null until the row has been on screen. */
  mailbox: number | null;
  /** When `getAgent` last filled the details (0: never). */
  detailAt: number;
  /** The state changed since: mailbox and wake time may be out of date. */
  stale: boolean;
}

/** Page size for `listAgents`; the server caps a page at 500. */
export const PAGE_SIZE = 500;
/** A changed row on screen is read again at most this often (a busy session must not flood the API). */
const STALE_REREAD_MS = 2000;
/** An unchanged row on screen is read again after this long (deferred mail does not notify). */
const DETAIL_TTL_MS = 15_000;
const DETAIL_CONCURRENCY = 4;
/** Second full read after a gap in notifications (see `subscribeAndLoad`). */
const SETTLE_RELOAD_MS = 3000;

type Listener = () => void;

/** The sessions index shared by the list and the header counts. */
export class SessionIndex {
  readonly rows = new Map<string, SessionRow>();
  /** Every row, in arrival order. */
  readonly all: SessionRow[] = [];
  readonly counts: Record<SessionState, number> = { idle: 0, active: 0, sleeping: 0, waiting: 0, stopped: 0 };
  readonly types = new Set<string>();
  /** Bumps on any change (repaint). */
  version = 0;
  /** Bumps when rows were added or a field that filters/sorts changed (re-query). */
  structureVersion = 0;
  loading = false;
  loaded = 0;
  /** Set when loading failed; shown above the list. */
  error = '';
  private queue: StateChange[] = [];
  private frame = 0;
  private readonly listeners = new Set<Listener>();
  private loadGeneration = 0;
  private wantDetails = new Set<string>();
  private detailsInFlight = 0;
  private detailTimer: ReturnType<typeof setTimeout> | null = null;
  private settleTimer: ReturnType<typeof setTimeout> | null = null;
  /** The client our subscription lives on; a new client (new token) needs a new one. */
  private subscribedOn: AgentryClient | null = null;

  constructor(private readonly conn: Connection) {}

  /** Starts following the server: subscribe first (so no change between page reads is lost), then page through. */
  attach(): () => void {
    return this.conn.onOpen(() => { void this.subscribeAndLoad(); });
  }

  /** Repaint callbacks; called at most once per animation frame. */
  onChange(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => { this.listeners.delete(fn); };
  }

  /**
   * Asks for mailbox depth, wake time and type of the rows now on screen. Throttled (only the
   * latest set counts when the timer fires), so a fast scroll through 100,000 rows costs a
   * handful of `getAgent` calls, not thousands.
   */
  wantDetailsFor(ids: readonly string[]): void {
    const now = Date.now();
    this.wantDetails = new Set(ids.filter((id) => {
      const r = this.rows.get(id);
      if (!r) return false;
      const age = now - r.detailAt;
      return r.detailAt === 0 || age > DETAIL_TTL_MS || (r.stale && age > STALE_REREAD_MS);
    }));
    this.detailTimer ??= setTimeout(() => { this.detailTimer = null; this.pumpDetails(); }, 150);
  }

  /** Adds or updates a row from a `getAgent` or `createAgent` answer. */
  upsert(id: string, fields: { type?: string; state: SessionState; wakeAt?: number | null; updatedAt?: number | null; mailbox?: number | null }): void {
    let r = this.rows.get(id);
    if (!r) {
      r = { id, type: fields.type ?? '…', state: fields.state, wakeAt: fields.wakeAt ?? null, updatedAt: fields.updatedAt ?? Date.now(), mailbox: fields.mailbox ?? null, detailAt: 0, stale: false };
      this.rows.set(id, r);
      this.all.push(r);
      this.counts[r.state]++;
      if (fields.type) this.types.add(fields.type);
      this.structureVersion++;
    } else {
      if (r.state !== fields.state) { this.counts[r.state]--; this.counts[fields.state]++; r.state = fields.state; this.structureVersion++; }
      if (fields.type && r.type !== fields.type) { r.type = fields.type; this.types.add(fields.type); this.structureVersion++; }
      if (fields.wakeAt !== undefined) r.wakeAt = fields.wakeAt;
      if (fields.updatedAt) r.updatedAt = Math.max(r.updatedAt, fields.updatedAt);
      if (fields.mailbox !== undefined) r.mailbox = fields.mailbox;
    }
    this.changed();
  }

  private async subscribeAndLoad(): Promise<void> {
    const client = this.conn.client;
    if (this.subscribedOn !== client) {
      this.subscribedOn = client;
      try {
        await client.subscribe({ kinds: ['state'] }, (n) => { this.onNotification(n); }, {
          // Notifications were lost (slow network) or the connection was re-established: what we
          // hold may be stale, so read everything again — twice, because a session publishes its
          // state change before it commits: one that changed just before the subscription came
          // back may not be readable yet at the first read.
          onGap: () => {
            void this.load();
            if (this.settleTimer) clearTimeout(this.settleTimer);
            this.settleTimer = setTimeout(() => { this.settleTimer = null; void this.load(); }, SETTLE_RELOAD_MS);
          },
        });
      } catch (e) {
        this.subscribedOn = null;
        this.error = `cannot subscribe to state changes: ${(e as Error).message}`;
        this.changed();
      }
    }
    await this.load();
  }

  /** Reads every session, page by page; rows update in place, so a reload does not flicker. */
  async load(): Promise<void> {
    const gen = ++this.loadGeneration;
    this.loading = true;
    this.loaded = 0;
    this.error = '';
    this.changed();
    let after: string | undefined;
    try {
      for (;;) {
        const page = await this.conn.client.listAgents({ limit: PAGE_SIZE, ...(after !== undefined ? { after } : {}) });
        if (gen !== this.loadGeneration) return;
        for (const a of page.agents) {
          const r = this.rows.get(a.agentId);
          // A notification newer than this page wins over the page's state.
          if (r && r.updatedAt > a.updatedAt) {
            if (r.type !== a.type) this.upsert(a.agentId, { type: a.type, state: r.state });
            continue;
          }
          this.upsert(a.agentId, { type: a.type, state: a.state, wakeAt: a.wakeAt, updatedAt: a.updatedAt });
        }
        this.loaded += page.agents.length;
        this.changed();
        if (page.next === null) break;
        after = page.next;
      }
    } catch (e) {
      if (gen === this.loadGeneration) this.error = `cannot list sessions: ${(e as Error).message}`;
    } finally {
      if (gen === this.loadGeneration) { this.loading = false; this.changed(); }
    }
  }

  private onNotification(n: Notification): void {
    if (n.kind !== 'state') return;
    const d = n.data as StateChange;
    if (typeof d?.agentId !== 'string' || !(STATES as readonly string[]).includes(d.state)) return;
    this.queue.push(d);
    this.frame ||= requestAnimationFrame(() => { this.flush(); });
  }

  private flush(): void {
    this.frame = 0;
    const batch = this.queue;
    this.queue = [];
    for (const d of batch) {
      const leavesWake = d.state !== 'sleeping' && d.state !== 'waiting';
      this.upsert(d.agentId, { state: d.state as SessionState, updatedAt: d.at, ...(leavesWake ? { wakeAt: null } : {}) });
      this.rows.get(d.agentId)!.stale = true; // mailbox and wake time changed with the state: read again when on screen
    }
    this.emit();
  }

  private pumpDetails(): void {
    while (this.detailsInFlight < DETAIL_CONCURRENCY && this.wantDetails.size > 0) {
      const id = this.wantDetails.values().next().value!;
      this.wantDetails.delete(id);
      const row = this.rows.get(id);
      if (!row) continue;
      row.detailAt = Date.now();
      row.stale = false;
      this.detailsInFlight++;
      this.conn.client.getAgent({ agentId: id }).then((v) => {
        const mailbox = v.mailbox.pending + v.mailbox.running + v.mailbox.deferred.length;
        this.upsert(id, { type: v.type, state: v.state, wakeAt: v.wake?.until ?? v.wait?.timeoutAt ?? null, mailbox, ...(v.updatedAt ? { updatedAt: v.updatedAt } : {}) });
      }, () => { /* shown as unknown; retried when it is on screen again */ }).finally(() => {
        this.detailsInFlight--;
        this.pumpDetails();
      });
    }
  }

  private changed(): void {
    this.version++;
    this.frame ||= requestAnimationFrame(() => { this.flush(); });
  }

  private emit(): void {
    for (const fn of [...this.listeners]) fn();
  }
}

/** The list's query: filters and sort. */
export interface Query {
  readonly states: ReadonlySet<SessionState>;
  readonly type: string;
  readonly text: string;
  readonly sort: SortKey;
  readonly desc: boolean;
}

/** Columns the list sorts by. */
export type SortKey = 'id' | 'type' | 'state' | 'wakeAt' | 'updatedAt';

const STATE_ORDER: Record<SessionState, number> = { active: 0, waiting: 1, sleeping: 2, idle: 3, stopped: 4 };

/**
 * The rows matching `q`, sorted. Plain loops and one `sort`: 100,000 rows filter in a few
 * milliseconds and sort in tens, which is why callers run this only when the query or the set
 * of rows changed.
 */
export function queryRows(all: readonly SessionRow[], q: Query): SessionRow[] {
  const text = q.text.trim().toLowerCase();
  const out: SessionRow[] = [];
  for (const r of all) {
    if (q.states.size > 0 && !q.states.has(r.state)) continue;
    if (q.type && r.type !== q.type) continue;
    if (text && !r.id.toLowerCase().includes(text)) continue;
    out.push(r);
  }
  const dir = q.desc ? -1 : 1;
  const byId = (a: SessionRow, b: SessionRow): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  let cmp: (a: SessionRow, b: SessionRow) => number;
  switch (q.sort) {
    case 'id': cmp = byId; break;
    case 'type': cmp = (a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : byId(a, b)); break;
    case 'state': cmp = (a, b) => STATE_ORDER[a.state] - STATE_ORDER[b.state] || byId(a, b); break;
    // Sessions without a wake time go last whichever the direction.
    case 'wakeAt': cmp = (a, b) => (a.wakeAt ?? (q.desc ? -Infinity : Infinity)) - (b.wakeAt ?? (q.desc ? -Infinity : Infinity)) || byId(a, b); break;
    case 'updatedAt': cmp = (a, b) => a.updatedAt - b.updatedAt || byId(a, b); break;
  }
  out.sort((a, b) => dir * cmp(a, b));
  return out;
}
