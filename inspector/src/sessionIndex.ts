/**
 * Owns the sessions list's data at fleet scale: pages of the current query read from the server
 * (`listAgents`: filtered, sorted, keyset cursor), only those near the rows on screen kept in
 * memory, plus the counts the header shows. It never holds every session: at 100,000 sessions
 * the tab keeps a few hundred rows and one cursor string per page it has passed.
 *
 * Pages: page k covers rows [k·PAGE_SIZE, (k+1)·PAGE_SIZE); its start cursor is page k−1's
 * `next`. Every page but the last is full, so row i is found in O(1). Scrolling asks for the
 * pages in view (`ensureRows`); pages far from view drop their rows and keep their cursor, so a
 * scroll back reads them again. The row count is what is known plus one more page while the
 * server says there is more: the list grows as you scroll (infinite scrolling).
 *
 * Live: one `subscribe { kinds: ['state'] }` for all sessions. A change to a row we hold patches
 * it in place (batched per animation frame); any change marks the list dirty, and a dirty list
 * re-reads its counts and the pages in view at most every REFRESH_MS — never every session.
 * Rows never wait for counts: those are a call of their own (`readCounts`).
 * Faults: a failed page read is shown (`error`) and retried when the rows are asked for again;
 * a notification gap (reconnect) marks the list dirty; a reply for an old query is dropped.
 */
import type { AgentryClient, Notification, StateChange } from '../../client/index.js';
import type { Connection } from './connection.js';
import { DEFAULT_QUERY, listParamsOf, queryKey, type ListQuery } from './listQuery.js';
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
  tenant: string | null;
  /** Pending + running + deferred messages; null until the row has been on screen. */
  mailbox: number | null;
  /** When `getAgent` last filled the details (0: never). */
  detailAt: number;
  /** The state changed since: mailbox and wake time may be out of date. */
  stale: boolean;
}

/** Rows per `listAgents` call. */
export const PAGE_SIZE = 200;
/** Pages either side of the ones in view that keep their rows; the rest keep only their cursor. */
const KEEP_PAGES = 2;
/** A dirty list re-reads counts and the pages in view at most this often. */
const REFRESH_MS = 2000;
/** A changed row on screen is read again at most this often (a busy session must not flood the API). */
const STALE_REREAD_MS = 2000;
/**
 * After a refresh that notices caused, the counts and pages are read once more this much later,
 * and again while the count still moves: a state notice goes out before its commit lands, so a
 * read right after the last notice of a burst can miss the last commits, and no later notice comes
 * to correct it (10,000 new sessions: the summary stayed at 9,438 on a loaded box).
 */
const SETTLE_MS = 3000;
/** An unchanged row on screen is read again after this long (deferred mail does not notify). */
const DETAIL_TTL_MS = 15_000;
const DETAIL_CONCURRENCY = 4;
/** A page whose read failed is asked again after this long (when it is still in view). */
const RETRY_MS = 3000;

interface Page {
  /** Cursor of this page (undefined for the first); unknown (null) until the page before it is read. */
  start: string | undefined | null;
  rows: SessionRow[] | null;
  /** The page after: a cursor, null when this is the last, undefined until read. */
  next: string | null | undefined;
  loading: boolean;
  /** After a failed read, not before this time (epoch ms): a server that refuses must not be asked in a loop. */
  retryAt?: number;
}

type Listener = () => void;

