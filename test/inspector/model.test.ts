// The inspector's pure parts, in Node: the statechart graph extracted from the real session
// machine (what the UI draws), the timeline and handler-call models, duration parsing for the sleep control, and the
// Cluster page's owner colours, partition ranges and lease lag levels.
import { describe, expect, it } from 'vitest';
import { sessionMachine } from '../../actors/index.js';
import { machineGraph } from '../../inspector/build/machineGraph.js';
import { OWNER_COLOURS, lagLevel, ownerSlots, partitionRanges } from '../../inspector/src/clusterModel.js';
import { parseDuration } from '../../inspector/src/format.js';
import { groupByCall } from '../../inspector/src/handlerCalls.js';
import type { HistoryMessage, Transition } from '../../inspector/src/sessionFeed.js';
import { edgeForTransition, edgesForTransition } from '../../inspector/src/statechart/graph.js';
import { BOXES, ROUTES } from '../../inspector/src/statechart/layout.js';
import { STATES } from '../../inspector/src/states.js';
import { timelineItems } from '../../inspector/src/timelineItems.js';

const graph = machineGraph(sessionMachine.root);

describe('statechart graph from sessionMachine', () => {
  it('has the five top states and active\'s substates', () => {
    const ids = graph.states.map((s) => s.id);
    expect(ids).toEqual(expect.arrayContaining([...STATES, 'active.running', 'active.retrying']));
    expect(graph.states.find((s) => s.id === 'active')).toMatchObject({ kind: 'compound', initial: 'active.starting' });
    expect(graph.states.find((s) => s.id === 'stopped')?.kind).toBe('final');
  });

  it('includes eventless transitions (idle → active) and labels internal events readably', () => {
    const edge = (s: string, t: string) => graph.edges.find((e) => e.source === s && e.target === t);
    expect(edge('idle', 'active')?.labels).toEqual(['[hasPending]']);
    expect(edge('idle', 'sleeping')?.labels).toEqual(['SLEEP', 'always']);
    expect(edge('sleeping', 'idle')?.labels).toEqual(['MESSAGE [wakesSleeper]', 'WAKE']);
    expect(edge('active.running', 'idle')?.labels).toEqual(['done', 'error']);
    expect(edge('active.retrying', 'active.running')?.labels).toEqual(['after backoff']);
    expect(edge('active.running', 'active.running')?.labels).toEqual(['MESSAGE [canMerge]', 'done [continuesWithPending]']);
  });

  it('has a hand-tuned box for every state and a route for every edge', () => {
    for (const s of graph.states) expect(BOXES[s.id], `box for ${s.id}`).toBeDefined();
    for (const e of graph.edges) expect(ROUTES[`${e.source}->${e.target}`], `route for ${e.source}->${e.target}`).toBeDefined();
  });

  it('maps recorded transitions to the edge they took', () => {
    expect(edgeForTransition(graph, 'idle', 'active.running', 'MESSAGE')).toMatchObject({ source: 'idle', target: 'active.running' });
    expect(edgeForTransition(graph, 'idle', 'active.debouncing', 'MESSAGE')).toMatchObject({ source: 'idle', target: 'active.debouncing' });
    expect(edgeForTransition(graph, 'active.running', 'idle', 'xstate.done.actor.handler')).toMatchObject({ source: 'active.running', target: 'idle' });
    expect(edgeForTransition(graph, 'active.running', 'idle', 'run.done')).toMatchObject({ source: 'active.running', target: 'idle' });
    expect(edgeForTransition(graph, 'active.running', 'idle', 'INTERRUPT')).toMatchObject({ source: 'active', target: 'idle' });
    expect(edgeForTransition(graph, 'active.running', 'stopped', 'STOP')).toMatchObject({ source: 'active', target: 'stopped' });
    expect(edgeForTransition(graph, 'sleeping', 'idle', 'WAKE')).toMatchObject({ source: 'sleeping', target: 'idle' });
    // A run that ends with more queued starts the next one in place (one microstep).
    expect(edgeForTransition(graph, 'active.running', 'active.running', 'run.done')).toMatchObject({ source: 'active.running', target: 'active.running' });
    expect(edgeForTransition(graph, 'stopped', 'idle', 'WAKE')).toBeNull();
  });

  it('follows an eventless second step: a wake with mail waiting goes sleeping → idle → active in one change', () => {
    const path = edgesForTransition(graph, 'sleeping', 'active.running', 'WAKE').map((e) => `${e.source}->${e.target}`);
    expect(path).toEqual(['sleeping->idle', 'idle->active']);
    expect(edgesForTransition(graph, 'stopped', 'idle', 'WAKE')).toEqual([]);
  });
});

