// Module hooks (node:module `register`) that let a worker thread load our TypeScript sources
// the way vitest loads them in the main thread: `./x.js` imported from a `.ts` file resolves to
// `./x.ts` when that exists, and `.ts` files are transpiled one by one with TypeScript's
// `transpileModule` (types erased, no type check). Used only when code runs from the sources
// (see persistence/pgliteWorkerStore.ts); the build (dist/) never needs it.
//
//   register(new URL('./ts-source-hooks.mjs', …), { data: { base: <URL of package.json> } })
//
// `base` locates the `typescript` package (a devDependency, present wherever sources run).
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

let ts;

export function initialize(data) {
  ts = createRequire(data.base)('typescript');
}

export async function resolve(specifier, context, next) {
  if (context.parentURL?.endsWith('.ts') && /^\.\.?\//.test(specifier) && specifier.endsWith('.js')) {
    const url = new URL(`${specifier.slice(0, -3)}.ts`, context.parentURL);
    if (existsSync(fileURLToPath(url))) return { url: url.href, format: 'module', shortCircuit: true };
  }
  return next(specifier, context);
}

export async function load(url, context, next) {
  if (!url.startsWith('file:') || !url.endsWith('.ts')) return next(url, context);
  const fileName = fileURLToPath(url);
  const { outputText } = ts.transpileModule(await readFile(fileName, 'utf8'), {
    fileName,
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, inlineSourceMap: true, inlineSources: true },
  });
  return { format: 'module', source: outputText, shortCircuit: true };
}
