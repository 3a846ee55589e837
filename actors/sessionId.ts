/**
 * Session ids become NATS subject tokens (`agentry.in.<id>`), so they must be one token:
 * no dots, wildcards, whitespace or control characters, and bounded in length.
 */
import { InvalidSessionIdError } from './errors.js';

/** Longest id accepted; keeps subjects, keys and index entries small. */
export const MAX_SESSION_ID_LENGTH = 128;

// Printable ASCII except space, '.', '*', '>' — plus any non-ASCII letter (UTF-8 is fine in subjects).
// eslint-disable-next-line no-control-regex
const FORBIDDEN = /[\s.*>\u0000-\u001f\u007f]/u;

/** Returns the reason an id is invalid, or null; for callers that want to report rather than throw. */
export function sessionIdProblem(id: unknown): string | null {
  if (typeof id !== 'string') return 'must be a string';
  if (id.length === 0) return 'must not be empty';
  if (id.length > MAX_SESSION_ID_LENGTH) return `must be at most ${MAX_SESSION_ID_LENGTH} characters`;
  if (FORBIDDEN.test(id)) return "must not contain '.', '*', '>', whitespace or control characters";
  if (id.startsWith('$') || id.startsWith('_agentry')) return "must not start with '$' or '_agentry' (reserved)";
  return null;
}

/** Throws `InvalidSessionIdError` unless `id` can be used as a session id. */
export function assertSessionId(id: unknown): asserts id is string {
  const problem = sessionIdProblem(id);
  if (problem !== null) throw new InvalidSessionIdError(id, problem);
}
