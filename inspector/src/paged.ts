/**
 * Owns cursor paging for the fleet pages: the server answers one page and a `next` cursor, the
 * hook keeps the cursors of the pages seen so "Newer" goes back without the server paging
 * backwards, starts over when the filters change, re-reads the page after an action, and drops
 * answers that arrive after the filters moved on. Nothing beyond one page is held.
 */
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { describeError, type Connection } from './connection.js';
import { useSubscription } from './hooks.js';

/** One page as a loader returns it. */
export interface PageOf<T, C> {
  readonly rows: readonly T[];
  readonly next: C | null;
}

/** A paged list's state and moves. */
export interface Paged<T> {
  readonly rows: readonly T[];
  readonly loading: boolean;
  readonly error: string;
  /** 1 for the first (newest) page. */
  readonly page: number;
  readonly hasOlder: boolean;
  readonly hasNewer: boolean;
  older(): void;
  newer(): void;
  /** Reads the current page again (after a bulk action, say). */
  reload(): void;
}

/**
 * Pages through `load` (called with undefined for the first page). `filterKey` names the
 * filters: a new key starts again at the first page.
 */
export function usePaged<T, C>(conn: Connection, filterKey: string, load: (cursor: C | undefined) => Promise<PageOf<T, C>>): Paged<T> {
  useSubscription(conn);
  const [stack, setStack] = useState<(C | undefined)[]>([undefined]);
  const [rows, setRows] = useState<readonly T[]>([]);
  const [next, setNext] = useState<C | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState('');
  const [tick, setTick] = useState(0);
  const gen = useRef(0);
  const loadRef = useRef(load);
  loadRef.current = load;

  // New filters: back to the first page.
  const firstKey = useRef(filterKey);
  useEffect(() => {
    if (firstKey.current === filterKey) return;
    firstKey.current = filterKey;
    setStack([undefined]);
  }, [filterKey]);

  const cursor = stack[stack.length - 1];
  useEffect(() => {
    if (conn.state !== 'open') return;
    const mine = ++gen.current;
    setLoading(true);
    loadRef.current(cursor).then((p) => {
      if (mine !== gen.current) return;
      setRows(p.rows);
      setNext(p.next);
      setError('');
    }, (e: unknown) => {
      if (mine === gen.current) setError(describeError(e));
    }).finally(() => {
      if (mine === gen.current) setLoading(false);
    });
  }, [conn, conn.state, stack, filterKey, tick]);

  const older = useCallback(() => { if (next !== null) setStack((s) => [...s, next]); }, [next]);
  const newer = useCallback(() => { setStack((s) => (s.length > 1 ? s.slice(0, -1) : s)); }, []);
  const reload = useCallback(() => { setTick((n) => n + 1); }, []);
  return { rows, loading, error, page: stack.length, hasOlder: next !== null, hasNewer: stack.length > 1, older, newer, reload };
}
