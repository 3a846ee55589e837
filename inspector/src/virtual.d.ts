/** The session statechart as data, generated at build time from `sessionMachine` (see vite.config.ts). */
declare module 'virtual:session-machine' {
  const graph: import('./statechart/graph.js').MachineGraph;
  export default graph;
}

/** Stylesheets are bundled by Vite; importing one has no value. */
declare module '*.css';
