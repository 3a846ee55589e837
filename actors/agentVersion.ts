/**
 * Owns versioned snapshots: the stamp every stored snapshot carries (`agentry: { type, version,
 * machine }`: the agent type, the agent definition's `version`, and a hash of the statechart it
 * was made by) and the migration of an older snapshot's user state through the agent's
 * `migrate` steps (`migrate[n]` takes the state of version n to version n + 1). Pure: the
 * runtime calls it on hydration (lazy migration) and `agentry migrate` over every stored row.
 *
 * What the new code "cannot take" is decided here, each with its own `reason` on one error
 * code (MIGRATION_FAILED), never a silent guess:
 * - `newer-version`: the snapshot was written by a newer version of the agent (a rollback of a
 *   deploy): old code does not know the newer state;
 * - `no-path`: a step `migrate[n]` between the stored version and the current one is missing;
 * - `migrate-threw`: a step threw (its message is kept);
 * - `invalid-state`: a step returned `undefined` or something that is not JSON, the stored
 *   state value is not a state of the current statechart, or the stored snapshot is not a
 *   session snapshot at all (a row changed outside the runtime).
 */
import { AgentryError } from './errors.js';
import { durableSnapshotOf, sessionMachine } from './sessionMachine.js';

/** Why a snapshot cannot be taken by the current code (the `reason` of a MigrationError). */
export type MigrationFailure = 'newer-version' | 'no-path' | 'migrate-threw' | 'invalid-state';

/** The stamp of a stored snapshot: which code wrote it. Absent in snapshots older than versioning (read as version 1). */
export interface SnapshotStamp {
  readonly type: string;
  readonly version: number;
  /** Hash of the statechart definition (`MACHINE_HASH` of the code that wrote it). */
  readonly machine: string;
}

/** Migration steps: `migrate[n]` turns the user state of version n into that of version n + 1. */
export type MigrateSteps = Readonly<Record<number, (state: unknown) => unknown>>;

/** A snapshot the current code cannot take; the session keeps its stored snapshot and waits for a fixed deploy. */
export class MigrationError extends AgentryError {
  constructor(
    readonly sessionId: string,
    readonly agentType: string,
    readonly reason: MigrationFailure,
    readonly fromVersion: number,
    readonly toVersion: number,
    detail: string,
  ) {
    super('MIGRATION_FAILED', fromVersion === toVersion
      ? `session ${sessionId} (${agentType}) cannot be restored from its stored snapshot: ${reason}: ${detail}`
      : `session ${sessionId} (${agentType}) cannot be migrated from version ${fromVersion} to ${toVersion}: ${reason}: ${detail}`, {
      details: { reason, fromVersion, toVersion },
    });
  }

  override readonly name = 'MigrationError';

  /** The JSON form getAgent, the CLI and the inspector show. */
  toJSON(): { code: 'MIGRATION_FAILED'; reason: MigrationFailure; fromVersion: number; toVersion: number; message: string } {
    return { code: 'MIGRATION_FAILED', reason: this.reason, fromVersion: this.fromVersion, toVersion: this.toVersion, message: this.message };
  }
}

/** FNV-1a (32-bit) of a string, hex: a stable fingerprint without a crypto import (this folder does no I/O). */
function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

/**
 * Fingerprint of the statechart's structure (states, transitions, targets): a stored snapshot
 * whose hash differs was made by another statechart, so its state value is checked against this one.
 */
export const MACHINE_HASH: string = fnv1a(JSON.stringify(sessionMachine));

/** The stamp of a stored snapshot (version 1 and no machine hash when it predates versioning). */
export function stampOf(snapshot: unknown): { version: number; machine: string | null; type: string | null } {
  const s = (snapshot as { agentry?: Partial<SnapshotStamp> } | null)?.agentry;
  const version = typeof s?.version === 'number' && Number.isInteger(s.version) && s.version >= 1 ? s.version : 1;
  return { version, machine: typeof s?.machine === 'string' ? s.machine : null, type: typeof s?.type === 'string' ? s.type : null };
}

/**
 * The stamped durable snapshot of a live snapshot, in one object: the same value as
 * `stamped(durableSnapshotOf(snap), type, version)` (a test holds them equal), with one
 * wrapper fewer per commit.
 */
export function stampedDurableSnapshotOf(snap: Parameters<typeof durableSnapshotOf>[0], type: string, version: number): unknown {
  return durableSnapshotOf(snap, { type, version, machine: MACHINE_HASH } satisfies SnapshotStamp);
}

