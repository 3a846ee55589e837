/**
 * Owns how CLI commands end: results printed for people or as JSON (`--json`), errors printed
 * to stderr, and exit codes scripts can branch on: 0 ok, 1 usage, 2 the server refused or
 * answered with an error, 3 the server could not be reached.
 */
import { ConnectionError, RpcError } from '../../client/index.js';

/** Exit codes of every `agentry` command. */
export const EXIT = { OK: 0, USAGE: 1, SERVER: 2, CONNECT: 3 } as const;

/** A mistake in how the command was called (bad option value): exit 1. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The exit code for an error that ended a command. */
export function exitCodeOf(e: unknown): number {
  if (e instanceof RpcError) return EXIT.SERVER;
  if (e instanceof ConnectionError) return e.type === 'UNAUTHORIZED' || e.type === 'FORBIDDEN' ? EXIT.SERVER : EXIT.CONNECT;
  if (e instanceof UsageError) return EXIT.USAGE;
  return EXIT.USAGE;
}

/** Writes an error for people or, with `json`, as `{"error":{…}}` — both to stderr. */
export function printError(e: unknown, json: boolean): void {
  const err = e as { message?: string; code?: unknown; type?: string; retryable?: boolean; data?: unknown };
  if (json) {
    const body = e instanceof RpcError
      ? { code: e.code, type: e.type, message: e.message, retryable: e.retryable, data: e.data }
      : e instanceof ConnectionError
        ? { type: e.type, message: e.message, retryable: e.retryable, ...(e.status ? { status: e.status } : {}) }
        : { type: typeof err.code === 'string' ? err.code : 'ERROR', message: err.message ?? String(e) };
    process.stderr.write(`${JSON.stringify({ error: body })}\n`);
    return;
  }
  const hint = e instanceof ConnectionError
    ? e.type === 'UNAUTHORIZED' ? ' (set --token or AGENTRY_TOKEN)' : e.type === 'FORBIDDEN' ? '' : ' (is the runtime running? set --url or AGENTRY_URL)'
    : '';
  const tag = e instanceof RpcError || e instanceof ConnectionError ? `[${e.type}] ` : typeof err.code === 'string' ? `[${err.code}] ` : '';
  process.stderr.write(`agentry: ${tag}${err.message ?? String(e)}${hint}\n`);
}

/** Prints a result: its JSON with `--json`, else the human text. */
export function printResult(value: unknown, json: boolean, human: string): void {
  process.stdout.write(json ? `${JSON.stringify(value)}\n` : `${human}\n`);
}

/** Formats epoch milliseconds for people (ISO, UTC). */
export function when(ms: number | null | undefined): string {
  return ms === null || ms === undefined ? '-' : new Date(ms).toISOString();
}

/** A plain aligned table. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/**
 * A reader that closed the pipe (`agentry … --json | head -1`) is not an error: exit quietly
 * with the code so far instead of crashing on EPIPE with a stack trace.
 */
export function exitQuietlyWhenStdoutCloses(): void {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
    throw e;
  });
}
