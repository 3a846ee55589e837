/**
 * Owns the session timeline's model: transitions and history merged into time order, each entry
 * with the state the session was in after it, which is what scrubbing shows.
 */
import { preview } from './format.js';
import type { HistoryMessage, Transition } from './sessionFeed.js';

/** One entry of the timeline, with the state the session was in after it. */
export interface TimelineItem {
  readonly key: string;
  readonly at: number;
  readonly kind: 'transition' | 'message' | 'wake';
  readonly label: string;
  readonly detail: string;
  /** State path after this entry. */
  readonly state: string;
  /** For transitions: what the statechart animates when this entry is picked. */
  readonly transition?: Transition;
  /** For inbox messages: their stream sequence (a point `forkSession` can start from). */
  readonly seq?: number;
}

/** The recorded point an entry names for `forkSession`, or null (a wake record names none of its own). */
export function forkPointOf(it: TimelineItem): { seq: number } | { transition: number } | null {
  if (it.transition?.id !== undefined) return { transition: it.transition.id };
  if (it.seq !== undefined && it.seq > 0) return { seq: it.seq };
  return null;
}

const KIND_ORDER = { message: 0, wake: 1, transition: 2 } as const;

/** Merges transitions and history into time order and works out the state after each entry. */
export function timelineItems(transitions: readonly Transition[], history: readonly HistoryMessage[]): TimelineItem[] {
  type Raw = { at: number; kind: TimelineItem['kind']; label: string; detail: string; key: string; transition?: Transition; seq?: number };
  const raw: Raw[] = [];
  for (const t of transitions) {
    const wake = (t.from === 'sleeping' || t.from === 'waiting') && t.to !== 'stopped';
    raw.push({ at: t.at, kind: 'transition', label: `${t.from || 'created'} → ${t.to}`, detail: `${wake ? 'wake · ' : ''}${t.event}`, key: `t:${t.at}:${t.from}:${t.to}:${t.event}`, transition: t });
  }
  for (const m of history) {
    if (m.kind === 'wake') {
      const reason = (m.body as { reason?: unknown } | null)?.reason;
      raw.push({ at: m.at, kind: 'wake', label: `wake (${typeof reason === 'string' ? reason : 'manual'})`, detail: `run ${m.batchId}`, key: `w:${m.batchId}:${m.at}` });
    } else {
      raw.push({ at: m.at, kind: 'message', label: `${m.kind} #${m.seq}`, detail: `${m.priority}${m.from ? ` from ${m.from}` : ''} · ${preview(m.body, 60)}`, key: `m:${m.seq}:${m.batchId}`, seq: m.seq });
    }
  }
  raw.sort((a, b) => a.at - b.at || KIND_ORDER[a.kind] - KIND_ORDER[b.kind]);
  let state = transitions[0]?.from ?? 'idle';
  if (state === '' || state === 'hydrate') state = 'idle';
  return raw.map((r) => {
    if (r.transition) state = r.transition.to;
    return { ...r, state };
  });
}
