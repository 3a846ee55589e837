// Module hooks (node:module `register`) that load TypeScript on Node 20, which cannot: `.ts`
// files are transpiled one by one with TypeScript's own `transpileModule` (types erased, no type
// check), and `./x.js` imported from a `.ts` file resolves to `./x.ts` when that exists (the
// NodeNext convention), as does an extension-less `./x`. Two users:
//  - a worker thread running our sources under vitest (persistence/pgliteWorkerStore.ts);
//  - `agentry dev|start --agents ./src/agents.ts` (runtime/agentModule.ts), where `dev` also
//    reloads the user's modules: a module imported as `…?agentry-reload=N` passes that query on
//    to every file it imports by a relative or absolute path outside node_modules, so a new N
//    loads the user's code afresh while packages stay loaded once; and each such file loaded is reported on `data.port`, so
//    `dev` knows which folders to watch.
//
//   register(url, { data: { bases: [<URL of a package.json>, …], port? }, transferList: [port] })
//
// `bases` say where to look for the `typescript` package, in order (the user's project first, then
// ours); it is required only when a `.ts` file is loaded.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const RELOAD = 'agentry-reload';
const TS_FILE = /\.m?ts$/;

let bases = [];
let port;
let ts;

export function initialize(data) {
  bases = data?.bases ?? (data?.base ? [data.base] : []);
  port = data?.port;
}

/** TypeScript from the first base that has it; a clear error when none does. */
function typescript() {
  if (ts) return ts;
  for (const base of bases) {
    try {
      ts = createRequire(base)('typescript');
      return ts;
    } catch { /* try the next base */ }
  }
  throw new Error('loading a .ts module needs the `typescript` package: run `npm install --save-dev typescript` in your project');
}

/** The `.ts` file a relative specifier of a `.ts` module means, when it exists. */
function typescriptTarget(specifier, parent) {
  if (!parent || !TS_FILE.test(parent.pathname) || !/^\.\.?\//.test(specifier)) return undefined;
  const candidates = specifier.endsWith('.js') ? [`${specifier.slice(0, -3)}.ts`]
    : specifier.endsWith('.mjs') ? [`${specifier.slice(0, -4)}.mts`]
      : /\.[a-z]+$/i.test(specifier) ? [] : [`${specifier}.ts`, `${specifier}/index.ts`];
  for (const c of candidates) {
    const url = new URL(c, parent);
    if (existsSync(fileURLToPath(url))) return url;
  }
  return undefined;
}

export async function resolve(specifier, context, next) {
  const parent = context.parentURL ? new URL(context.parentURL) : undefined;
  const target = typescriptTarget(specifier, parent);
  const result = target ? { url: target.href, format: 'module', shortCircuit: true } : await next(specifier, context);
  // Only the user's own files reload: a package (a bare specifier, even one that resolves outside
  // node_modules, as a linked package or the package importing itself does) loads once.
  const version = parent?.searchParams.get(RELOAD);
  const ownFile = /^(?:\.\.?\/|\/|file:)/.test(specifier);
  if (!version || !ownFile || !result.url.startsWith('file:') || result.url.includes('/node_modules/')) return result;
  const url = new URL(result.url);
  if (url.searchParams.has(RELOAD)) return result;
  url.searchParams.set(RELOAD, version);
  return { ...result, url: url.href };
}

export async function load(url, context, next) {
  const u = new URL(url);
  if (port && u.protocol === 'file:' && u.searchParams.has(RELOAD)) port.postMessage(fileURLToPath(u));
  if (u.protocol !== 'file:' || !TS_FILE.test(u.pathname)) return next(url, context);
  u.search = '';
  const fileName = fileURLToPath(u);
  const t = typescript();
  const { outputText, diagnostics } = t.transpileModule(await readFile(fileName, 'utf8'), {
    fileName,
    reportDiagnostics: true,
    compilerOptions: { module: t.ModuleKind.ESNext, target: t.ScriptTarget.ES2022, inlineSourceMap: true, inlineSources: true },
  });
  // transpileModule emits even for broken syntax; say where it is instead of running the damage.
  const syntax = diagnostics?.find((d) => d.category === t.DiagnosticCategory.Error);
  if (syntax) {
    const at = syntax.file && syntax.start !== undefined ? syntax.file.getLineAndCharacterOfPosition(syntax.start) : undefined;
    const where = at ? `${fileName}:${at.line + 1}:${at.character + 1}` : fileName;
    throw new SyntaxError(`${where}: ${t.flattenDiagnosticMessageText(syntax.messageText, '\n')}`);
  }
  return { format: 'module', source: outputText, shortCircuit: true };
}
