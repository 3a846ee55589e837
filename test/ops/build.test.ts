// Issue 13, item 3: `npm run build` (ops/build.mjs) rebuilds only what changed. Run here on a
// scratch project whose `tsc` and `vite` are stand-ins that record each call and write the
// outputs, so the test checks the script's decisions (which step runs, when) without a real
// 30 s build: nothing changed → nothing runs; a touched but unchanged file → nothing runs; a
// runtime file → tsc only; an inspector file → Vite only; client/ (used by both) → both; a
// deleted output → its step; a failed step → retried next time; --force → everything.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers.js';

let t: ReturnType<typeof tempDir>;
const p = (...f: string[]): string => join(t.dir, ...f);
const put = (f: string, text: string): void => { mkdirSync(dirname(p(f)), { recursive: true }); writeFileSync(p(f), text); };
/** The stand-in tools' calls since the last look. */
const calls = (): string[] => {
  const f = p('calls.log');
  const c = existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean) : [];
  rmSync(f, { force: true });
  return c;
};
const build = (...args: string[]): string => execFileSync(process.execPath, [p('ops', 'build.mjs'), ...args], { cwd: t.dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** A stand-in tool: logs `name args`, fails when FAIL_<name> exists, else runs `effect` (makes what the real one would). */
function tool(name: string, effect: string): void {
  put(join('node_modules', '.bin', name), [
    '#!/bin/sh',
    `echo "${name} $*" >> "${p('calls.log')}"`,
    `[ -e "${p(`FAIL_${name}`)}" ] && exit 2`,
    effect,
  ].join('\n') + '\n');
  chmodSync(p('node_modules', '.bin', name), 0o755);
}

beforeEach(() => {
  t = tempDir('agentry-build-');
  mkdirSync(p('ops'));
  copyFileSync(join(process.cwd(), 'ops', 'build.mjs'), p('ops', 'build.mjs'));
  put('ops/copy-assets.mjs', '');
  for (const f of ['tsconfig.json', 'tsconfig.build.json', 'package-lock.json']) put(f, '{}');
  put('runtime/cli.ts', 'export {};\n');
  put('actors/machine.ts', 'export const m = 1;\n');
  put('client/index.ts', 'export const c = 1;\n');
  put('inspector/src/App.tsx', 'export const App = 1;\n');
  put('inspector/index.html', '<html></html>\n');
  // `tsc -p inspector/tsconfig.json` only type-checks; `tsc -p tsconfig.build.json` writes dist/.
  tool('tsc', `if [ "$2" = "tsconfig.build.json" ]; then mkdir -p "${p('dist', 'runtime')}" && echo built > "${p('dist', 'runtime', 'cli.js')}"; fi`);
  tool('vite', `mkdir -p "${p('inspector', 'dist')}" && echo built > "${p('inspector', 'dist', 'index.html')}"`);
});

afterEach(() => { t.cleanup(); });

describe('npm run build (ops/build.mjs)', () => {
  it('builds everything once, then nothing while nothing changed', () => {
    build();
    expect(calls()).toEqual(['tsc -p tsconfig.build.json', 'tsc -p inspector/tsconfig.json', 'vite build --config inspector/vite.config.ts']);
    const out = build();
    expect(calls()).toEqual([]);
    expect(out).toContain('dist/ (tsc) up to date');
    expect(out).toContain('inspector/dist (vite) up to date');
  });

  it('a touched file whose content did not change rebuilds nothing, and the stamps are newer than it', () => {
    build(); calls();
    const later = new Date(Date.now() + 5_000);
    utimesSync(p('runtime', 'cli.ts'), later, later);
    build();
    expect(calls()).toEqual([]);
    // Tests compare mtimes to catch a stale dist/: the stamp must not look older than the source.
    utimesSync(p('runtime', 'cli.ts'), new Date(), new Date());
    build();
    expect(statSync(p('dist', '.sources')).mtimeMs).toBeGreaterThanOrEqual(statSync(p('runtime', 'cli.ts')).mtimeMs);
  });

  it('runs only the steps whose inputs changed', () => {
    build(); calls();
    put('runtime/cli.ts', 'export const changed = 1;\n');
    build();
    expect(calls()).toEqual(['tsc -p tsconfig.build.json']);
    put('inspector/src/App.tsx', 'export const App = 2;\n');
    build();
    expect(calls()).toEqual(['tsc -p inspector/tsconfig.json', 'vite build --config inspector/vite.config.ts']);
    put('client/index.ts', 'export const c = 2;\n');
    build();
    expect(calls()).toEqual(['tsc -p tsconfig.build.json', 'tsc -p inspector/tsconfig.json', 'vite build --config inspector/vite.config.ts']);
    put('actors/machine.ts', 'export const m = 2;\n'); // compiled, and drawn by the inspector
    build();
    expect(calls()).toHaveLength(3);
    put('runtime/notes.md', 'not a source\n');
    build();
    expect(calls()).toEqual([]);
  });

  it('rebuilds a deleted output, retries a failed step, and --force rebuilds everything', () => {
    build(); calls();
    rmSync(p('inspector', 'dist'), { recursive: true });
    build();
    expect(calls()).toEqual(['tsc -p inspector/tsconfig.json', 'vite build --config inspector/vite.config.ts']);

    put('runtime/cli.ts', 'export const broken = 1;\n');
    writeFileSync(p('FAIL_tsc'), '');
    expect(() => build()).toThrow();
    calls();
    rmSync(p('FAIL_tsc'));
    build();
    expect(calls()).toEqual(['tsc -p tsconfig.build.json']);

    build('--force');
    expect(calls()).toHaveLength(3);
  });
});
