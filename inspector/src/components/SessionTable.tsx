/**
 * The sessions list as an ARIA grid with fixed-height rows, windowed by hand: only the rows in
 * view (plus a few either side) exist in the DOM, positioned inside a spacer as tall as the rows
 * known so far; the rows come page by page from the list model (`SessionIndex.ensureRows`), and
 * a row whose page is not read yet shows as a placeholder. The scroll offset and active row live
 * in the model, so coming back from a session finds the list where it was. Keyboard: the grid
 * is one tab stop; arrows, Page Up/Down, Home/End move the active row, Enter opens it.
 */
import type { JSX } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { formatRelative, formatTime } from '../format.js';
import { useNow } from '../hooks.js';
import type { SortKey } from '../listQuery.js';
import type { SessionIndex, SessionRow } from '../sessionIndex.js';

/** Row height in pixels; the CSS uses the same value (`--row-h`). */
export const ROW_H = 36;
const OVERSCAN = 8;

const COLUMNS: readonly { key: SortKey | 'mailbox' | 'wakeAt'; label: string; cls: string; title?: string }[] = [
  { key: 'agentId', label: 'Session', cls: 'c-id' },
  { key: 'type', label: 'Type', cls: 'c-type' },
  { key: 'state', label: 'State', cls: 'c-state' },
  { key: 'mailbox', label: 'Mailbox', cls: 'c-mailbox', title: 'pending + running + deferred messages (read for the rows on screen)' },
  { key: 'wakeAt', label: 'Next wake', cls: 'c-wake', title: 'next wake by time (sleep deadline or wait timeout)' },
  { key: 'updatedAt', label: 'Last activity', cls: 'c-updated' },
];
const SORTABLE = new Set<string>(['agentId', 'type', 'state', 'updatedAt']);

/** Props of `SessionTable`. */
export interface SessionTableProps {
  readonly index: SessionIndex;
  readonly sort: SortKey;
  readonly desc: boolean;
  onSort(key: SortKey): void;
  onOpen(id: string): void;
}

