// The file watch behind `agentry dev --agents` reloads for the files the agents were loaded from
// and nothing else: an unrelated file in the same folder (a scratch script, an editor's temp
// file) does not count, a burst of saves is one reload, and a save by rename-over counts.
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { watchAgentFiles, type AgentFileWatch } from '../../runtime/devWatch.js';
import { tempDir, waitFor } from '../helpers.js';

const cleanups: (() => void)[] = [];
afterEach(() => { for (const c of cleanups.splice(0)) c(); });

/** A folder with `agents.ts` loaded and `scratch.ts` beside it, watched; changes are collected. */
function setup(): { dir: string; changes: string[]; watch: AgentFileWatch } {
  const { dir, cleanup } = tempDir('agentry-devwatch-');
  writeFileSync(join(dir, 'agents.ts'), 'export {};\n');
  writeFileSync(join(dir, 'scratch.ts'), 'export {};\n');
  const changes: string[] = [];
  const watch = watchAgentFiles([join(dir, 'agents.ts')], (p) => { changes.push(p); }, 50);
  cleanups.push(() => { watch.close(); cleanup(); });
  return { dir, changes, watch };
}

describe('watchAgentFiles', () => {
  it('a burst that starts with an unrelated file reloads once, for the loaded file', async () => {
    const { dir, changes } = setup();
    writeFileSync(join(dir, 'scratch.ts'), 'export const x = 1;\n');
    writeFileSync(join(dir, 'agents.ts'), 'export const a = 1;\n');
    writeFileSync(join(dir, 'agents.ts'), 'export const a = 2;\n');
    await waitFor(() => changes.length > 0 || null, 'a reload', 10_000);
    expect(changes).toEqual([join(dir, 'agents.ts')]);
  });

  it('an editor saving by writing a temp file and renaming it over the loaded one counts', async () => {
    const { dir, changes } = setup();
    writeFileSync(join(dir, '.agents.ts.tmp'), 'export const a = 3;\n');
    renameSync(join(dir, '.agents.ts.tmp'), join(dir, 'agents.ts'));
    await waitFor(() => changes.length > 0 || null, 'a reload', 10_000);
    expect(changes).toEqual([join(dir, 'agents.ts')]);
  });

  it('update() follows the files of the latest load', async () => {
    const { dir, changes, watch } = setup();
    watch.update([join(dir, 'agents.ts'), join(dir, 'scratch.ts')]);
    writeFileSync(join(dir, 'scratch.ts'), 'export const x = 2;\n');
    await waitFor(() => changes.length > 0 || null, 'a reload', 10_000);
    expect(changes).toEqual([join(dir, 'scratch.ts')]);
  });
});
