/**
 * Owns the statechart as data the inspector draws: states (with their parent) and edges (one per
 * source → target pair, labelled with every event that takes it). The graph is extracted from
 * `sessionMachine` at build time (`build/machineGraph.ts`, served as the virtual module
 * `virtual:session-machine`), so the drawing follows the machine the runtime actually runs.
 */

/** One state node; ids are paths without the machine id (`active.running`). */
export interface GraphState {
  readonly id: string;
  readonly parent: string | null;
  readonly kind: 'atomic' | 'compound' | 'parallel' | 'final' | 'history';
  /** Initial child of a compound state. */
  readonly initial: string | null;
}

/** All transitions from `source` to `target`, with readable labels (`WAKE`, `done`, `[hasPending]`). */
export interface GraphEdge {
  readonly source: string;
  readonly target: string;
  readonly labels: readonly string[];
  /** The raw event types (`RUN_DONE`, `` for eventless), for matching recorded transitions. */
  readonly events: readonly string[];
}

/** The whole chart. */
export interface MachineGraph {
  readonly id: string;
  readonly states: readonly GraphState[];
  readonly edges: readonly GraphEdge[];
}

/** The transition to animate: state paths as the runtime records them. */
export interface LastTransition {
  readonly from: string;
  readonly to: string;
  readonly event: string;
  /** Changes for every transition (even a repeated one), to restart the animation. */
  readonly key: string;
}

function isAncestorOrSelf(ancestor: string, id: string): boolean {
  return id === ancestor || id.startsWith(`${ancestor}.`);
}

/**
 * Does a machine edge's raw event type match a recorded one? The runtime records XState's
 * internal events under timeline names: `run.done` (RUN_DONE), `run.failed` (RUN_FAILED), `retry`.
 */
export function eventMatches(raw: string, recorded: string): boolean {
  if (raw === recorded) return true;
  if (recorded === 'run.done') return raw === 'RUN_DONE' || raw.startsWith('xstate.done.actor.');
  if (recorded === 'run.failed') return raw === 'RUN_FAILED' || raw.startsWith('xstate.error.actor.');
  if (recorded === 'retry') return raw.startsWith('xstate.after.');
  return false;
}

/**
 * The edge a recorded transition (`from` → `to` state paths, e.g. `active.running` → `idle`)
 * most likely took: the source must be the old state or one of its ancestors (a transition on
 * `active` leaves `active.running` too) and the target the new state or an ancestor (entering
 * `active` lands in `active.running`). Prefers an edge whose events include the recorded event,
 * then the most specific source. Null when the chart has no such edge (e.g. hydration).
 */
export function edgeForTransition(graph: MachineGraph, from: string, to: string, event?: string): GraphEdge | null {
  let best: GraphEdge | null = null;
  let bestScore = -1;
  for (const e of graph.edges) {
    if (!isAncestorOrSelf(e.source, from) || !isAncestorOrSelf(e.target, to)) continue;
    const score = (event !== undefined && e.events.some((x) => eventMatches(x, event)) ? 1000 : 0) + e.source.length * 2 + e.target.length;
    if (score > bestScore) { best = e; bestScore = score; }
  }
  return best;
}

/**
 * The edges a recorded transition went along. One snapshot change can cross two edges when the
 * second is eventless: a WAKE with messages waiting goes `sleeping → idle` and at once
 * `idle → active` ([hasPending]), recorded as `sleeping → active.running`. Empty when no path
 * of one or two such edges exists.
 */
export function edgesForTransition(graph: MachineGraph, from: string, to: string, event?: string): GraphEdge[] {
  const direct = edgeForTransition(graph, from, to, event);
  if (direct) return [direct];
  for (const mid of graph.states) {
    const second = graph.edges.find((e) => e.source === mid.id && e.events.includes('') && isAncestorOrSelf(e.target, to));
    if (!second) continue;
    const first = edgeForTransition(graph, from, mid.id, event);
    if (first) return [first, second];
  }
  return [];
}
