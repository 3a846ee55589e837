/**
 * Owns schema migrations for both SQL backends: the numbered files in `./migrations/`
 * (`0001_init.sql`, `0002_….sql`, …) and the `agentry_migrations` table that records them.
 * Each pending file runs in its own transaction under an advisory lock, so several nodes
 * starting at once apply it exactly once; a database newer than the files is refused.
 */
import { readdir, readFile } from 'node:fs/promises';
import { SchemaTooNewError } from './errors.js';
import type { Queryable, SqlDb } from './sqlDb.js';
import type { MigrationResult } from './types.js';

/** One migration file, parsed from its name `NNNN_name.sql`. */
export interface MigrationFile {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

/**
 * Key of the transaction-scoped advisory lock every migration runs under ("agent" in ASCII,
 * small enough to be an exact JS number). It is database-wide: runs for different schemas of one database queue behind each
 * other, which costs milliseconds and keeps catalog changes from racing.
 */
export const MIGRATION_LOCK_KEY = 0x6167656e74;

/**
 * Resolved against this module so it works from the sources (vitest runs `.ts` directly)
 * and from `dist/` (the build copies `persistence/migrations` next to the compiled file).
 */
const MIGRATIONS_DIR = new URL('./migrations/', import.meta.url);
const FILE_NAME = /^(\d+)_([\w-]+)\.sql$/;

let bundled: Promise<MigrationFile[]> | undefined;

/** Reads the migration files once per process (they ship with the code and never change). */
export function bundledMigrations(): Promise<MigrationFile[]> {
  bundled ??= readMigrationFiles(MIGRATIONS_DIR).catch((err: unknown) => {
    bundled = undefined; // do not cache a failed read
    throw err;
  });
  return bundled;
}

/** Reads and orders `NNNN_name.sql` files from `dir`; duplicate numbers are a packaging bug. */
export async function readMigrationFiles(dir: URL): Promise<MigrationFile[]> {
  const files: MigrationFile[] = [];
  for (const entry of (await readdir(dir)).sort()) {
    const m = FILE_NAME.exec(entry);
    if (!m) continue;
    const version = Number(m[1]);
    if (files.some((f) => f.version === version)) throw new Error(`two migration files share version ${version} (${entry})`);
    files.push({ version, name: m[2]!, sql: await readFile(new URL(entry, dir), 'utf8') });
  }
  return files.sort((a, b) => a.version - b.version);
}

export interface MigrateOptions {
  /** Created (if missing) under the lock before anything else; the connection's search_path must name it. */
  readonly schema?: string;
  /** Defaults to the bundled files; tests pass their own. */
  readonly files?: readonly MigrationFile[];
  readonly now?: () => number;
}

/**
 * Applies every pending migration, one transaction each, and reports what it applied.
 * Throws `SchemaTooNewError` when the database records a version above the newest file:
 * older code must not write to a schema it does not understand.
 */
export async function migrate(db: SqlDb, opts: MigrateOptions = {}): Promise<MigrationResult> {
  const files = opts.files ?? await bundledMigrations();
  const supported = files.at(-1)?.version ?? 0;
  const now = opts.now ?? Date.now;
  const applied: number[] = [];
  for (;;) {
    // Re-read the applied set inside each locked transaction: another node may have moved on.
    const step = await db.transaction(async (tx) => {
      await lockMigrations(tx);
      if (opts.schema !== undefined) await ensureSchema(tx, opts.schema);
      await ensureMigrationsTable(tx);
      const done = await selectAppliedVersions(tx);
      const found = Math.max(0, ...done);
      if (found > supported) throw new SchemaTooNewError(found, supported);
      const next = files.find((f) => !done.has(f.version));
      if (!next) return { current: found, applied: undefined };
      await tx.exec(next.sql);
      await insertMigration(tx, next, now());
      return { current: Math.max(found, next.version), applied: next.version };
    });
    if (step.applied === undefined) return { applied, current: step.current };
    applied.push(step.applied);
  }
}

async function lockMigrations(tx: Queryable): Promise<void> {
  await tx.query('SELECT pg_advisory_xact_lock($1::bigint)', [MIGRATION_LOCK_KEY]);
}

/** Checks before creating: CREATE SCHEMA IF NOT EXISTS still needs CREATE on the database. */
async function ensureSchema(tx: Queryable, schema: string): Promise<void> {
  const { rows } = await tx.query('SELECT 1 FROM pg_namespace WHERE nspname = $1::text', [schema]);
  if (rows.length === 0) await tx.exec(`CREATE SCHEMA ${quoteIdent(schema)}`);
}

async function ensureMigrationsTable(tx: Queryable): Promise<void> {
  await tx.exec(`CREATE TABLE IF NOT EXISTS agentry_migrations (
    version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)`);
}

async function selectAppliedVersions(tx: Queryable): Promise<Set<number>> {
  const { rows } = await tx.query<{ version: number }>('SELECT version FROM agentry_migrations');
  return new Set(rows.map((r) => r.version));
}

async function insertMigration(tx: Queryable, file: MigrationFile, at: number): Promise<void> {
  await tx.query(
    'INSERT INTO agentry_migrations (version, name, applied_at) VALUES ($1::integer, $2::text, $3::bigint)',
    [file.version, file.name, at],
  );
}

/** Quotes an identifier for the few statements that cannot take it as a parameter. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
