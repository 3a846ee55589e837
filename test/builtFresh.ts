// Child-process and browser tests run the build (dist/, inspector/dist), not the sources: these
// checks fail early and clearly when that build is missing or older than the sources. The build
// is incremental (ops/build.mjs, tsc --incremental), so an unchanged output file keeps its old
// mtime; what says "built from these sources" is the step's stamp, rewritten by every
// `npm run build`, or tsc's build info, rewritten by every tsc run that emitted anything.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const mtime = (f: string): number => (existsSync(join(root, f)) ? statSync(join(root, f)).mtimeMs : 0);

/** The newest mtime of the files under `p` (a file or a folder) whose names `keep` accepts. */
export function newestSource(p: string, keep: (name: string) => boolean = (n) => /\.tsx?$/.test(n)): number {
  const full = join(root, p);
  if (!existsSync(full)) return 0;
  if (!statSync(full).isDirectory()) return statSync(full).mtimeMs;
  return Math.max(0, ...readdirSync(full, { withFileTypes: true }).map((e) => (
    e.isDirectory() ? (e.name === 'dist' || e.name === 'node_modules' ? 0 : newestSource(join(p, e.name), keep)) : keep(e.name) ? statSync(join(full, e.name)).mtimeMs : 0)));
}

/** Throws unless `output` exists and the build that made it is not older than any of `sources`. */
function assertFresh(output: string, stamps: readonly string[], sources: readonly string[], what: string, keep?: (name: string) => boolean): void {
  if (!existsSync(join(root, output))) throw new Error(`${what} is missing: run \`npm run build\` (npm test does it in pretest)`);
  const builtAt = Math.max(mtime(output), ...stamps.map(mtime));
  const src = Math.max(...sources.map((s) => newestSource(s, keep)));
  if (src > builtAt) throw new Error(`${what} is older than its sources: run \`npm run build\` (npm test does it in pretest)`);
}

/** dist/ (tsc) holds `output` and is not older than `sources` (files or folders of TypeScript). */
export function assertDistFresh(output: string, sources: readonly string[]): void {
  assertFresh(output, ['dist/.sources', 'dist/.tsbuildinfo'], sources, 'dist/');
}

/** inspector/dist holds the UI and is not older than the inspector's or the client's sources. */
export function assertInspectorFresh(): void {
  assertFresh('inspector/dist/index.html', ['inspector/dist/.inputs'], ['inspector/src', 'inspector/index.html', 'client'], 'inspector/dist', (n) => /\.(tsx?|css|html)$/.test(n));
}