/** The sessions list's model, shared by the list and its header. */
export class SessionIndex {
  query: ListQuery = DEFAULT_QUERY;
  /** Sessions that pass the filters (first page's count; at most 10,000, see `totalCapped`). */
  total: number | null = null;
  totalCapped = false;
  /** All sessions by state, regardless of filters; null until first read. */
  counts: Record<SessionState, number> | null = null;
  /** Agent types seen on the pages read (suggestions for the type filter). */
  readonly types = new Set<string>();
  /** True while the first page of the query is being read. */
  loading = false;
  /** Set when a read failed; shown above the list. */
  error = '';
  /** Bumps on any change (repaint). */
  version = 0;
  /** The list's scroll offset and active row, kept across visits to a session. */
  scrollTop = 0;
  activeRow = 0;
  private pages: Page[] = [];
  private readonly byId = new Map<string, SessionRow>();
  private generation = 0;
  private queue: StateChange[] = [];
  private frame = 0;
  private readonly listeners = new Set<Listener>();
  private view: [number, number] = [0, 0];
  private dirty = false;
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  private settleTimer: ReturnType<typeof setTimeout> | null = null;
  private lastRefresh = 0;
  private wantDetails = new Set<string>();
  private detailsInFlight = 0;
  private detailTimer: ReturnType<typeof setTimeout> | null = null;
  /** The client our subscription lives on; a new client (new token) needs a new one. */
  private subscribedOn: AgentryClient | null = null;
  private connected = false;

  constructor(private readonly conn: Connection) {}

  /** Starts following the server: subscribe to state changes, then read the first page. */
  attach(): () => void {
    return this.conn.onOpen(() => { void this.subscribeAndLoad(); });
  }

  /** Repaint callbacks; called at most once per animation frame. */
  onChange(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => { this.listeners.delete(fn); };
  }

  /** Rows known or expected: every page read, plus one page while the server has more. */
  get rowCount(): number {
    let n = 0;
    for (const p of this.pages) n += p.rows?.length ?? PAGE_SIZE;
    const last = this.pages.at(-1);
    if (last?.rows && last.next) n += PAGE_SIZE; // the next page, not created yet
    return n;
  }

  /** True once the last page has been read (the row count is exact). */
  get complete(): boolean {
    const last = this.pages.at(-1);
    return last !== undefined && last.rows !== null && last.next === null;
  }

  /** Row `i`, or undefined while its page is not read (shown as a placeholder). */
  rowAt(i: number): SessionRow | undefined {
    return this.pages[Math.floor(i / PAGE_SIZE)]?.rows?.[i % PAGE_SIZE];
  }

  /** Shows `q` (a new query starts at the top; the same query keeps its pages and scroll). */
  setQuery(q: ListQuery): void {
    if (queryKey(q) === queryKey(this.query) && this.pages.length > 0) return;
    this.query = q;
    this.scrollTop = 0;
    this.activeRow = 0;
    this.reset();
  }

  /** Reads the counts and the pages in view again now (the Refresh button). */
  reload(): void {
    this.dirty = true;
    if (this.refreshTimer) { clearTimeout(this.refreshTimer); this.refreshTimer = null; }
    void this.refresh();
  }

  /**
   * The rows [first, last) are in view: reads their pages (in order: a page's cursor comes from
   * the one before), and drops the rows of pages far from view.
   */
  ensureRows(first: number, last: number): void {
    this.view = [first, last];
    const k0 = Math.floor(first / PAGE_SIZE);
    const k1 = Math.floor(Math.max(first, last - 1) / PAGE_SIZE);
    let dropped = false;
    for (let k = 0; k < this.pages.length; k++) {
      const p = this.pages[k]!;
      if ((k < k0 - KEEP_PAGES || k > k1 + KEEP_PAGES) && p.rows?.length === PAGE_SIZE && !p.loading) { p.rows = null; dropped = true; }
    }
    if (dropped) this.reindex();
    for (let k = k0; k <= k1; k++) {
      if (k >= this.pages.length) {
        const prev = this.pages.at(-1);
        if (!prev?.rows || !prev.next) break; // not read yet, or the end
        this.pages.push({ start: prev.next, rows: null, next: undefined, loading: false });
      }
      const p = this.pages[k];
      if (!p) break; // beyond the next page: the view cannot be there yet
      if (!p.rows && !p.loading && p.start !== null && !(p.retryAt !== undefined && Date.now() < p.retryAt)) void this.readPage(k);
    }
  }

