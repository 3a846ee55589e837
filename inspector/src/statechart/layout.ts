/**
 * Owns the hand-tuned geometry of the session statechart: where each state sits and how each
 * edge is routed (SVG path and label position) in a 920 × 410 view box. `idle` is the hub in the
 * middle; `active` (with its initial `starting` dot, `running`, `retrying` and `debouncing`) above it, `sleeping` and `waiting` on either
 * side, `stopped` below. Which states and edges exist comes from the machine (graph.ts); a state
 * or edge this table does not know is still drawn, in a fallback slot or as a straight line,
 * so a changed machine shows up (untidily) instead of disappearing.
 */

/** A state's box. */
export interface Box { readonly x: number; readonly y: number; readonly w: number; readonly h: number }

/** An edge's route and where its label goes (`anchor` as SVG text-anchor). */
export interface Route { readonly d: string; readonly lx: number; readonly ly: number; readonly anchor: 'start' | 'middle' | 'end' }

/** The view box all coordinates refer to. */
export const VIEW = { w: 920, h: 410 } as const;

/** Boxes by state id. */
export const BOXES: Readonly<Record<string, Box>> = {
  active: { x: 230, y: 44, w: 510, h: 130 },
  'active.starting': { x: 240, y: 54, w: 22, h: 22 },
  'active.debouncing': { x: 610, y: 96, w: 120, h: 50 },
  'active.running': { x: 270, y: 96, w: 120, h: 50 },
  'active.retrying': { x: 460, y: 96, w: 120, h: 50 },
  idle: { x: 340, y: 220, w: 160, h: 50 },
  sleeping: { x: 16, y: 220, w: 140, h: 50 },
  waiting: { x: 684, y: 220, w: 140, h: 50 },
  stopped: { x: 355, y: 345, w: 130, h: 50 },
};

/** Routes by `source->target`. */
export const ROUTES: Readonly<Record<string, Route>> = {
  'idle->active': { d: 'M420,220 L420,174', lx: 426, ly: 202, anchor: 'start' },
  // A message to a stable idle session goes straight to its run (or to waiting for quiet).
  'idle->active.running': { d: 'M395,220 C395,190 372,170 365,146', lx: 388, ly: 178, anchor: 'end' },
  'idle->active.debouncing': { d: 'M480,220 C505,185 600,172 630,146', lx: 560, ly: 196, anchor: 'middle' },
  'active->idle': { d: 'M575,174 C575,200 530,212 500,226', lx: 582, ly: 196, anchor: 'start' },
  'active.running->idle': { d: 'M330,146 C330,190 355,205 372,220', lx: 322, ly: 196, anchor: 'end' },
  'active.running->sleeping': { d: 'M270,112 C170,112 96,150 86,220', lx: 176, ly: 106, anchor: 'end' },
  'active.running->waiting': { d: 'M372,96 C392,-14 754,-14 754,220', lx: 570, ly: 19, anchor: 'middle' },
  'active.running->active.retrying': { d: 'M390,112 C415,101 435,101 460,112', lx: 425, ly: 96, anchor: 'middle' },
  'active.retrying->active.running': { d: 'M460,132 C435,143 415,143 390,132', lx: 425, ly: 160, anchor: 'middle' },
  'active.running->active.running': { d: 'M282,96 C262,62 318,62 304,96', lx: 292, ly: 62, anchor: 'middle' },
  'active->active.starting': { d: 'M230,65 L240,65', lx: 226, ly: 60, anchor: 'end' },
  'active.starting->active.running': { d: 'M251,76 C251,90 262,100 270,104', lx: 256, ly: 92, anchor: 'end' },
  'active.starting->active.debouncing': { d: 'M262,62 C420,40 600,40 650,96', lx: 520, ly: 50, anchor: 'middle' },
  'active.debouncing->active.debouncing': { d: 'M702,96 C682,62 738,62 724,96', lx: 712, ly: 62, anchor: 'middle' },
  'active.debouncing->active.running': { d: 'M610,140 C520,170 420,170 390,140', lx: 500, ly: 168, anchor: 'middle' },
  'active.running->active.debouncing': { d: 'M390,100 C450,70 560,70 610,100', lx: 500, ly: 74, anchor: 'middle' },
  'idle->sleeping': { d: 'M340,236 L156,236', lx: 246, ly: 229, anchor: 'middle' },
  'sleeping->idle': { d: 'M156,256 L340,256', lx: 240, ly: 274, anchor: 'middle' },
  'idle->waiting': { d: 'M500,236 L684,236', lx: 592, ly: 229, anchor: 'middle' },
  'waiting->idle': { d: 'M684,256 L500,256', lx: 592, ly: 274, anchor: 'middle' },
  'idle->stopped': { d: 'M420,270 L420,345', lx: 426, ly: 314, anchor: 'start' },
  'sleeping->stopped': { d: 'M86,270 C86,352 240,366 355,366', lx: 150, ly: 352, anchor: 'end' },
  'waiting->stopped': { d: 'M754,270 C754,352 600,366 485,366', lx: 690, ly: 352, anchor: 'start' },
  'active->stopped': { d: 'M740,120 H860 Q880,120 880,140 V366 Q880,386 860,386 H485', lx: 874, ly: 200, anchor: 'end' },
};

function center(b: Box): [number, number] {
  return [b.x + b.w / 2, b.y + b.h / 2];
}

/** A box for a state the table does not know: a slot along the bottom edge. */
export function fallbackBox(index: number): Box {
  return { x: 20 + (index % 6) * 150, y: VIEW.h - 40, w: 130, h: 32 };
}

/** A straight route between two boxes' centres, for an edge the table does not know. */
export function fallbackRoute(a: Box, b: Box): Route {
  const [x1, y1] = center(a);
  const [x2, y2] = center(b);
  return { d: `M${x1},${y1} L${x2},${y2}`, lx: (x1 + x2) / 2, ly: (y1 + y2) / 2 - 4, anchor: 'middle' };
}