describe('timeline and history models', () => {
  const transitions: Transition[] = [
    { at: 100, event: 'MESSAGE', from: 'idle', to: 'active.running' },
    { at: 400, event: 'xstate.done.actor.handler', from: 'active.running', to: 'idle' },
    { at: 500, event: 'SLEEP', from: 'idle', to: 'sleeping' },
    { at: 900, event: 'WAKE', from: 'sleeping', to: 'idle' },
  ];
  const history: HistoryMessage[] = [
    { seq: 0, kind: 'wake', body: { reason: 'manual' }, priority: 'normal', from: null, batchId: '3', outcome: 'ok', fate: 'handled', at: 900 },
    { seq: 12, kind: 'message', body: 'b', priority: 'normal', from: null, batchId: '2', outcome: 'ok', fate: 'merged', at: 101 },
    { seq: 11, kind: 'message', body: 'a', priority: 'high', from: 'x', batchId: '2', outcome: 'ok', fate: 'merged', at: 99 },
  ];

  it('merges transitions, messages and wakes in time order with the state after each', () => {
    const items = timelineItems(transitions, history);
    expect(items.map((i) => [i.kind, i.state])).toEqual([
      ['message', 'idle'], ['transition', 'active.running'], ['message', 'active.running'],
      ['transition', 'idle'], ['transition', 'sleeping'], ['wake', 'sleeping'], ['transition', 'idle'],
    ]);
    expect(items[5]!.label).toBe('wake (manual)');
  });

  it('groups merged messages into one handler call, oldest message first', () => {
    const calls = groupByCall(history);
    expect(calls.map((c) => [c.batchId, c.messages.map((m) => m.seq)])).toEqual([['3', [0]], ['2', [11, 12]]]);
  });

  it('parses the durations people type', () => {
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('2d')).toBe(172_800_000);
    expect(parseDuration('250')).toBe(250);
    expect(parseDuration('5 m 10 s')).toBe(310_000);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('soon')).toBeNull();
    expect(parseDuration('10x')).toBeNull();
  });
});

describe('cluster page model', () => {
  it('gives each owner a colour by sorted id, whatever the answer order, free partitions none', () => {
    const slots = ownerSlots(['node-b', null, 'node-a', 'node-b', 'node-c']);
    expect([...slots]).toEqual([['node-a', 0], ['node-b', 1], ['node-c', 2]]);
    expect(ownerSlots(['node-c', 'node-a', 'node-b'])).toEqual(slots);
    const many = ownerSlots(Array.from({ length: OWNER_COLOURS + 2 }, (_, i) => `n${String(i).padStart(2, '0')}`));
    expect(many.get('n10')).toBe(0); // colours repeat past the palette; the tooltip still names the owner
  });

  it('writes partition lists as ranges', () => {
    expect(partitionRanges([])).toBe('');
    expect(partitionRanges([7])).toBe('7');
    expect(partitionRanges([11, 10, 8, 3, 2, 1, 0])).toBe('0–3, 8, 10–11');
  });

  it('rates a lease lag against the TTL: warn from half, bad from 90% (where partitions are suspended)', () => {
    expect(lagLevel(null, 6000)).toBe('unknown');
    expect(lagLevel(1499, 6000)).toBe('ok');
    expect(lagLevel(3000, 6000)).toBe('warn');
    expect(lagLevel(5399, 6000)).toBe('warn');
    expect(lagLevel(5400, 6000)).toBe('bad');
  });
});