  /** Patches a row we hold from a `getAgent` or `createAgent` answer; a row we do not hold marks the list dirty. */
  upsert(id: string, fields: { type?: string; state: SessionState; wakeAt?: number | null; updatedAt?: number | null; mailbox?: number | null }): void {
    const r = this.find(id);
    if (fields.type) this.types.add(fields.type);
    if (!r) { this.markDirty(); return; }
    if (r.state !== fields.state) { r.state = fields.state; r.stale = true; }
    if (fields.type) r.type = fields.type;
    if (fields.wakeAt !== undefined) r.wakeAt = fields.wakeAt;
    if (fields.updatedAt) r.updatedAt = Math.max(r.updatedAt, fields.updatedAt);
    if (fields.mailbox !== undefined) r.mailbox = fields.mailbox;
    this.changed();
  }

  /**
   * Asks for mailbox depth and wake time of the rows now on screen. Throttled (only the latest
   * set counts when the timer fires), so a fast scroll costs a handful of `getAgent` calls.
   */
  wantDetailsFor(ids: readonly string[]): void {
    const now = Date.now();
    this.wantDetails = new Set(ids.filter((id) => {
      const r = this.find(id);
      if (!r) return false;
      const age = now - r.detailAt;
      return r.detailAt === 0 || age > DETAIL_TTL_MS || (r.stale && age > STALE_REREAD_MS);
    }));
    this.detailTimer ??= setTimeout(() => { this.detailTimer = null; this.pumpDetails(); }, 150);
  }

  private find(id: string): SessionRow | undefined {
    return this.byId.get(id);
  }

  /** Re-indexes the rows held (after pages were read or dropped): a few hundred rows. */
  private reindex(): void {
    this.byId.clear();
    for (const p of this.pages) for (const r of p.rows ?? []) this.byId.set(r.id, r);
  }

  /** A new query (or connection): the first page, and beside it the counts. */
  private reset(withStateCounts = false): void {
    this.generation++;
    this.pages = [{ start: undefined, rows: null, next: undefined, loading: false }];
    this.byId.clear();
    this.total = null;
    this.totalCapped = false;
    this.error = '';
    this.dirty = false;
    if (this.connected) {
      void this.readPage(0);
      void this.readCounts(withStateCounts);
    }
    this.changed();
  }

  /**
   * Reads how many sessions pass the filters (capped by the server) and, when asked, the counts
   * by state — in a call of its own, so the rows never wait for a count. The counts by state
   * ignore the filters and read every row: they are read on load and refresh, not per keystroke.
   */
  private async readCounts(withStateCounts: boolean): Promise<void> {
    const gen = this.generation;
    try {
      const r = await this.conn.client.listAgents({ ...listParamsOf(this.query, Date.now()), limit: 1, count: true, ...(withStateCounts ? { countByState: true } : {}) });
      if (r.stateCounts) this.counts = { ...r.stateCounts };
      if (gen === this.generation && r.total !== undefined) { this.total = r.total; this.totalCapped = r.totalCapped === true; }
      this.changed();
    } catch (e) {
      if (gen === this.generation) { this.error = `cannot count sessions: ${(e as Error).message}`; this.changed(); }
    }
  }

  private async subscribeAndLoad(): Promise<void> {
    const client = this.conn.client;
    if (this.subscribedOn !== client) {
      this.connected = false; // no page read before the subscription: a change in between would be lost
      this.subscribedOn = client;
      try {
        // A gap (lost notifications, a reconnect) means what we show may be stale: refresh.
        await client.subscribe({ kinds: ['state'] }, (n) => { this.onNotification(n); }, { onGap: () => { this.markDirty(); } });
      } catch (e) {
        this.subscribedOn = null;
        this.error = `cannot subscribe to state changes: ${(e as Error).message}`;
        this.changed();
      }
    }
    this.connected = true;
    this.reset(true);
  }

