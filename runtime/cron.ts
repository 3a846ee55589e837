/**
 * Owns cron arithmetic: parsing an expression in an IANA time zone and finding its next
 * instant. DST gaps and overlaps are croner's job (spring-forward: the first valid time after;
 * fall-back: once), which is why we do not compute local times ourselves.
 */
import { Cron } from 'croner';
import { AgentryError } from '../actors/errors.js';

/** Validates an expression and a time zone; throws INVALID_ARGUMENT naming what is wrong. */
export function parseCron(expression: string, timezone: string): Cron {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
  } catch {
    throw new AgentryError('INVALID_ARGUMENT', `unknown time zone ${JSON.stringify(timezone)} (use an IANA name such as Europe/Berlin)`);
  }
  try {
    return new Cron(expression, { timezone, paused: true });
  } catch (e) {
    throw new AgentryError('INVALID_ARGUMENT', `invalid cron expression ${JSON.stringify(expression)}: ${(e as Error).message}`);
  }
}

/** The first firing strictly after `after` (epoch ms), or null when there is none. */
export function nextRunAfter(expression: string, timezone: string, after: number): number | null {
  const next = parseCron(expression, timezone).nextRun(new Date(after));
  return next ? next.getTime() : null;
}
