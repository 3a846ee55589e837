/**
 * Owns `listAgents`' paging: the mapping from its params to a store query, and its opaque keyset
 * cursor. A cursor is `c1.` + base64url of the last row's sort key (order, direction, id, last
 * activity, type, state), so the next page starts right after that row whatever changed
 * meanwhile; the `.` keeps it apart from a session id (ids cannot contain one). The original
 * cursor — the bare last id, for the default order (id ascending) — is still what that order
 * returns and accepts, so existing callers page as before.
 *
 * A cursor is refused (INVALID_ARGUMENT) when it is malformed or was made for another order: a
 * page of one order continued in another would silently repeat or skip rows.
 */
import { AgentryError } from '../../actors/errors.js';
import type { ListSessionsQuery, SessionCursor, SessionSort, SessionStatus, SessionSummary } from '../../persistence/index.js';

/** Orders of `listAgents` (wire names). */
export type ListSort = 'agentId' | 'updatedAt' | 'type' | 'state';
/** Wire order → store order. */
const STORE_SORT: Record<ListSort, SessionSort> = { agentId: 'id', updatedAt: 'updatedAt', type: 'type', state: 'status' };
const PREFIX = 'c1.';
const STATES = new Set(['idle', 'active', 'sleeping', 'waiting', 'stopped']);

/** The params of `listAgents` that shape the query (validated by its schema). */
export interface ListParams {
  readonly status?: SessionStatus | undefined;
  readonly state?: SessionStatus | readonly SessionStatus[] | undefined;
  readonly type?: string | undefined;
  readonly idContains?: string | undefined;
  readonly idPrefix?: string | undefined;
  readonly tenant?: string | undefined;
  readonly tag?: string | undefined;
  readonly updatedAfter?: number | undefined;
  readonly updatedBefore?: number | undefined;
  readonly sort?: ListSort | undefined;
  readonly order?: 'asc' | 'desc' | undefined;
  readonly after?: string | undefined;
}

/** Default direction: newest activity first; everything else ascending. */
function isDesc(p: ListParams): boolean {
  return p.order !== undefined ? p.order === 'desc' : p.sort === 'updatedAt';
}

/** True when `p` asks for the original order, whose cursor is the bare last id. */
function legacyOrder(p: ListParams): boolean {
  return (p.sort ?? 'agentId') === 'agentId' && !isDesc(p);
}

/** The next page's cursor after `last` in `p`'s order. */
export function encodeCursor(p: ListParams, last: SessionSummary): string {
  if (legacyOrder(p)) return last.id;
  const key = [p.sort ?? 'agentId', isDesc(p) ? 'desc' : 'asc', last.id, last.updatedAt, last.type, last.status];
  return PREFIX + Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');
}

function badCursor(why: string): AgentryError {
  return new AgentryError('INVALID_ARGUMENT', `after: ${why} (pass the \`next\` of the previous page with the same sort and order)`);
}

/** The row `after` names, checked against `p`'s order. */
function decodeCursor(p: ListParams, after: string): SessionCursor {
  if (!after.startsWith(PREFIX)) {
    if (legacyOrder(p) && !after.includes('.')) return { id: after, updatedAt: 0, type: '', status: '' };
    throw badCursor(legacyOrder(p) ? 'not a cursor' : `a session id is a cursor of sort agentId ascending only; this page is sorted by ${p.sort ?? 'agentId'} ${isDesc(p) ? 'descending' : 'ascending'}`);
  }
  let key: unknown;
  try { key = JSON.parse(Buffer.from(after.slice(PREFIX.length), 'base64url').toString('utf8')); } catch { throw badCursor('not a cursor'); }
  if (!Array.isArray(key) || key.length !== 6) throw badCursor('not a cursor');
  const [sort, order, id, updatedAt, type, status] = key as unknown[];
  if (typeof id !== 'string' || typeof updatedAt !== 'number' || !Number.isFinite(updatedAt) || typeof type !== 'string'
    || typeof status !== 'string' || !STATES.has(status) || typeof sort !== 'string' || !(sort in STORE_SORT)) throw badCursor('not a cursor');
  if (sort !== (p.sort ?? 'agentId') || order !== (isDesc(p) ? 'desc' : 'asc')) {
    throw badCursor(`it continues sort ${sort} ${order === 'desc' ? 'descending' : 'ascending'}, not ${p.sort ?? 'agentId'} ${isDesc(p) ? 'descending' : 'ascending'}`);
  }
  return { id, updatedAt, type, status };
}

/** The store query of `p` (without its limit). */
export function listQueryOf(p: ListParams): ListSessionsQuery {
  const states = p.state === undefined ? undefined : typeof p.state === 'string' ? [p.state] : [...p.state];
  if (p.updatedAfter !== undefined && p.updatedBefore !== undefined && p.updatedAfter >= p.updatedBefore) {
    throw new AgentryError('INVALID_ARGUMENT', 'updatedAfter must be earlier than updatedBefore');
  }
  return {
    ...(p.status ? { status: p.status } : {}), ...(states ? { statuses: states } : {}),
    ...(p.type ? { type: p.type } : {}), ...(p.idContains ? { idContains: p.idContains } : {}),
    ...(p.idPrefix ? { idPrefix: p.idPrefix } : {}), ...(p.tenant ? { tenant: p.tenant } : {}), ...(p.tag ? { tag: p.tag } : {}),
    ...(p.updatedAfter !== undefined ? { updatedAfter: p.updatedAfter } : {}),
    ...(p.updatedBefore !== undefined ? { updatedBefore: p.updatedBefore } : {}),
    sort: STORE_SORT[p.sort ?? 'agentId'], desc: isDesc(p),
    ...(p.after !== undefined ? { from: decodeCursor(p, p.after) } : {}),
  };
}