  /** Reads page `k` from its cursor; a changed end moves the pages after it (they are read again when in view). */
  private async readPage(k: number, refresh = false): Promise<void> {
    const page = this.pages[k];
    if (!page || page.start === null || !this.connected) return;
    const gen = this.generation;
    page.loading = true;
    if (k === 0 && !refresh) this.loading = true;
    this.changed();
    try {
      const r = await this.conn.client.listAgents({
        ...listParamsOf(this.query, Date.now()), limit: PAGE_SIZE,
        ...(page.start !== undefined ? { after: page.start } : {}),
      });
      if (gen !== this.generation || this.pages[k] !== page) return;
      page.rows = r.agents.map((a) => {
        this.types.add(a.type);
        const old = page.rows?.find((x) => x.id === a.agentId);
        return {
          id: a.agentId, type: a.type, state: a.state, wakeAt: a.wakeAt, updatedAt: a.updatedAt, tenant: a.tenant ?? null,
          mailbox: old?.mailbox ?? null, detailAt: old && old.state === a.state ? old.detailAt : 0, stale: false,
        };
      });
      if (page.next !== undefined && page.next !== r.next) {
        // The page ends elsewhere now: what follows was read from an old cursor.
        this.pages.length = k + 1;
      }
      page.next = r.next;
      if (r.next === null) this.pages.length = k + 1;
      else if (this.pages[k + 1]) this.pages[k + 1]!.start = r.next;
      this.reindex();
      this.error = '';
    } catch (e) {
      page.retryAt = Date.now() + RETRY_MS;
      if (gen === this.generation) this.error = `cannot list sessions: ${(e as Error).message}`;
    } finally {
      page.loading = false;
      if (gen === this.generation) {
        if (k === 0) this.loading = false;
        this.changed();
        this.ensureRows(...this.view); // the pages after this one may be waiting for its cursor
      }
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
      const r = this.find(d.agentId);
      if (!r) continue;
      if (r.state !== d.state) { r.state = d.state as SessionState; r.stale = true; }
      r.updatedAt = Math.max(r.updatedAt, d.at);
      if (d.state !== 'sleeping' && d.state !== 'waiting') r.wakeAt = null;
    }
    if (batch.length > 0) this.markDirty();
    this.emit();
  }

  /** Something changed on the server: re-read counts and the pages in view, at most every REFRESH_MS. */
  private markDirty(): void {
    this.dirty = true;
    if (this.refreshTimer || !this.connected) return;
    const wait = Math.max(0, this.lastRefresh + REFRESH_MS - Date.now());
    this.refreshTimer = setTimeout(() => { this.refreshTimer = null; void this.refresh(); }, wait);
  }

  /** Re-reads the counts and the pages in view, in order. */
  private async refresh(settling = false): Promise<void> {
    if (!this.dirty) return;
    this.dirty = false;
    this.lastRefresh = Date.now();
    const k0 = Math.floor(this.view[0] / PAGE_SIZE);
    const k1 = Math.floor(Math.max(this.view[0], this.view[1] - 1) / PAGE_SIZE);
    const gen = this.generation;
    const before = this.total;
    const counted = this.readCounts(true);
    for (const k of new Set([k0, ...Array.from({ length: k1 - k0 + 1 }, (_, i) => k0 + i)])) {
      if (gen !== this.generation || !this.pages[k] || this.pages[k]!.loading) continue;
      await this.readPage(k, true);
    }
    await counted;
    if (!settling || this.total !== before) this.armSettle(); // see SETTLE_MS
  }

  /** Reads once more SETTLE_MS from now (replacing a read already armed). */
  private armSettle(): void {
    if (this.settleTimer) clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => { this.settleTimer = null; this.dirty = true; void this.refresh(true); }, SETTLE_MS);
  }

  private pumpDetails(): void {
    while (this.detailsInFlight < DETAIL_CONCURRENCY && this.wantDetails.size > 0) {
      const id = this.wantDetails.values().next().value!;
      this.wantDetails.delete(id);
      const row = this.find(id);
      if (!row) continue;
      row.detailAt = Date.now();
      row.stale = false;
      this.detailsInFlight++;
      this.conn.client.getAgent({ agentId: id }).then((v) => {
        const mailbox = v.mailbox.pending + v.mailbox.running + v.mailbox.deferred.length;
        const r = this.find(id);
        if (!r) return;
        r.state = v.state;
        r.wakeAt = v.wake?.until ?? v.wait?.timeoutAt ?? null;
        r.mailbox = mailbox;
        if (v.updatedAt) r.updatedAt = Math.max(r.updatedAt, v.updatedAt);
        this.changed();
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
