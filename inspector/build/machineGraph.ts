/**
 * Build-time only (imported by vite.config.ts, never shipped): turns an XState v5 machine into
 * the inspector's `MachineGraph`. It walks the live StateNode objects rather than
 * `machine.toJSON()` because the JSON form leaves out eventless (`always`) transitions, and
 * `idle → active` is one of those.
 */
import type { GraphEdge, GraphState, MachineGraph } from '../src/statechart/graph.js';

/** The part of XState's StateNode this reads (duck-typed, so the inspector does not depend on xstate). */
export interface StateNodeLike {
  readonly id: string;
  readonly type: GraphState['kind'];
  readonly states: Readonly<Record<string, StateNodeLike>>;
  readonly initial?: { readonly target?: readonly { readonly id: string }[] } | undefined;
  readonly transitions: ReadonlyMap<string, readonly TransitionLike[]>;
  readonly always?: readonly TransitionLike[] | undefined;
}

interface TransitionLike {
  readonly eventType: string;
  readonly target?: readonly { readonly id: string }[] | undefined;
  readonly guard?: unknown;
}

/** `RUN_DONE` (earlier `xstate.done.actor.handler`) → `done`, `RUN_FAILED` → `error`, `xstate.after.backoff.…` → `after backoff`, eventless → `always`. */
export function eventLabel(eventType: string, guard: unknown): string {
  const guardName = typeof guard === 'string' ? guard : typeof guard === 'object' && guard !== null && typeof (guard as { type?: unknown }).type === 'string' ? (guard as { type: string }).type : null;
  let label: string;
  if (eventType === '') label = guardName ? '' : 'always';
  else if (eventType === 'RUN_DONE' || eventType.startsWith('xstate.done.actor.')) label = 'done';
  else if (eventType === 'RUN_FAILED' || eventType.startsWith('xstate.error.actor.')) label = 'error';
  else if (eventType.startsWith('xstate.after.')) label = `after ${eventType.split('.')[2] ?? ''}`.trim();
  else label = eventType;
  return guardName ? `${label} [${guardName}]`.trim() : label;
}

/** The graph of `root` (a machine's `root` StateNode); state ids lose the machine id prefix. */
export function machineGraph(root: StateNodeLike): MachineGraph {
  const prefix = `${root.id}.`;
  const local = (id: string): string => (id.startsWith(prefix) ? id.slice(prefix.length) : id);
  const states: GraphState[] = [];
  const edges = new Map<string, { source: string; target: string; labels: string[]; events: string[] }>();
  const walk = (node: StateNodeLike, parent: string | null): void => {
    const id = local(node.id);
    if (node !== root) {
      const initial = node.initial?.target?.[0]?.id;
      states.push({ id, parent, kind: node.type, initial: initial ? local(initial) : null });
    }
    const all = [...[...node.transitions.values()].flat(), ...(node.always ?? [])];
    for (const t of all) {
      for (const target of t.target ?? []) {
        const key = `${id}->${local(target.id)}`;
        const e = edges.get(key) ?? { source: id, target: local(target.id), labels: [], events: [] };
        const label = eventLabel(t.eventType, t.guard);
        if (!e.labels.includes(label)) e.labels.push(label);
        if (!e.events.includes(t.eventType)) e.events.push(t.eventType);
        edges.set(key, e);
      }
    }
    for (const child of Object.values(node.states)) walk(child, node === root ? null : id);
  };
  walk(root, null);
  return { id: root.id, states, edges: [...edges.values()] satisfies GraphEdge[] };
}
