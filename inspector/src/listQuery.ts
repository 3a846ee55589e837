/**
 * Owns the sessions list's query as the user sees it: filters and order, their place in the
 * URL (`#/?state=sleeping,idle&type=echo&tag=vip&q=support-&sort=updatedAt&order=desc`), so a reload,
 * a shared link and the back button bring the same list back, and their translation into
 * `listAgents` params (all filtering and sorting happen on the server).
 */
import type { ParamsOf } from '../../client/index.js';
import { STATES, type SessionState } from './states.js';

/** Orders the list offers (the server's `listAgents` sorts). */
export type SortKey = 'agentId' | 'updatedAt' | 'type' | 'state';
const SORTS: readonly SortKey[] = ['agentId', 'updatedAt', 'type', 'state'];

/** "Last activity within": the choices of the activity filter, in milliseconds. */
export const ACTIVITY_WINDOWS: Readonly<Record<string, number>> = { '5m': 300_000, '1h': 3_600_000, '24h': 86_400_000, '7d': 604_800_000 };

/** The list's query. */
export interface ListQuery {
  readonly states: readonly SessionState[];
  readonly type: string;
  readonly tenant: string;
  /** One tag the sessions carry (set at creation). */
  readonly tag: string;
  /** Session id prefix. */
  readonly q: string;
  /** A key of ACTIVITY_WINDOWS, or '' for any time. */
  readonly active: string;
  readonly sort: SortKey;
  readonly desc: boolean;
}

/** Newest activity first, no filter: what a fleet operator looks at first. */
export const DEFAULT_QUERY: ListQuery = { states: [], type: '', tenant: '', tag: '', q: '', active: '', sort: 'updatedAt', desc: true };

/** The direction a sort starts in when its column is chosen. */
export function defaultDesc(sort: SortKey): boolean {
  return sort === 'updatedAt';
}

/** True when the query filters anything (the summary then says "n of N"). */
export function isFiltered(q: ListQuery): boolean {
  return q.states.length > 0 || q.type !== '' || q.tenant !== '' || q.tag !== '' || q.q !== '' || q.active !== '';
}

/** The query in a location hash; unknown or malformed parts fall back to the defaults. */
export function queryFromHash(hash: string): ListQuery {
  const i = hash.indexOf('?');
  if (i < 0) return DEFAULT_QUERY;
  const p = new URLSearchParams(hash.slice(i + 1));
  const states = (p.get('state') ?? '').split(',').filter((s): s is SessionState => (STATES as readonly string[]).includes(s));
  const sortParam = p.get('sort') as SortKey | null;
  const sort = sortParam && SORTS.includes(sortParam) ? sortParam : DEFAULT_QUERY.sort;
  const order = p.get('order');
  const active = p.get('active') ?? '';
  return {
    states: STATES.filter((s) => states.includes(s)), // one order, whatever the URL says
    type: p.get('type') ?? '', tenant: p.get('tenant') ?? '', tag: p.get('tag') ?? '', q: p.get('q') ?? '',
    active: active in ACTIVITY_WINDOWS ? active : '',
    sort, desc: order === 'asc' ? false : order === 'desc' ? true : defaultDesc(sort),
  };
}

/** The hash of the sessions view with `q` (defaults left out, so the plain list is `#/`). */
export function hashOf(q: ListQuery): string {
  const p = new URLSearchParams();
  if (q.states.length > 0) p.set('state', q.states.join(','));
  if (q.type) p.set('type', q.type);
  if (q.tenant) p.set('tenant', q.tenant);
  if (q.tag) p.set('tag', q.tag);
  if (q.q) p.set('q', q.q);
  if (q.active) p.set('active', q.active);
  if (q.sort !== DEFAULT_QUERY.sort || q.desc !== defaultDesc(q.sort)) {
    p.set('sort', q.sort);
    p.set('order', q.desc ? 'desc' : 'asc');
  }
  const s = p.toString();
  return s ? `#/?${s}` : '#/';
}

/** A stable key of `q`: two queries with the same key list the same rows. */
export function queryKey(q: ListQuery): string {
  return hashOf(q);
}

/** `listAgents` params of `q` (without cursor and limit); `now` anchors the activity window. */
export function listParamsOf(q: ListQuery, now: number): ParamsOf<'listAgents'> {
  const type = q.type.trim();
  const tenant = q.tenant.trim();
  const tag = q.tag.trim();
  const prefix = q.q.trim();
  return {
    ...(q.states.length > 0 ? { state: [...q.states] } : {}),
    ...(type ? { type } : {}),
    ...(tenant ? { tenant } : {}),
    ...(tag ? { tag } : {}),
    ...(prefix ? { idPrefix: prefix } : {}),
    ...(q.active ? { updatedAfter: now - ACTIVITY_WINDOWS[q.active]! } : {}),
    sort: q.sort, order: q.desc ? 'desc' : 'asc',
  };
}
