/**
 * Owns how many history rows a hydration read loads per session, so every backend's
 * `loadSessions` caps and defaults limits the same way `getHistory` does on SQL.
 */
import type { HistoryLimit } from './types.js';

/** The most history rows one read returns per session (as `getHistory`). */
export const MAX_HISTORY_READ = 1000;

/** A limit floored and kept within [0, 1000]; a non-finite one counts as 100, `getHistory`'s default. */
export function clampHistoryLimit(n: number): number {
  if (!Number.isFinite(n)) return 100;
  return Math.max(0, Math.min(MAX_HISTORY_READ, Math.floor(n)));
}

/**
 * Refuses what is not a `HistoryLimit` (a function, undefined), loudly: a store in another
 * thread receives a function as nothing, and silently loading 100 rows would hide that.
 */
function assertHistoryLimit(limit: HistoryLimit): void {
  if (typeof limit === 'number') return;
  if (typeof limit !== 'object' || limit === null || typeof limit.byType !== 'object' || limit.byType === null || typeof limit.fallback !== 'number') {
    throw new TypeError(`historyLimit must be a number or { byType, fallback }, got ${typeof limit}`);
  }
}

/** The number of rows to load for a session of `type` (own keys of `byType` only: no `constructor`). */
export function historyLimitFor(limit: HistoryLimit, type: string): number {
  assertHistoryLimit(limit);
  if (typeof limit === 'number') return clampHistoryLimit(limit);
  return clampHistoryLimit(Object.hasOwn(limit.byType, type) ? limit.byType[type]! : limit.fallback);
}

/** `limit` as SQL takes it: every limit clamped, as a per-type JSON object and a fallback. */
export function historyLimitForSql(limit: HistoryLimit): { byType: Record<string, number>; fallback: number } {
  assertHistoryLimit(limit);
  if (typeof limit === 'number') return { byType: {}, fallback: clampHistoryLimit(limit) };
  const byType: Record<string, number> = {};
  for (const [type, n] of Object.entries(limit.byType)) byType[type] = clampHistoryLimit(n);
  return { byType, fallback: clampHistoryLimit(limit.fallback) };
}
