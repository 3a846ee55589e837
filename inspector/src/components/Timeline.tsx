/**
 * The session timeline: transitions, messages and wakes in time order, drawn as a strip of
 * state bands with markers, and a range input that scrubs through it. Scrubbing picks an entry;
 * the session view then shows the whole session as it was at that point (time travel). Entries
 * are spaced evenly (not by time), so a 300 ms run between two day-long sleeps stays visible.
 *
 * The strip and the range input share one geometry: entry i sits at i/(n-1) of the width between
 * the centres of the thumb at its two ends (the strip is inset by half a thumb, whose width the
 * stylesheet fixes as --thumb), so the cursor line is always under the thumb.
 */
import type { JSX } from 'preact';
import { formatPreciseTime } from '../format.js';
import { topOf } from '../states.js';
import { forkPointOf, type TimelineItem } from '../timelineItems.js';

/** Props of `Timeline`. */
export interface TimelineProps {
  readonly items: readonly TimelineItem[];
  /** Index into `items` being viewed, or null for live (the last entry). */
  readonly selected: number | null;
  onSelect(index: number | null): void;
  /** Starts a fork of the session from an entry's recorded point ("fork from here"); absent: no button. */
  onFork?: ((item: TimelineItem) => void) | undefined;
  /** A fork is being created. */
  forkBusy?: boolean;
}

const W = 1000;
const H = 56;

/** At most this many entries are drawn (the newest). */
export const TIMELINE_MAX = 500;

/** The scrubbable strip, its range input and the entries around the cursor. */
export function Timeline({ items, selected, onSelect, onFork, forkBusy = false }: TimelineProps): JSX.Element {
  if (items.length === 0) return <p class="muted">Nothing recorded yet.</p>;
  const offset = Math.max(0, items.length - TIMELINE_MAX);
  const shown = items.slice(offset);
  const n = shown.length;
  const cursor = selected === null ? n - 1 : Math.max(0, Math.min(n - 1, selected - offset));
  // Entry i at i/(n-1) of the strip, where the range input puts its thumb for value i; each band
  // runs from half-way to the previous entry to half-way to the next.
  const step = n > 1 ? W / (n - 1) : W;
  const x = (i: number): number => (n > 1 ? i * step : 0);
  const bandFrom = (i: number): number => Math.max(0, x(i) - step / 2);
  const bandTo = (i: number): number => (n > 1 ? Math.min(W, x(i) + step / 2) : W);
  const current = shown[cursor]!;
  const near = shown.slice(Math.max(0, cursor - 5), cursor + 3);

  return (
    <div class="timeline">
      <div class="timeline__track">
      <svg viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" class="timeline__strip" aria-hidden="true" data-testid="timeline-strip">
        {shown.map((it, i) => (
          <rect key={`b${it.key}`} class={`band state-${topOf(it.state)}`} x={bandFrom(i)} y={18} width={Math.max(0.5, bandTo(i) - bandFrom(i))} height={22} />
        ))}
        {shown.map((it, i) => {
          if (it.kind === 'transition') return <line key={it.key} class="mark mark--transition" x1={x(i)} x2={x(i)} y1={14} y2={44} />;
          if (it.kind === 'wake') return <path key={it.key} class="mark mark--wake" d={`M${x(i)},4 l5,6 l-5,6 l-5,-6 z`} />;
          return <circle key={it.key} class="mark mark--message" cx={x(i)} cy={9} r={3.5} />;
        })}
        <line class="cursor" data-testid="timeline-cursor" x1={x(cursor)} x2={x(cursor)} y1={0} y2={H} />
      </svg>
      <input
        type="range" class="timeline__range" min={0} max={n - 1} step={1} value={cursor} aria-label="Scrub timeline"
        aria-valuetext={`${formatPreciseTime(current.at)}: ${current.label}, state ${current.state}`}
        onInput={(e) => { const v = Number(e.currentTarget.value); onSelect(v === n - 1 ? null : v + offset); }}
      />
      </div>
      <div class="timeline__controls">
        <span class="muted small">Step {cursor + offset + 1} of {items.length}</span>
        <button type="button" disabled={selected === null} onClick={() => { onSelect(null); }} aria-label="Back to the live state">Live</button>
      </div>
      <p class="timeline__readout" aria-live="polite" data-testid="timeline-readout">
        <strong>{selected === null ? 'Live' : `Recorded at ${formatPreciseTime(current.at)}`}</strong>
        {' · state '}<span class={`state-pill state-${topOf(current.state)}`}>{current.state}</span>
        {' · '}{current.label}
        {offset > 0 && <span class="muted"> · showing the last {TIMELINE_MAX} of {items.length} entries</span>}
        {onFork && forkPointOf(current) && (
          <>
            {' '}
            <button
              type="button" data-testid="fork-here" disabled={forkBusy} onClick={() => { onFork(current); }}
              title="Create a new session from the state recorded at this point (the original is untouched)"
            >Fork from here</button>
          </>
        )}
      </p>
      <ol class="timeline__list">
        {near.map((it) => {
          const i = shown.indexOf(it);
          return (
            <li key={it.key} class={`kind-${it.kind}${i === cursor ? ' is-cursor' : ''}`}>
              <button type="button" class="link" onClick={() => { onSelect(i === n - 1 ? null : i + offset); }}>
                <time>{formatPreciseTime(it.at)}</time> <span class="tl-label">{it.label}</span> <span class="muted">{it.detail}</span>
              </button>
            </li>
          );
        })}
      </ol>
    </div>
  );
}
