/**
 * Owns logging: one pino root logger per runtime, and child loggers per session and run, so
 * every line of a session can be found by `sessionId`. Production writes JSON lines; `agentry
 * dev` writes human-readable lines (runtime/devLog.ts) through the same pino logger, so every
 * field a production line has is on the dev line too.
 */
import { pino, type Logger } from 'pino';
import { devLogStream, type DevLogOptions, type LineSink } from './devLog.js';

export type { Logger } from 'pino';

/** Creates the runtime's root logger (JSON lines on stdout; level from config). */
export function createLogger(level: string, base: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { ...base }, timestamp: pino.stdTimeFunctions.isoTime });
}

/**
 * Creates the logger of `agentry dev`: `time level [sessionId] msg key=value …` lines on `sink`
 * (default stdout), errors with their stack below, repeated start-up lines folded.
 *
 * @example
 * const logger = createDevLogger('info');
 * const rt = await createRuntime({ agents, logger, config });
 */
export function createDevLogger(level: string, sink: LineSink = process.stdout, opts: DevLogOptions = {}): Logger {
  return pino({ level, base: {}, timestamp: pino.stdTimeFunctions.isoTime }, devLogStream(sink, opts));
}
