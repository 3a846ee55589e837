/**
 * Owns the sessions list's query: filters, orders and keyset positions of `listSessions` and
 * `countSessions`, once as SQL (Postgres and PGlite, indexes of migration 0011) and once as
 * plain functions (the memory store), so the backends cannot disagree.
 *
 * Orders (each ends in a unique tie-break, so pages never repeat or skip an unchanged row):
 *   id        → id
 *   updatedAt → updated_at, id
 *   type      → type, then updated_at DESC, id DESC (newest activity first within a type)
 *   status    → status, then updated_at DESC, id DESC
 * `desc` reverses every part. A keyset page is "rows after the cursor row in this order",
 * never OFFSET: its cost does not grow with the page number.
 *
 * A tag filter is `tags @> ARRAY[tag]` (the GIN index of migration 0019).
 *
 * No user text reaches the SQL: every value is a parameter; the id prefix is a range on the
 * primary key (`id >= p AND id < successor(p)`), not LIKE, so `%` and `_` are plain characters.
 */
import type { ListSessionsQuery, SessionCursor, SessionSort } from './types.js';

/** SQL for one query: the WHERE clause (with leading `WHERE` when non-empty) and its params. */
export interface SessionListSql {
  readonly where: string;
  readonly orderBy: string;
  readonly params: unknown[];
  /**
   * Type and state orders past a cursor: the rest of the cursor's group and the groups after it,
   * as two conditions to query separately (two index range scans, each stopping at the limit),
   * because one OR of them makes Postgres scan the cursor's group from its start.
   */
  readonly split?: { readonly within: string; readonly beyond: string };
}

/**
 * The least string greater than every string that starts with `prefix`, in code point order
 * (= UTF-8 byte order = Postgres' `COLLATE "C"`), or null when there is none (a prefix of
 * U+10FFFF characters only). Skips the surrogate range, which no stored string contains.
 */
export function prefixUpperBound(prefix: string): string | null {
  const cps = Array.from(prefix, (c) => c.codePointAt(0)!);
  while (cps.length > 0) {
    const last = cps.pop()!;
    if (last < 0x10ffff) {
      const next = last + 1 === 0xd800 ? 0xe000 : last + 1;
      return String.fromCodePoint(...cps, next);
    }
  }
  return null;
}

/** Builds the filters, the keyset condition and the ORDER BY of `q` (column names of table `sessions`). */
export function sessionListSql(q: ListSessionsQuery, withOrder = true): SessionListSql {
  const params: unknown[] = [];
  const p = (v: unknown): string => { params.push(v); return `$${params.length}`; };
  const where: string[] = [];
  if (q.status) where.push(`status = ${p(q.status)}::text`);
  if (q.statuses && q.statuses.length > 0) where.push(`status = ANY(${p([...q.statuses])}::text[])`);
  if (q.type !== undefined) where.push(`type = ${p(q.type)}::text`);
  if (q.tenant !== undefined) where.push(`tenant = ${p(q.tenant)}::text`);
  if (q.tag !== undefined) where.push(`tags @> ARRAY[${p(q.tag)}::text]`);
  if (q.idContains) where.push(`position(${p(q.idContains)}::text IN id) > 0`);
  if (q.idPrefix) {
    where.push(`id >= ${p(q.idPrefix)}::text`);
    const upper = prefixUpperBound(q.idPrefix);
    if (upper !== null) where.push(`id < ${p(upper)}::text`);
  }
  if (q.updatedAfter !== undefined) where.push(`updated_at >= ${p(q.updatedAfter)}::bigint`);
  if (q.updatedBefore !== undefined) where.push(`updated_at < ${p(q.updatedBefore)}::bigint`);

  const sort: SessionSort = q.sort ?? 'id';
  const desc = q.desc === true;
  let split: SessionListSql['split'];
  if (withOrder) {
    const gt = desc ? '<' : '>';
    const lt = desc ? '>' : '<';
    const from = q.from ?? (q.after !== undefined && sort === 'id' ? { id: q.after } as Pick<SessionCursor, 'id'> : undefined);
    if (from) {
      if (sort === 'id') where.push(`id ${gt} ${p(from.id)}::text`);
      else {
        const c = from as SessionCursor;
        if (sort === 'updatedAt') where.push(`(updated_at, id) ${gt} (${p(c.updatedAt)}::bigint, ${p(c.id)}::text)`);
        else {
          // Mixed directions: the group column one way, (updated_at, id) the other way.
          const col = sort === 'type' ? 'type' : 'status';
          const key = p(sort === 'type' ? c.type : c.status);
          split = {
            within: `${col} = ${key}::text AND (updated_at, id) ${lt} (${p(c.updatedAt)}::bigint, ${p(c.id)}::text)`,
            beyond: `${col} ${gt} ${key}::text`,
          };
        }
      }
    }
  }
  const dir = desc ? 'DESC' : 'ASC';
  const rev = desc ? 'ASC' : 'DESC';
  const orderBy = sort === 'id' ? `id ${dir}`
    : sort === 'updatedAt' ? `updated_at ${dir}, id ${dir}`
      : `${sort === 'type' ? 'type' : 'status'} ${dir}, updated_at ${rev}, id ${rev}`;
  return { where: where.length > 0 ? `WHERE ${where.join(' AND ')}` : '', orderBy, params, ...(split ? { split } : {}) };
}

/** A session as the memory store filters and sorts it. */
export interface ListableSession {
  readonly id: string;
  readonly type: string;
  readonly status: string;
  readonly updatedAt: number;
  readonly tenant: string | null;
  readonly tags: readonly string[];
}

/** True when `s` passes `q`'s filters (not its cursor): the memory store's WHERE. */
export function matchesSessionQuery(s: ListableSession, q: ListSessionsQuery): boolean {
  if (q.status && s.status !== q.status) return false;
  if (q.statuses && q.statuses.length > 0 && !q.statuses.includes(s.status as never)) return false;
  if (q.type !== undefined && s.type !== q.type) return false;
  if (q.tenant !== undefined && s.tenant !== q.tenant) return false;
  if (q.tag !== undefined && !s.tags.includes(q.tag)) return false;
  if (q.idContains && !s.id.includes(q.idContains)) return false;
  if (q.idPrefix && !s.id.startsWith(q.idPrefix)) return false;
  if (q.updatedAfter !== undefined && s.updatedAt < q.updatedAfter) return false;
  if (q.updatedBefore !== undefined && s.updatedAt >= q.updatedBefore) return false;
  return true;
}

/** Code point order (Postgres' `COLLATE "C"`), not UTF-16 unit order. */
function cmpText(a: string, b: string): number {
  if (a === b) return 0;
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done) return y.done ? 0 : -1;
    if (y.done) return 1;
    const d = x.value.codePointAt(0)! - y.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}

/** The order of `q.sort`/`q.desc` as a comparator over rows or cursors: the memory store's ORDER BY. */
export function sessionComparator(q: ListSessionsQuery): (a: SessionCursor, b: SessionCursor) => number {
  const sort: SessionSort = q.sort ?? 'id';
  const dir = q.desc === true ? -1 : 1;
  const byActivity = (a: SessionCursor, b: SessionCursor): number => (a.updatedAt - b.updatedAt) || cmpText(a.id, b.id);
  switch (sort) {
    case 'id': return (a, b) => dir * cmpText(a.id, b.id);
    case 'updatedAt': return (a, b) => dir * byActivity(a, b);
    case 'type': return (a, b) => dir * (cmpText(a.type, b.type) || -byActivity(a, b));
    case 'status': return (a, b) => dir * (cmpText(a.status, b.status) || -byActivity(a, b));
  }
}
