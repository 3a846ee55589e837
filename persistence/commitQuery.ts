/**
 * Owns the one statement a store commit is: `SELECT agentry_commit(doc, now)` (migration 0005),
 * run in autocommit, so a commit of any number of records is one round trip to the database
 * instead of nine (BEGIN, the epoch check, six writes, COMMIT), each of which waited behind the
 * network and, under load, behind the event loop. This file builds the document (one
 * `JSON.stringify` for every table's rows) and turns the function's answer into an outcome; the
 * caller (`sqlStore.ts`) turns a failed outcome into the typed error that names the record.
 *
 * Faults: data Postgres refuses fails the call with its SQLSTATE (normalised by the adapter into
 * `StoreDataError`) and writes nothing; a new session created by another writer between the
 * function's check and its insert (two writers of one new id, which fencing makes a bug) rolls the
 * call back with SQLSTATE AGC01, and the stored versions are then read here, outside it.
 */
import { selectSessionVersions, toHistoryParam, toOutboxParam, toSessionParam, toTransitionParam } from './queries.js';
import type { SessionWrite } from './queries.js';
import { logRowsOf } from './sessionLog.js';
import { toSessionLogParam } from './sessionLogQueries.js';
import type { Queryable } from './sqlDb.js';
import type { CommitRecord } from './types.js';
import { toSubscriptionParam } from './wakeQueries.js';
import { toWaitpointParam } from './waitpointQueries.js';

/** The stored version and owner epoch of a session, as the conflict report carries them. */
export interface StoredVersion {
  readonly version: number;
  readonly ownerEpoch: number;
}

/** What a commit call did: committed everything, or nothing and why. */
export type CommitOutcome =
  | { readonly kind: 'committed' }
  /** A partition of the commit has a newer recorded epoch than some record of it brought (only those partitions). */
  | { readonly kind: 'fenced'; readonly epochs: ReadonlyMap<number, number> }
  /** A version or row-epoch check failed: the stored rows of the commit's sessions (absent: no row). */
  | { readonly kind: 'conflict'; readonly versions: ReadonlyMap<string, StoredVersion> };

/** The document for `agentry_commit`, and the sessions it writes session-log rows for. */
export interface CommitDocument {
  readonly json: string;
  readonly ids: readonly string[];
  readonly logged: readonly string[];
}

/**
 * Builds the document of one commit. `writes` is `planSessionWrites(records)`: null means the
 * records cannot commit (a version gap or a falling epoch within one session), and the document
 * then only asks for the fencing check and the stored versions. Empty tables are left out.
 */
export function commitDocument(records: readonly CommitRecord[], writes: readonly SessionWrite[] | null): CommitDocument {
  // Per partition the lowest epoch any record brings: the partition is fenced iff some record is.
  const lowest = new Map<number, number>();
  for (const r of records) {
    const e = lowest.get(r.partition);
    if (e === undefined || r.ownerEpoch < e) lowest.set(r.partition, r.ownerEpoch);
  }
  const doc: Record<string, unknown> = { fence: [...lowest].map(([partition, epoch]) => ({ partition, epoch })) };
  const ids = [...new Set(records.map((r) => r.sessionId))];
  if (writes === null) {
    doc.ids = ids;
    return { json: JSON.stringify(doc), ids, logged: [] };
  }
  doc.sessions = writes.map(toSessionParam);
  const history = records.flatMap((r) => r.history);
  if (history.length > 0) doc.history = history.map(toHistoryParam);
  const transitions = records.flatMap((r) => r.transitions);
  if (transitions.length > 0) doc.transitions = transitions.map(toTransitionParam);
  const outbox = records.flatMap((r) => r.outbox);
  if (outbox.length > 0) doc.outbox = outbox.map(toOutboxParam);
  const log = records.flatMap(logRowsOf);
  if (log.length > 0) doc.log = log.map(toSessionLogParam);
  const { subscribe, unsubscribe } = netSubscriptions(records);
  if (unsubscribe.length > 0) doc.unsubscribe = unsubscribe;
  if (subscribe.length > 0) doc.subscribe = subscribe;
  const waitpoints = records.flatMap((r) => r.waitpoints ?? []);
  if (waitpoints.length > 0) doc.waitpoints = waitpoints.map(toWaitpointParam);
  return { json: JSON.stringify(doc), ids, logged: log.map((r) => r.sessionId) };
}

/**
 * The subscription changes of the records as SQL applies them (all removals, then all
 * additions), with the outcome of applying them record by record, removals before additions
 * within a record, as the memory store does: per session and pattern the last change wins. A
 * session that subscribes in one record and unsubscribes in a later record of the same commit
 * ends unsubscribed.
 */
function netSubscriptions(records: readonly CommitRecord[]): { subscribe: unknown[]; unsubscribe: unknown[] } {
  let last: Map<string, { sessionId: string; pattern: string; add: boolean }> | null = null;
  for (const r of records) {
    if (!r.subscribe?.length && !r.unsubscribe?.length) continue;
    last ??= new Map();
    for (const pattern of r.unsubscribe ?? []) last.set(JSON.stringify([r.sessionId, pattern]), { sessionId: r.sessionId, pattern, add: false });
    for (const pattern of r.subscribe ?? []) last.set(JSON.stringify([r.sessionId, pattern]), { sessionId: r.sessionId, pattern, add: true });
  }
  const subscribe: unknown[] = [];
  const unsubscribe: unknown[] = [];
  for (const c of last?.values() ?? []) (c.add ? subscribe : unsubscribe).push(toSubscriptionParam(c.sessionId, c.pattern));
  return { subscribe, unsubscribe };
}

/** The function's answer (jsonb, parsed by both drivers); numbers are below 2^53. */
type CommitResult = null | {
  readonly fenced?: readonly (readonly [number, number])[];
  readonly versions?: Readonly<Record<string, readonly [number, number]>>;
};

/** SQLSTATE `agentry_commit` raises when it must roll back after its checks passed. */
const ROLLED_BACK = 'AGC01';

/**
 * Runs one commit: one statement, its own transaction. Resolves with the outcome; rejects only
 * with what the adapter rejects with (unavailable, data refused, …).
 */
export async function commitRecords(q: Queryable, doc: CommitDocument, now: number): Promise<CommitOutcome> {
  let result: CommitResult;
  try {
    const { rows } = await q.query<{ result: CommitResult }>('SELECT agentry_commit($1::jsonb, $2::bigint) AS result', [doc.json, now]);
    result = rows[0]?.result ?? null;
  } catch (err) {
    if (codeOf(err) !== ROLLED_BACK) throw err;
    return { kind: 'conflict', versions: await selectSessionVersions(q, doc.ids) };
  }
  if (result === null) return { kind: 'committed' };
  if (result.fenced) return { kind: 'fenced', epochs: new Map(result.fenced.map(([p, e]) => [p, e])) };
  return {
    kind: 'conflict',
    versions: new Map(Object.entries(result.versions ?? {}).map(([id, [version, ownerEpoch]]) => [id, { version, ownerEpoch }])),
  };
}

function codeOf(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}
