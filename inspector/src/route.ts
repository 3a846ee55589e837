/**
 * Owns the inspector's hash routes: which page a location hash names and the filters in its
 * query (`#/dead-letters?reason=handler-failed&tenant=acme`), so every page can be linked to,
 * bookmarked and reloaded with its filters, and the back button works. Pure functions: the
 * model tests run them in Node.
 */

/** The top-level pages, in navigation order (`session` is one session, under Sessions). */
export const PAGES = ['sessions', 'events', 'dead-letters', 'schedules', 'cluster', 'tenants'] as const;
export type PageName = (typeof PAGES)[number] | 'session';

/** What the navigation calls each page. */
export const PAGE_TITLES: Readonly<Record<PageName, string>> = {
  sessions: 'Sessions', session: 'Session', events: 'Events', 'dead-letters': 'Dead letters',
  schedules: 'Schedules', cluster: 'Nodes', tenants: 'Tenants',
};

/** A parsed location hash. */
export interface Route {
  readonly page: PageName;
  /** The session of `#/s/<id>`. */
  readonly session?: string;
  /** The filters of the page (`?k=v&…` after its path). */
  readonly params: Readonly<Record<string, string>>;
}

/**
 * The route a location hash names; anything unknown is the sessions page.
 *
 * @example
 * parseRoute('#/events?type=invoice.*') // { page: 'events', params: { type: 'invoice.*' } }
 */
export function parseRoute(hash: string): Route {
  const body = hash.replace(/^#/, '');
  const q = body.indexOf('?');
  const path = q === -1 ? body : body.slice(0, q);
  const params: Record<string, string> = {};
  if (q !== -1) for (const [k, v] of new URLSearchParams(body.slice(q + 1))) if (v !== '') params[k] = v;
  const s = /^\/s\/(.+)$/.exec(path);
  if (s) {
    try { return { page: 'session', session: decodeURIComponent(s[1]!), params }; } catch { return { page: 'sessions', params }; }
  }
  const name = path.replace(/^\//, '').replace(/\/$/, '');
  if (name === 'nodes') return { page: 'cluster', params };
  return { page: (PAGES as readonly string[]).includes(name) ? name as PageName : 'sessions', params };
}

/**
 * The hash of a page with filters; empty values are left out, keys sorted, so one filter set has
 * one URL.
 */
export function hashOf(page: Exclude<PageName, 'session'>, params: Readonly<Record<string, string | undefined>> = {}): string {
  const q = new URLSearchParams();
  for (const k of Object.keys(params).sort()) { const v = params[k]; if (v !== undefined && v !== '') q.set(k, v); }
  const s = q.toString();
  return `#/${page === 'sessions' ? '' : page}${s ? `?${s}` : ''}`;
}

/** The hash of one session's page. */
export function sessionHash(id: string): string {
  return `#/s/${encodeURIComponent(id)}`;
}

/** `<input type="datetime-local">` text (local time) as epoch ms; undefined when empty or invalid. */
export function localInputToMs(text: string | undefined): number | undefined {
  if (!text) return undefined;
  const ms = new Date(text).getTime();
  return Number.isFinite(ms) ? ms : undefined;
}

/** The page size a URL asks for (`?limit=`), within 1…`max`; `dflt` when absent or not a number. */
export function pageSize(text: string | undefined, dflt: number, max: number): number {
  const n = Math.floor(Number(text));
  return Number.isFinite(n) && n >= 1 ? Math.min(n, max) : dflt;
}
