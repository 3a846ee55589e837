/**
 * Owns the human-readable log format of `agentry dev`: one line per record,
 * `time level [sessionId] msg key=value …`, an error's stack indented below its line, and runs
 * of the same info message (64 "partition acquired" at start) folded into one line and a count.
 * Production logs stay pino's JSON lines (runtime/logger.ts). No dependency: pino-pretty would
 * do this with a worker thread and a dozen packages.
 *
 * Faults it survives: a line that is not JSON (printed as it is); values that do not stringify
 * (cycles are impossible here: pino already serialized the record).
 */

/** Where formatted lines go (process.stdout in dev; a buffer in tests). */
export interface LineSink {
  write(text: string): unknown;
}

export interface DevLogOptions {
  /** ANSI colours for the level (default: when the sink is a TTY and NO_COLOR is unset). */
  readonly color?: boolean;
  /** How long a folded run of identical info messages waits for more before its count is printed. */
  readonly foldMs?: number;
}

const LEVELS: Readonly<Record<number, { name: string; color: string }>> = {
  10: { name: 'TRACE', color: '\x1b[90m' },
  20: { name: 'DEBUG', color: '\x1b[90m' },
  30: { name: 'INFO ', color: '\x1b[36m' },
  40: { name: 'WARN ', color: '\x1b[33m' },
  50: { name: 'ERROR', color: '\x1b[31m' },
  60: { name: 'FATAL', color: '\x1b[41m' },
};
/** Keys shown in the line's prefix or not at all (the node id is the same on every line of a dev run). */
const OMITTED = new Set(['level', 'time', 'msg', 'sessionId', 'node', 'pid', 'hostname', 'err']);

/** `12:04:05.123` in local time, from pino's ISO timestamp (or epoch milliseconds). */
function clock(t: unknown): string {
  const d = new Date(typeof t === 'number' || typeof t === 'string' ? t : Date.now());
  if (Number.isNaN(d.getTime())) return String(t);
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** A value as `key=value` shows it: bare when it is a simple token, JSON otherwise. */
function show(v: unknown): string {
  if (typeof v === 'string') return /^[\w.:/@+-]+$/.test(v) ? v : JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  return JSON.stringify(v) ?? typeof v;
}

/**
 * Formats one pino JSON record as a dev line (with a trailing newline). An `err` (pino's
 * serialized error) is shown as `err="message"` and its stack on the following lines, indented.
 *
 * @example
 * formatDevLine({ level: 40, time: '2026-01-01T12:00:00.000Z', sessionId: 'demo', msg: 'handler failed', attempt: 2 })
 * // → '13:00:00.000 WARN  demo handler failed attempt=2\n' (in UTC+1)
 */
export function formatDevLine(rec: Record<string, unknown>, color = false): string {
  const lv = LEVELS[typeof rec.level === 'number' ? rec.level : 30] ?? { name: String(rec.level).toUpperCase().padEnd(5), color: '' };
  const level = color ? `${lv.color}${lv.name}\x1b[0m` : lv.name;
  const parts = [clock(rec.time), level];
  if (typeof rec.sessionId === 'string') parts.push(color ? `\x1b[1m${rec.sessionId}\x1b[0m` : rec.sessionId);
  parts.push(typeof rec.msg === 'string' ? rec.msg : '');
  const err = rec.err as { message?: unknown; stack?: unknown; type?: unknown } | string | undefined;
  if (err !== undefined) parts.push(`err=${show(typeof err === 'object' && err !== null ? err.message ?? err.type : err)}`);
  for (const [k, v] of Object.entries(rec)) if (!OMITTED.has(k) && v !== undefined) parts.push(`${k}=${show(v)}`);
  let line = parts.filter((p) => p !== '').join(' ') + '\n';
  if (typeof err === 'object' && err !== null && typeof err.stack === 'string') {
    // The stack's first line repeats the message shown above.
    line += err.stack.split('\n').slice(1).map((l) => `    ${l.trim()}\n`).join('');
  }
  return line;
}

/**
 * A pino destination that writes dev lines to `sink`. Consecutive info-or-lower records with
 * the same message and no session (the runtime's own bookkeeping) are folded: the first is printed, the rest counted, and one
 * `… ×N more "msg"` line follows when another message arrives or `foldMs` passes. Warnings and
 * errors are never folded.
 */
export function devLogStream(sink: LineSink, opts: DevLogOptions = {}): { write(line: string): void; flush(): void } {
  const isTty = (sink as { isTTY?: boolean }).isTTY === true;
  const color = opts.color ?? (isTty && !process.env.NO_COLOR);
  const foldMs = opts.foldMs ?? 250;
  let folding: { msg: string; level: number; more: number } | null = null;
  let timer: NodeJS.Timeout | undefined;
  const flush = (): void => {
    if (timer) { clearTimeout(timer); timer = undefined; }
    if (folding && folding.more > 0) sink.write(`             … ×${folding.more} more "${folding.msg}"\n`);
    folding = null;
  };
  return {
    flush,
    write(line: string): void {
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line) as Record<string, unknown>;
      } catch {
        flush();
        sink.write(line.endsWith('\n') ? line : line + '\n');
        return;
      }
      const level = typeof rec.level === 'number' ? rec.level : 30;
      const msg = typeof rec.msg === 'string' ? rec.msg : '';
      if (folding && level === folding.level && msg === folding.msg && level <= 30) {
        folding.more++;
      } else {
        flush();
        sink.write(formatDevLine(rec, color));
        if (level <= 30 && msg !== '' && rec.sessionId === undefined) folding = { msg, level, more: 0 };
      }
      if (timer) clearTimeout(timer);
      if (folding) { timer = setTimeout(flush, foldMs); timer.unref(); }
    },
  };
}
