/**
 * Owns logging: one pino root logger per runtime, and child loggers per session and run, so
 * every line of a session can be found by `sessionId`.
 */
import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

/** Creates the runtime's root logger (JSON lines on stdout; level from config). */
export function createLogger(level: string, base: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { ...base }, timestamp: pino.stdTimeFunctions.isoTime });
}
