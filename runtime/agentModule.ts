/**
 * Loads the user's agents for `agentry dev|start --agents <module>`: a `.ts` module straight from
 * source on Node 20 (through `ops/ts-source-hooks.mjs`, TypeScript's own transpiler, no build
 * step) or a `.js` one, and for `dev` again after an edit — each reload imports the user's files
 * afresh while packages stay loaded once, and names the files it read so `dev` can watch them.
 */
import { existsSync, statSync } from 'node:fs';
import { register } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import type { AnyAgent } from '../actors/defineAgent.js';
import { AgentryError } from '../actors/errors.js';
import { projectRoot } from '../ops/natsServer.js';

/** Query parameter the hooks pass from a reloaded module to the user files it imports. */
const RELOAD = 'agentry-reload';

let hooks: { files: Set<string>; port: MessagePort } | undefined;

/**
 * Registers the module hooks once per process (they cannot be unregistered). `typescript` is
 * looked up from the agents' folder first (the user's own devDependency), then from this package.
 * Files the hooks load for a reload are collected in `files`.
 */
function ensureHooks(moduleDir: string): { files: Set<string> } {
  if (hooks) return hooks;
  const { port1, port2 } = new MessageChannel();
  const files = new Set<string>();
  port1.on('message', (file: string) => { files.add(file); });
  port1.unref();
  const bases = [pathToFileURL(join(moduleDir, 'package.json')).href, pathToFileURL(join(projectRoot(), 'package.json')).href];
  register(pathToFileURL(join(projectRoot(), 'ops', 'ts-source-hooks.mjs')).href, {
    data: { bases, port: port2 }, transferList: [port2],
  });
  // Stacks of handlers written in TypeScript point at their .ts lines (the transpiler inlines maps).
  process.setSourceMapsEnabled(true);
  hooks = { files, port: port1 };
  return hooks;
}

/** What one load of an agents module found. */
export interface LoadedAgents {
  readonly agents: readonly AnyAgent[];
  /** The user's files this load read (the module and what it imports outside node_modules); empty without `reload`. */
  readonly files: string[];
}

/** Every distinct `defineAgent` result a module exports, alone or in an exported array. */
export function agentsOf(mod: Record<string, unknown>): AnyAgent[] {
  return [...new Set(Object.values(mod).flatMap((v): unknown[] => (Array.isArray(v) ? (v as unknown[]) : [v])))]
    .filter((v): v is AnyAgent => !!v && typeof v === 'object' && 'type' in v && 'handle' in v && 'limits' in v);
}

/**
 * Imports the agents module at `path`. `reload` (1, 2, …) loads the module and every user file it
 * imports afresh under that number; without it the module loads the ordinary way (once). Throws
 * CONFIG_INVALID, with the import's own error as `cause` (its stack names the line), when the
 * file is missing, fails to load, or exports no agent.
 */
export async function loadAgentModule(path: string, opts: { reload?: number } = {}): Promise<LoadedAgents> {
  const file = resolve(path);
  if (!existsSync(file) || !statSync(file).isFile()) {
    throw new AgentryError('CONFIG_INVALID', `--agents ${path}: no such file (${file})`);
  }
  const typescript = /\.m?ts$/.test(file);
  const h = typescript || opts.reload !== undefined ? ensureHooks(dirname(file)) : undefined;
  const url = pathToFileURL(file);
  if (opts.reload !== undefined) url.searchParams.set(RELOAD, String(opts.reload));
  h?.files.clear();
  let mod: Record<string, unknown>;
  try {
    mod = await import(url.href) as Record<string, unknown>;
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new AgentryError('CONFIG_INVALID', `--agents ${path}: cannot load it: ${why}`, { cause: e });
  }
  const agents = agentsOf(mod);
  if (agents.length === 0) {
    throw new AgentryError('CONFIG_INVALID', `--agents ${path} exports no agent definitions (export the results of defineAgent)`);
  }
  // The hooks report loads through a message port: let those messages arrive before reading them.
  await new Promise<void>((r) => { setImmediate(r); });
  const files = h && opts.reload !== undefined ? [...h.files] : [];
  if (opts.reload !== undefined && !files.includes(file)) files.push(file);
  return { agents, files };
}
