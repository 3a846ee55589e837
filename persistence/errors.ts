/**
 * Errors raised by stores. Codes are stable: the runtime maps them to readiness and retries,
 * and the control API passes them to clients unchanged.
 */

/** Base of every store error; `retryable` tells the caller whether trying again can help. */
export class StoreError extends Error {
  override readonly name: string = 'StoreError';
  readonly code: string = 'STORE_ERROR';
  readonly retryable: boolean = true;
}

/** The store cannot be reached (connection refused, reset, timed out): retry later. */
export class StoreUnavailableError extends StoreError {
  override readonly name = 'StoreUnavailableError';
  override readonly code = 'STORE_UNAVAILABLE';
  /**
   * The call ran past its deadline (a query or statement timeout): the store may be slow rather
   * than gone, and a group commit's batch is split before it is tried again (groupCommit.ts) — a
   * batch too heavy to finish in time would time out the same way at every try.
   */
  readonly splitBatch: boolean;

  constructor(message: string, options?: ErrorOptions & { readonly splitBatch?: boolean }) {
    super(message, options);
    this.splitBatch = options?.splitBatch ?? false;
  }
}

/**
 * A group commit's batch whose document is too large to build or to send as one statement
 * (`MAX_COMMIT_DOCUMENT_CHARS`, or past V8's longest string): its records go in smaller
 * batches. Never reaches an API client: the committer splits the batch (groupCommit.ts).
 */
export class StoreBatchTooLargeError extends StoreError {
  override readonly name = 'StoreBatchTooLargeError';
  readonly splitBatch = true;
}

/** The database was migrated by a newer release; running older code against it could corrupt it. */
export class SchemaTooNewError extends StoreError {
  override readonly name = 'SchemaTooNewError';
  override readonly code = 'SCHEMA_TOO_NEW';
  override readonly retryable = false;
  constructor(readonly found: number, readonly supported: number) {
    super(`database schema version ${found} is newer than this release supports (${supported}); upgrade agentry or restore a matching backup`);
  }
}

/** A commit expected a session version the database no longer holds: another writer got there first. */
export class StaleVersionError extends StoreError {
  override readonly name = 'StaleVersionError';
  override readonly code = 'STALE_VERSION';
  override readonly retryable = false;
  constructor(readonly sessionId: string, readonly expected: number) {
    super(`session ${sessionId}: expected stored version ${expected}, found another; the session was changed elsewhere`);
  }
}

/** The writer's partition lease is older than the one recorded on the session: it was deposed. */
export class FencedError extends StoreError {
  override readonly name = 'FencedError';
  override readonly code = 'FENCED';
  override readonly retryable = false;
  constructor(readonly sessionId: string, readonly epoch: number) {
    super(`session ${sessionId}: owner epoch ${epoch} is older than the stored one; this node no longer owns the partition`);
  }
}

/**
 * Postgres refused the data itself (SQLSTATE class 22 "data exception": a NUL in jsonb or
 * text, a lone surrogate, malformed input; class 54 "program limit exceeded": nesting too deep,
 * a value too large). The same statement fails the same way every time, so it is never
 * retried: the caller isolates the record that carries the data and dead-letters it.
 */
export class StoreDataError extends StoreError {
  override readonly name = 'StoreDataError';
  override readonly code = 'STORE_DATA';
  override readonly retryable = false;
  /** The SQLSTATE Postgres reported (e.g. `22P05`), or undefined when the driver refused before sending. */
  readonly sqlState: string | undefined;
  constructor(message: string, opts: { cause?: unknown; sqlState?: string } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.sqlState = opts.sqlState;
  }
}
