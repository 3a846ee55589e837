/**
 * Watches the user's agent files for `agentry dev --agents`: one non-recursive watcher per folder
 * that holds a loaded file (a folder watch survives editors that save by writing a new file and
 * renaming it over the old one; a recursive watch would also walk node_modules and the data
 * directory, which PGlite writes constantly). A burst of events (an editor's save, a `git
 * checkout`) becomes one call after `debounceMs` of quiet.
 */
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** File names whose change means the agents should reload. */
const SOURCE = /\.(?:[cm]?[jt]s|json)$/;

/** A set of folder watchers; `update` follows the files of the latest load. */
export interface AgentFileWatch {
  /** Watches the folders of `files` (and only those), dropping folders no longer loaded from. */
  update(files: readonly string[]): void;
  close(): void;
}

/**
 * Starts watching the folders of `files`; `onChange` receives the first changed path of each
 * burst. Only the files themselves count (a new file matters once a loaded one imports it).
 */
export function watchAgentFiles(files: readonly string[], onChange: (path: string) => void, debounceMs = 150): AgentFileWatch {
  const watchers = new Map<string, FSWatcher>();
  let timer: NodeJS.Timeout | undefined;
  let first: string | undefined;
  let loaded = new Set(files);
  const fire = (dir: string, name: string | null): void => {
    // Only a file the agents were loaded from: not an editor's temp file or an unrelated script.
    if (name !== null && (!SOURCE.test(name) || !loaded.has(join(dir, name)))) return;
    first ??= name === null ? dir : join(dir, name);
    clearTimeout(timer);
    timer = setTimeout(() => {
      const path = first!;
      first = undefined;
      onChange(path);
    }, debounceMs);
  };
  const update = (list: readonly string[]): void => {
    loaded = new Set(list);
    const dirs = new Set(list.map((f) => dirname(f)));
    for (const [dir, w] of watchers) if (!dirs.has(dir)) { w.close(); watchers.delete(dir); }
    for (const dir of dirs) {
      if (watchers.has(dir)) continue;
      try {
        const w = watch(dir, { persistent: false }, (_event, name) => { fire(dir, name === null ? null : basename(name)); });
        w.on('error', () => { w.close(); watchers.delete(dir); });
        watchers.set(dir, w);
      } catch { /* a folder that vanished: the next load names the folders again */ }
    }
  };
  update(files);
  return {
    update,
    close() {
      clearTimeout(timer);
      for (const w of watchers.values()) w.close();
      watchers.clear();
    },
  };
}
