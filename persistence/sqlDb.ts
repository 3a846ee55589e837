/**
 * The smallest database surface the SQL store needs, so one implementation of every query
 * serves both `pg` (a pool of real connections) and PGlite (one WASM connection).
 */

/** Something that runs SQL: a pool, a checked-out client, a PGlite instance or its transaction. */
export interface Queryable {
  /**
   * One statement through the extended protocol; `params` are bound, never interpolated.
   * `R` names the row shape the SQL selects (the drivers cannot check it).
   */
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- row type is the caller's declaration
  query<R>(text: string, params?: readonly unknown[]): Promise<{ rows: R[] }>;
  /** Several statements without parameters (migration files). */
  exec(sql: string): Promise<void>;
}

/** A database handle: adapters normalise driver errors before they leave these methods. */
export interface SqlDb extends Queryable {
  /** Runs `fn` inside BEGIN/COMMIT on one connection; rolls back and rethrows when `fn` throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
