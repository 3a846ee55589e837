// Owns the chaos harness's promise that every process it starts ends with it: a registry of
// process ids (runtime nodes, nats-servers) that `killAll()` SIGKILLs (after a SIGCONT, so a
// paused one dies too), called on this process's exit and on SIGTERM / SIGHUP (whose default
// action would skip exit handlers). Node processes also end themselves when their parent is
// gone (the fixture's `exitWithParent`). Only ids registered here are ever signalled.

const pids = new Set<number>();
let hooked = false;

/** Signals one registered process, ignoring "no such process" (it already ended). */
function signal(pid: number, sig: NodeJS.Signals): void {
  try { process.kill(pid, sig); } catch { /* gone */ }
}

/** Kills every registered process now (synchronous: usable from an exit handler). */
export function killAll(): void {
  for (const pid of pids) { signal(pid, 'SIGCONT'); signal(pid, 'SIGKILL'); }
  pids.clear();
}

/** Registers a process the harness started, so it is killed however the run ends. */
export function track(pid: number | undefined): void {
  if (pid === undefined) return;
  pids.add(pid);
  if (!hooked) {
    hooked = true;
    process.once('exit', killAll);
    // A signal's default action ends the process without 'exit' handlers: clean up, then exit as the signal would.
    for (const [sig, code] of [['SIGTERM', 143], ['SIGHUP', 129]] as const) {
      process.once(sig, () => { killAll(); process.exit(code); });
    }
  }
}

/** Forgets a process that ended on its own (its id may be reused by the OS later). */
export function untrack(pid: number | undefined): void {
  if (pid !== undefined) pids.delete(pid);
}

/** Is this process still there? (signal 0 checks without signalling) */
export function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}
