/**
 * Owns how times and durations read in the inspector: local wall-clock times, relative ages
 * ("3 s ago"), countdowns ("in 4 m 10 s") and compact durations, all from epoch milliseconds.
 */

// Formatters are built once: `toLocaleTimeString(…, options)` builds one per call, which was a
// third of the list's scrolling time with 100,000 rows.
const TIME = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
const DATE = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric' });

function sameDay(a: Date, b: Date): boolean {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

/** Local time with seconds (and the date when it is not today), for tables and tooltips. */
export function formatTime(ms: number | null | undefined, now = Date.now()): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  const d = new Date(ms);
  const time = TIME.format(d);
  return sameDay(d, new Date(now)) ? time : `${DATE.format(d)} ${time}`;
}

/** Time with milliseconds, for the timeline where several transitions share a second. */
export function formatPreciseTime(ms: number): string {
  return `${TIME.format(ms)}.${String(new Date(ms).getMilliseconds()).padStart(3, '0')}`;
}

/** A duration as its two largest units: `2 d 3 h`, `4 m 10 s`, `850 ms`. */
export function formatDuration(ms: number): string {
  const abs = Math.abs(ms);
  if (abs < 1000) return `${Math.round(abs)} ms`;
  const s = Math.floor(abs / 1000);
  const parts: [number, string][] = [[Math.floor(s / 86400), 'd'], [Math.floor(s / 3600) % 24, 'h'], [Math.floor(s / 60) % 60, 'm'], [s % 60, 's']];
  const first = parts.findIndex(([n]) => n > 0);
  return parts.slice(first, first + 2).filter(([n], i) => i === 0 || n > 0).map(([n, u]) => `${n} ${u}`).join(' ');
}

/** "in 4 m 10 s" for the future, "4 m 10 s ago" for the past: wake countdowns and ages. */
export function formatRelative(ms: number | null | undefined, now = Date.now()): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  const delta = ms - now;
  if (Math.abs(delta) < 1000) return 'now';
  return delta > 0 ? `in ${formatDuration(delta)}` : `${formatDuration(delta)} ago`;
}

/**
 * Parses what people type for a sleep duration: `90s`, `5m`, `1h30m`, `2d`, or plain
 * milliseconds. Returns null for anything else, so the form can say so in place.
 */
export function parseDuration(text: string): number | null {
  const t = text.trim().toLowerCase();
  if (/^\d+$/.test(t)) return Number(t);
  if (!/^(\d+(\.\d+)?\s*(ms|d|h|m|s)\s*)+$/.test(t)) return null;
  const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  let total = 0;
  for (const m of t.matchAll(/(\d+(?:\.\d+)?)\s*(ms|d|h|m|s)/g)) total += Number(m[1]) * unit[m[2]!]!;
  return Math.round(total);
}

/** Compact JSON for one-line previews (history rows, dead letters). */
export function preview(value: unknown, max = 120): string {
  const s = typeof value === 'string' ? value : JSON.stringify(value) ?? 'undefined';
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}
