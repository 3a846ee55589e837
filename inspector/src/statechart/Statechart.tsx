/**
 * Draws the session statechart (states and edges from the machine definition, geometry from
 * layout.ts) with the current state highlighted and the last transition animated. Keyed on the
 * transition, the animated edge is a fresh element each time, so CSS replays the animation.
 */
import type { JSX } from 'preact';
import { edgesForTransition, type LastTransition, type MachineGraph } from './graph.js';
import { BOXES, ROUTES, VIEW, fallbackBox, fallbackRoute, type Box } from './layout.js';

/** Props of `Statechart`. */
export interface StatechartProps {
  readonly graph: MachineGraph;
  /** Current state path, e.g. `active.running`. */
  readonly current: string;
  readonly last: LastTransition | null;
  /** True when `current` is a recorded state picked on the timeline rather than the live one. */
  readonly recorded?: boolean;
  /** A line under the chart, e.g. the wake time of a sleeping session. */
  readonly caption?: string;
}

function isWithin(path: string, id: string): boolean {
  return path === id || path.startsWith(`${id}.`);
}

/** The statechart as an accessible SVG figure. */
export function Statechart({ graph, current, last, recorded = false, caption }: StatechartProps): JSX.Element {
  const boxes = new Map<string, Box>();
  let spare = 0;
  for (const s of graph.states) boxes.set(s.id, BOXES[s.id] ?? fallbackBox(spare++));
  const lastEdges = last ? edgesForTransition(graph, last.from, last.to, last.event) : [];
  const compound = graph.states.filter((s) => s.kind === 'compound' || s.kind === 'parallel');
  const leaves = graph.states.filter((s) => s.kind !== 'compound' && s.kind !== 'parallel');
  const description = `Current state ${current}${recorded ? ' (recorded)' : ''}.${last ? ` Last transition ${last.from} to ${last.to} on ${last.event}.` : ''}`;

  const node = (id: string, box: Box, isCompound: boolean): JSX.Element => {
    const here = isWithin(current, id);
    const top = id.split('.')[0]!;
    const label = id.includes('.') ? id.slice(id.lastIndexOf('.') + 1) : id;
    const cls = ['node', isCompound ? 'node--compound' : 'node--leaf', `state-${top}`, here ? 'current' : '', here && last && isWithin(last.to, id) ? 'entered' : '']
      .filter(Boolean).join(' ');
    return (
      <g class={cls} data-node={id} data-current={here ? 'true' : undefined} key={here && last ? `${id}:${last.key}` : id}>
        <rect class="node__box" x={box.x} y={box.y} width={box.w} height={box.h} rx={isCompound ? 14 : 10} />
        {graph.states.find((s) => s.id === id)?.kind === 'final' && (
          <rect class="node__final" x={box.x + 4} y={box.y + 4} width={box.w - 8} height={box.h - 8} rx={7} />
        )}
        {isCompound
          ? <text class="node__title" x={box.x + box.w - 12} y={box.y + 20} text-anchor="end">{label}</text>
          : <text class="node__label" x={box.x + box.w / 2} y={box.y + box.h / 2 + 5} text-anchor="middle">{label}</text>}
      </g>
    );
  };

  return (
    <figure class={`statechart${recorded ? ' statechart--recorded' : ''}`}>
      <svg viewBox={`0 0 ${VIEW.w} ${VIEW.h}`} role="img" aria-labelledby="statechart-title statechart-desc" data-current={current}>
        <title id="statechart-title">Session statechart</title>
        <desc id="statechart-desc">{description}</desc>
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M0,0 L10,5 L0,10 z" class="arrowhead" />
          </marker>
          <marker id="arrow-last" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M0,0 L10,5 L0,10 z" class="arrowhead arrowhead--last" />
          </marker>
        </defs>
        {compound.map((s) => node(s.id, boxes.get(s.id)!, true))}
        {graph.edges.map((e) => {
          const key = `${e.source}->${e.target}`;
          const route = ROUTES[key] ?? fallbackRoute(boxes.get(e.source)!, boxes.get(e.target)!);
          const isLast = lastEdges.includes(e);
          return (
            <g class={`edge${isLast ? ' edge--last' : ''}`} data-edge={key} key={isLast ? `${key}:${last!.key}` : key}>
              <path d={route.d} marker-end={isLast ? 'url(#arrow-last)' : 'url(#arrow)'}
                style={isLast && lastEdges.indexOf(e) > 0 ? { animationDelay: `${lastEdges.indexOf(e) * 0.35}s` } : undefined} />
              <text x={route.lx} y={route.ly} text-anchor={route.anchor}>{e.labels.join(' · ')}</text>
            </g>
          );
        })}
        {leaves.map((s) => node(s.id, boxes.get(s.id)!, false))}
      </svg>
      {caption && <figcaption>{caption}</figcaption>}
    </figure>
  );
}
