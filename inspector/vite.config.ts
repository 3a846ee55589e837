// Builds the inspector into inspector/dist, which the control plane reads into memory at start
// and serves at `/`. Run by the root `npm run build` after `tsc` (this config reads the compiled
// session machine from dist/ to give the UI the statechart as data: the browser bundle never
// imports actors/ or xstate). Preact's JSX goes through Vite's own Oxc transform, no plugin.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { defineConfig, type Plugin } from 'vite';
import { machineGraph, type StateNodeLike } from './build/machineGraph.js';

const here = dirname(fileURLToPath(import.meta.url));
const VIRTUAL = 'virtual:session-machine';
const devApi = process.env.AGENTRY_DEV_API ?? 'http://127.0.0.1:7070';

/** Serves `virtual:session-machine`: the statechart graph of the compiled `sessionMachine`. */
function sessionMachinePlugin(): Plugin {
  return {
    name: 'agentry-session-machine',
    resolveId(id) { return id === VIRTUAL ? `\0${VIRTUAL}` : null; },
    async load(id) {
      if (id !== `\0${VIRTUAL}`) return null;
      const compiled = join(here, '..', 'dist', 'actors', 'index.js');
      if (!existsSync(compiled)) throw new Error(`${compiled} is missing: run the TypeScript build first (npm run build does)`);
      const mod = (await import(pathToFileURL(compiled).href)) as { sessionMachine: { root: StateNodeLike } };
      return `export default ${JSON.stringify(machineGraph(mod.sessionMachine.root))};`;
    },
  };
}

export default defineConfig({
  root: here,
  base: '/',
  publicDir: 'public',
  logLevel: 'warn',
  plugins: [sessionMachinePlugin()],
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    chunkSizeWarningLimit: 400,
  },
  server: {
    // `npx vite --config inspector/vite.config.ts` for UI work, proxying the API to a running
    // `npm start` (AGENTRY_DEV_API, default http://127.0.0.1:7070), which must allow this origin:
    // AGENTRY_ALLOWED_ORIGINS=http://localhost:5173 npm start
    proxy: { '/rpc': { target: devApi.replace(/^http/, 'ws'), ws: true }, '/metrics': devApi },
  },
});