/** A durable snapshot with its stamp (a new object; the input is not changed). */
export function stamped(snapshot: unknown, type: string, version: number): unknown {
  return { ...(snapshot as object), agentry: { type, version, machine: MACHINE_HASH } satisfies SnapshotStamp };
}

/** The outcome of migrating one stored snapshot. */
export type MigrationOutcome =
  | { readonly ok: true; readonly snapshot: unknown; readonly from: number; readonly to: number; readonly changed: boolean }
  | { readonly ok: false; readonly error: MigrationError };

/**
 * Brings a stored snapshot to the agent's current `version`: runs `migrate[from]`, `migrate[from+1]`, …
 * on a copy of its user state and checks the result (JSON, and a state value the current
 * statechart has). The stored snapshot is never changed; `changed` is false when it was current.
 */
export function migrateSnapshot(
  sessionId: string, agent: { readonly type: string; readonly version: number; readonly migrate: MigrateSteps }, snapshot: unknown,
): MigrationOutcome {
  const stamp = stampOf(snapshot);
  const from = stamp.version;
  const to = agent.version;
  const fail = (reason: MigrationFailure, detail: string): MigrationOutcome => ({ ok: false, error: new MigrationError(sessionId, agent.type, reason, from, to, detail) });
  if (from > to) return fail('newer-version', `the stored snapshot was written by version ${from}, newer than this code (${to}); deploy version ${from} or later`);
  const shape = snapshotShapeProblem(snapshot);
  if (shape !== null) return fail('invalid-state', shape);
  const snap = snapshot as { value: unknown; context: { userState: unknown } & Record<string, unknown> };
  if (stamp.machine !== null && stamp.machine !== MACHINE_HASH) {
    const problem = stateValueProblem(snap);
    if (problem !== null) return fail('invalid-state', problem);
  }
  if (from === to) return { ok: true, snapshot, from, to, changed: false };
  let state: unknown = JSON.parse(JSON.stringify(snap.context.userState ?? null));
  for (let v = from; v < to; v++) {
    const step = agent.migrate[v];
    if (typeof step !== 'function') return fail('no-path', `no migrate[${v}] step (from version ${v} to ${v + 1})`);
    try {
      state = step(state);
    } catch (e) {
      return fail('migrate-threw', `migrate[${v}] threw: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (state === undefined) return fail('invalid-state', `migrate[${v}] returned undefined (return the new state)`);
    try {
      state = JSON.parse(JSON.stringify(state)) as unknown;
    } catch (e) {
      return fail('invalid-state', `migrate[${v}] returned a state that is not JSON: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return { ok: true, snapshot: { ...snap, context: { ...snap.context, userState: state } }, from, to, changed: true };
}

/**
 * Why a stored snapshot is not one a session can be restored from, or null. Cheap enough for
 * every hydration: a row changed outside the runtime (a hand edit, a bad data fix) must block its
 * session with a typed error instead of reaching XState or the host as a TypeError.
 */
export function snapshotShapeProblem(snapshot: unknown): string | null {
  const snap = snapshot as { value?: unknown; context?: unknown } | null;
  if (typeof snap !== 'object' || snap === null || Array.isArray(snap)) return 'the stored snapshot is not an object: the row was changed outside the runtime';
  if (snap.value === undefined || snap.value === null) return 'the stored snapshot has no state value: the row was changed outside the runtime';
  const ctx = snap.context as { version?: unknown } | null | undefined;
  if (typeof ctx !== 'object' || ctx === null || Array.isArray(ctx) || typeof ctx.version !== 'number') return 'the stored snapshot has no session context: the row was changed outside the runtime';
  return null;
}

/**
 * Why a stored snapshot cannot be restored by the current statechart, or null: its shape, and
 * its state value checked against the statechart whatever its stamp says (`migrateSnapshot` skips
 * that check for a snapshot stamped by this statechart). For re-reading a blocked session's row,
 * where a stamp cannot be trusted.
 */
export function snapshotProblem(snapshot: unknown): string | null {
  const shape = snapshotShapeProblem(snapshot);
  if (shape !== null) return shape;
  return stateValueProblem(snapshot as { value: unknown; context: unknown });
}

/** Why the snapshot's state value is not one of this statechart, or null. */
function stateValueProblem(snap: { value: unknown; context: unknown }): string | null {
  try {
    sessionMachine.resolveState({ value: snap.value as never, context: snap.context as never });
  } catch (e) {
    return `the stored state ${JSON.stringify(snap.value)} is not a state of this statechart: ${e instanceof Error ? e.message : String(e)}`;
  }
  return null;
}
