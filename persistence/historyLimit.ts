/**
 * Owns how many history rows a hydration read loads per session, so every backend's
 * `loadSessions` caps and defaults limits the same way `getHistory` does on SQL.
 */
import type { HistoryLimit } from './types.js';

/** The most history rows one read returns per session (as `getHistory`). */
export const MAX_HISTORY_READ = 1000;

/**
 * The number of rows to load for a session of `type`: the limit (or what the function says for
 * the type) floored and kept within [0, 1000]; a non-finite one counts as 100, `getHistory`'s default.
 */
export function historyLimitFor(limit: HistoryLimit, type: string): number {
  const n = typeof limit === 'function' ? limit(type) : limit;
  if (!Number.isFinite(n)) return 100;
  return Math.max(0, Math.min(MAX_HISTORY_READ, Math.floor(n)));
}