/** The windowed grid of sessions. */
export function SessionTable({ index, sort, desc, onSort, onOpen }: SessionTableProps): JSX.Element {
  const scroller = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTopState] = useState(index.scrollTop);
  const setScrollTop = (top: number): void => { index.scrollTop = top; setScrollTopState(top); };
  const [height, setHeight] = useState(600);
  const [active, setActiveState] = useState(index.activeRow);
  const setActive = (i: number): void => { index.activeRow = i; setActiveState(i); };
  const now = useNow(1000);
  const count = index.rowCount;

  // Back from a session: the list where it was (the model kept its pages and offset).
  useLayoutEffect(() => {
    const el = scroller.current;
    if (el && el.scrollTop !== index.scrollTop) el.scrollTop = index.scrollTop;
  }, []);
  // A new query starts at the top.
  useLayoutEffect(() => {
    const el = scroller.current;
    if (el && index.scrollTop === 0 && el.scrollTop !== 0) { el.scrollTop = 0; setScrollTopState(0); setActiveState(0); }
  }, [index.query]);

  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return undefined;
    setHeight(el.clientHeight);
    const ro = new ResizeObserver(() => { setHeight(el.clientHeight); });
    ro.observe(el);
    return () => { ro.disconnect(); };
  }, []);

  // The header row is sticky inside the scroller, so rows start one row height down.
  const first = Math.max(0, Math.floor(scrollTop / ROW_H) - OVERSCAN);
  const last = Math.min(count, Math.ceil((scrollTop + height - ROW_H) / ROW_H) + OVERSCAN);
  const visible: { at: number; row: SessionRow | undefined }[] = [];
  for (let at = first; at < last; at++) visible.push({ at, row: index.rowAt(at) });

  // Read the pages in view; details (mailbox depth, wake time) for what is on screen only,
  // re-asked every few seconds (`now`), so stale rows are read again once allowed.
  const visibleKey = `${first}:${last}:${index.version}:${Math.floor(now / 3000)}`;
  useEffect(() => {
    index.ensureRows(first, last);
    index.wantDetailsFor(visible.flatMap((v) => (v.row ? [v.row.id] : [])));
  }, [visibleKey, index.query]);

  const clampedActive = Math.min(active, Math.max(0, count - 1));
  const moveTo = (i: number): void => {
    const next = Math.max(0, Math.min(count - 1, i));
    setActive(next);
    const el = scroller.current;
    if (!el) return;
    const top = next * ROW_H; // scrollTop that puts the row right under the sticky header
    if (top < el.scrollTop) el.scrollTop = top;
    else if (top + 2 * ROW_H > el.scrollTop + el.clientHeight) el.scrollTop = top + 2 * ROW_H - el.clientHeight;
  };
  const onKeyDown = (e: KeyboardEvent): void => {
    const page = Math.max(1, Math.floor(height / ROW_H) - 1);
    const keys: Record<string, () => void> = {
      ArrowDown: () => { moveTo(clampedActive + 1); },
      ArrowUp: () => { moveTo(clampedActive - 1); },
      PageDown: () => { moveTo(clampedActive + page); },
      PageUp: () => { moveTo(clampedActive - page); },
      Home: () => { moveTo(0); },
      End: () => { moveTo(count - 1); },
      Enter: () => { const r = index.rowAt(clampedActive); if (r) onOpen(r.id); },
    };
    const fn = keys[e.key];
    if (fn && count > 0) { e.preventDefault(); fn(); }
  };

  return (
    <div
      ref={scroller} class="grid-scroll" role="grid" tabIndex={0} aria-label="Sessions" aria-busy={index.loading}
      aria-rowcount={index.complete ? count + 1 : -1}
      aria-activedescendant={count > 0 ? `srow-${clampedActive}` : undefined}
      onScroll={(e) => { setScrollTop(e.currentTarget.scrollTop); }} onKeyDown={onKeyDown}
    >
      <div class="grid-row grid-head" role="row" aria-rowindex={1}>
        {COLUMNS.map((c) => (
          <div key={c.key} class={`cell ${c.cls}`} role="columnheader"
            aria-sort={sort === c.key ? (desc ? 'descending' : 'ascending') : undefined}>
            {!SORTABLE.has(c.key)
              ? <span class="th" title={c.title}>{c.label}</span>
              : (
                <button type="button" class="th sort" onClick={() => { onSort(c.key as SortKey); }}>
                  {c.label}
                  <span aria-hidden="true" class="sort-mark">{sort === c.key ? (desc ? ' ▼' : ' ▲') : ''}</span>
                </button>
              )}
          </div>
        ))}
      </div>
      <div class="grid-spacer" style={{ height: `${count * ROW_H}px` }}>
        {visible.map(({ at, row: r }) => {
          if (!r) {
            return (
              <div key={at % 128} id={`srow-${at}`} role="row" aria-rowindex={at + 2} aria-busy="true" class="grid-row placeholder"
                style={{ transform: `translateY(${at * ROW_H}px)` }}>
                <div role="gridcell" class="cell c-id muted">…</div>
              </div>
            );
          }
          return (
            <div
              key={at % 128} id={`srow-${at}`} role="row" aria-rowindex={at + 2} aria-selected={at === clampedActive}
              class={`grid-row${at === clampedActive ? ' is-active' : ''}`} style={{ transform: `translateY(${at * ROW_H}px)` }}
              data-session={r.id} data-state={r.state}
              onClick={() => { setActive(at); onOpen(r.id); }}
            >
              <div role="gridcell" class="cell c-id"><a href={`#/s/${encodeURIComponent(r.id)}`} tabIndex={-1}>{r.id}</a></div>
              <div role="gridcell" class="cell c-type">{r.type}</div>
              <div role="gridcell" class="cell c-state"><span class={`state-pill state-${r.state}`}>{r.state}</span></div>
              <div role="gridcell" class="cell c-mailbox num">{r.mailbox ?? '·'}</div>
              <div role="gridcell" class="cell c-wake" title={r.wakeAt ? formatTime(r.wakeAt, now) : undefined}>
                {r.wakeAt && (r.state === 'sleeping' || r.state === 'waiting') ? formatRelative(r.wakeAt, now) : '—'}
              </div>
              <div role="gridcell" class="cell c-updated" title={formatTime(r.updatedAt, now)}>{formatRelative(r.updatedAt, now)}</div>
            </div>
          );
        })}
      </div>
      {count === 0 && !index.loading && <p class="empty">No sessions match.</p>}
    </div>
  );
}
