/**
 * Owns eager snapshot migration (`agentry migrate`): walks every stored session in id order, one
 * page at a time (memory stays bounded by the page, whatever the store holds), runs the agent's
 * migration on each snapshot (actors/agentVersion.ts, the same function a hydration runs) and
 * reports per agent type how many are current, migrate, or would fail (with the first errors).
 *
 * With `apply`, each migrated snapshot is written by a compare-and-set on the row's version
 * (Store.replaceSnapshot), which is safe against running nodes: a node that holds the session live
 * and commits afterwards is refused (stale version) and re-hydrates from the migrated snapshot,
 * re-running its batch from redelivery (handlers run at least once); a session that committed in
 * between is skipped (`raced`) and migrates lazily on its next hydration. Apply only with the new
 * agent code deployed everywhere: a node still on the old code refuses the newer snapshot
 * (MIGRATION_FAILED newer-version) until it is upgraded. Snapshots that fail are left untouched.
 */
import { migrateSnapshot, stamped, stampOf, type MigrationFailure } from '../actors/agentVersion.js';
import type { AnyAgent } from '../actors/defineAgent.js';
import type { Store } from '../persistence/types.js';

/** Snapshot writes in flight at once during an apply (the pg pool has 10 connections). */
const WRITE_CONCURRENCY = 8;

/** What happened to one agent type's snapshots. */
export interface TypeMigrationReport {
  readonly type: string;
  /** The version of the code run (null: a type the given agents do not define; its sessions are counted, not touched). */
  readonly version: number | null;
  sessions: number;
  /** Already at the current version. */
  current: number;
  /** Would migrate (dry run) or were migrated (apply). */
  migrated: number;
  failed: number;
  /** Apply only: the row changed between the read and the write (left to lazy migration). */
  raced: number;
  /** Stored versions seen, with counts. */
  readonly fromVersions: Record<string, number>;
  /** The first errors (at most `maxErrors`). */
  readonly errors: { agentId: string; reason: MigrationFailure; fromVersion: number; message: string }[];
}

/** The result of a run over the whole store. */
export interface MigrationRunReport {
  readonly dryRun: boolean;
  readonly sessions: number;
  readonly types: TypeMigrationReport[];
  /** True when no snapshot would fail (or failed). */
  readonly ok: boolean;
}

/**
 * Runs every migration over every stored snapshot. `onProgress(done, total)` is called after each
 * page (total from a count taken first; sessions created meanwhile may exceed it).
 */
export async function migrateStoredSnapshots(o: {
  readonly store: Pick<Store, 'pageSessions' | 'replaceSnapshot' | 'countSessionsByStatus'>;
  readonly agents: readonly AnyAgent[];
  readonly apply: boolean;
  readonly pageSize?: number;
  readonly maxErrors?: number;
  readonly type?: string;
  readonly onProgress?: (done: number, total: number) => void;
}): Promise<MigrationRunReport> {
  const byType = new Map(o.agents.map((a) => [a.type, a]));
  const reports = new Map<string, TypeMigrationReport>();
  const counts = await o.store.countSessionsByStatus();
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const page = Math.max(1, Math.min(1000, o.pageSize ?? 500));
  const maxErrors = o.maxErrors ?? 5;
  let after: string | null = null;
  let done = 0;
  for (;;) {
    const rows = await o.store.pageSessions(after, page, o.type);
    const writes: { id: string; version: number; snapshot: unknown; report: TypeMigrationReport }[] = [];
    for (const rec of rows) {
      const agent = byType.get(rec.type);
      let r = reports.get(rec.type);
      if (!r) reports.set(rec.type, r = { type: rec.type, version: agent?.version ?? null, sessions: 0, current: 0, migrated: 0, failed: 0, raced: 0, fromVersions: {}, errors: [] });
      r.sessions++;
      const from = String(stampOf(rec.snapshot).version);
      r.fromVersions[from] = (r.fromVersions[from] ?? 0) + 1;
      if (!agent) continue;
      const out = migrateSnapshot(rec.id, agent, rec.snapshot);
      if (!out.ok) {
        r.failed++;
        if (r.errors.length < maxErrors) r.errors.push({ agentId: rec.id, reason: out.error.reason, fromVersion: out.error.fromVersion, message: out.error.message });
        continue;
      }
      if (!out.changed) { r.current++; continue; }
      if (!o.apply) { r.migrated++; continue; }
      writes.push({ id: rec.id, version: rec.version, snapshot: stamped(out.snapshot, agent.type, agent.version), report: r });
    }
    // A page's writes, WRITE_CONCURRENCY at a time (each is its own compare-and-set).
    for (let i = 0; i < writes.length; i += WRITE_CONCURRENCY) {
      await Promise.all(writes.slice(i, i + WRITE_CONCURRENCY).map(async (w) => {
        if (await o.store.replaceSnapshot(w.id, w.version, w.snapshot)) w.report.migrated++;
        else w.report.raced++;
      }));
    }
    done += rows.length;
    o.onProgress?.(done, Math.max(total, done));
    if (rows.length < page) break;
    after = rows[rows.length - 1]!.id;
  }
  const types = [...reports.values()].sort((a, b) => (a.type < b.type ? -1 : 1));
  return { dryRun: !o.apply, sessions: done, types, ok: types.every((t) => t.failed === 0) };
}
