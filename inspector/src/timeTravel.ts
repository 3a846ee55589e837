/**
 * Owns time travel's pure models: which recorded step a timeline entry shows (`stepOfItem`), the
 * differences between two contexts (`diffValues`), and the sequence view of a session (messages
 * in → handler calls → outputs out, in order) built from its history and its transitions' frames.
 */
import type { HistoryMessage, Transition } from './sessionFeed.js';
import type { TimelineItem } from './timelineItems.js';

/** The step a timeline entry shows: the newest stored transition at or before it, and the entry's time (history up to then). */
export interface StepRef {
  readonly transition: number;
  readonly until: number;
  /** 1-based position of the entry in the timeline (what the banner says). */
  readonly index: number;
}

/** The step to read for entry `index` of `items`; null when no stored transition precedes it. */
export function stepOfItem(items: readonly TimelineItem[], index: number): StepRef | null {
  const it = items[index];
  if (!it) return null;
  for (let i = index; i >= 0; i--) {
    const id = items[i]!.transition?.id;
    if (id !== undefined) return { transition: id, until: it.at, index: index + 1 };
  }
  return null;
}

/** One difference between two JSON values, at a dotted path (`userState.notes.2`). */
export interface DiffEntry {
  readonly path: string;
  readonly kind: 'added' | 'removed' | 'changed';
  readonly before?: unknown;
  readonly after?: unknown;
}

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object';

/** The differences from `before` to `after`, depth first, at most `max` of them. */
export function diffValues(before: unknown, after: unknown, path = '', max = 200): DiffEntry[] {
  const out: DiffEntry[] = [];
  const walk = (a: unknown, b: unknown, p: string): void => {
    if (out.length >= max) return;
    if (isObj(a) && isObj(b) && Array.isArray(a) === Array.isArray(b)) {
      const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
      for (const k of keys) {
        const q = p ? `${p}.${k}` : k;
        if (!(k in a)) out.push({ path: q, kind: 'added', after: b[k] });
        else if (!(k in b)) out.push({ path: q, kind: 'removed', before: a[k] });
        else walk(a[k], b[k], q);
        if (out.length >= max) return;
      }
      return;
    }
    if (a === b) return;
    if (!isObj(a) && !isObj(b) && Object.is(a, b)) return;
    if (isObj(a) || isObj(b) ? JSON.stringify(a) === JSON.stringify(b) : false) return;
    out.push({ path: p || '(root)', kind: 'changed', before: a, after: b });
  };
  walk(before, after, path);
  return out;
}

/** One row of the sequence view. */
export type SequenceRow =
  | { readonly kind: 'in'; readonly at: number; readonly key: string; readonly seq: number; readonly msgKind: string; readonly from: string | null; readonly priority: string; readonly body: unknown; readonly fate: string }
  | { readonly kind: 'call'; readonly at: number; readonly key: string; readonly runId: number; readonly number: number; readonly seqs: readonly number[]; readonly wake: boolean }
  | { readonly kind: 'out'; readonly at: number; readonly key: string; readonly runId: number; readonly outKind: string; readonly subject: string; readonly body: unknown }
  | { readonly kind: 'state'; readonly at: number; readonly key: string; readonly from: string; readonly to: string; readonly event: string };

interface FrameShape {
  readonly event?: { readonly type?: string };
  readonly context?: { readonly runId?: number; readonly mailbox?: { readonly running?: readonly { seq: number; kind: string }[] } };
  readonly outputs?: { readonly runId: number; readonly items: readonly { kind: string; subject: string; body: unknown }[] };
}

/** At the same millisecond a message comes in first; the rest keep the order of the steps that made them. */
const ORDER = { in: 0, call: 1, out: 1, state: 1 } as const;

/**
 * The sequence of a session, oldest first: each message as it came in, each handler call as it
 * started (numbered 1, 2, 3 in order, with the messages it ran), each output as its run's end was
 * recorded, and the rests (sleeping, waiting, stopped) between them. Transitions need their frames
 * (`getTransitions { frames: true }`); without one a step shows only as a state change.
 */
export function sequenceOf(history: readonly HistoryMessage[], transitions: readonly (Transition & { frame?: unknown })[]): SequenceRow[] {
  const rows: SequenceRow[] = [];
  for (const m of history) {
    if (m.seq <= 0) continue;
    rows.push({ kind: 'in', at: m.at, key: `in:${m.seq}`, seq: m.seq, msgKind: m.kind, from: m.from, priority: m.priority, body: m.body, fate: m.fate });
  }
  let lastRun = 0;
  let calls = 0;
  for (const t of transitions) {
    const f = (t.frame ?? null) as FrameShape | null;
    const runId = f?.context?.runId ?? 0;
    if (t.to.startsWith('active') && f && runId !== lastRun && runId > 0) {
      lastRun = runId;
      const running = f.context?.mailbox?.running ?? [];
      rows.push({ kind: 'call', at: t.at, key: `call:${runId}`, runId, number: ++calls, seqs: running.filter((m) => m.seq > 0).map((m) => m.seq), wake: running.some((m) => m.kind === 'wake') });
    }
    if (f?.outputs) {
      f.outputs.items.forEach((o, i) => {
        rows.push({ kind: 'out', at: t.at, key: `out:${f.outputs!.runId}:${i}`, runId: f.outputs!.runId, outKind: o.kind, subject: o.subject, body: o.body });
      });
    }
    const top = t.to.split('.')[0];
    if (top === 'sleeping' || top === 'waiting' || top === 'stopped') rows.push({ kind: 'state', at: t.at, key: `st:${t.id ?? t.at}:${t.to}`, from: t.from, to: t.to, event: t.event });
  }
  return rows.map((r, i) => ({ r, i })).sort((a, b) => a.r.at - b.r.at || ORDER[a.r.kind] - ORDER[b.r.kind] || a.i - b.i).map((x) => x.r);
}
