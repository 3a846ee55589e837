// `npm run build` (run by `npm start`, `npm test`, `npm run bench`): compiles the TypeScript into
// dist/, copies the SQL migrations, and builds the inspector into inspector/dist — each step only
// when what it is built from changed since its last successful run, so a restart without
// changes takes about a second instead of 30-35 s (tsc ~15-20 s, Vite ~12-15 s).
//
// Each step hashes the content of its inputs and keeps the hash in a stamp file inside its
// output folder (dist/.sources, inspector/dist/.inputs): equal hash and output present means
// the step is skipped; a failed step writes no stamp; deleting the output folder (`npm run
// clean`) rebuilds it. tsc itself is incremental (dist/.tsbuildinfo), so a changed file
// recompiles in a few seconds. A stamp is rewritten whenever its step ran or was found up to
// date, so its mtime is never older than the sources (tests compare mtimes to catch a stale dist).
//
//   node ops/build.mjs            build what changed
//   node ops/build.mjs --force    build everything
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..');
const force = process.argv.includes('--force');
const bin = (name) => join(root, 'node_modules', '.bin', name);
const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });

/** Every file under `p` (a file or a folder), sorted, keeping those `keep` accepts; no build outputs. */
function files(p, keep) {
  if (!existsSync(p)) return [];
  if (!statSync(p).isDirectory()) return keep(p) ? [p] : [];
  return readdirSync(p).sort()
    .filter((name) => name !== 'dist' && name !== 'node_modules')
    .flatMap((name) => files(join(p, name), keep));
}

/** The hash of every input's path and content: equal hashes mean an identical build. */
function fingerprint(inputs, keep = () => true) {
  const h = createHash('sha256');
  for (const f of inputs.flatMap((i) => files(join(root, i), keep))) {
    h.update(relative(root, f)).update('\0').update(readFileSync(f)).update('\0');
  }
  return h.digest('hex');
}

/** Runs `build` unless the stamp holds this fingerprint and `output` exists; then writes the stamp. */
function step(name, { inputs, keep, output, stamp }, build) {
  const t0 = Date.now();
  const hash = fingerprint(inputs, keep);
  const stampFile = join(root, stamp);
  const upToDate = !force && existsSync(join(root, output)) && existsSync(stampFile) && readFileSync(stampFile, 'utf8').trim() === hash;
  if (!upToDate) build();
  writeFileSync(stampFile, hash + '\n');
  console.log(`build: ${name} ${upToDate ? 'up to date' : `built in ${Date.now() - t0} ms`}`);
}

const tsSource = (f) => /\.(ts|tsx|json)$/.test(f);
step('dist/ (tsc)', {
  inputs: ['actors', 'runtime', 'persistence', 'client', 'examples', 'ops', 'tsconfig.json', 'tsconfig.build.json', 'package-lock.json'],
  keep: tsSource, output: 'dist/runtime/cli.js', stamp: 'dist/.sources',
}, () => { run(bin('tsc'), ['-p', 'tsconfig.build.json']); });

run(process.execPath, [join(root, 'ops', 'copy-assets.mjs')]);

// The inspector imports client/ and draws the statechart of actors/ (read from dist/actors).
step('inspector/dist (vite)', {
  inputs: ['inspector', 'client', 'actors', 'package-lock.json', 'ops/build.mjs'],
  output: 'inspector/dist/index.html', stamp: 'inspector/dist/.inputs',
}, () => {
  run(bin('tsc'), ['-p', 'inspector/tsconfig.json']);
  run(bin('vite'), ['build', '--config', 'inspector/vite.config.ts']);
});
