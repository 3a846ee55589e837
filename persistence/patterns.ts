/**
 * Event-type patterns as NATS writes them: `*` matches one token, `>` one or more trailing tokens.
 */
/** Does a NATS-style pattern (`*` one token, `>` the rest) match an event type? */
export function patternMatches(pattern: string, type: string): boolean {
  const p = pattern.split('.');
  const t = type.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return t.length > i;
    if (i >= t.length) return false;
    if (p[i] !== '*' && p[i] !== t[i]) return false;
  }
  return p.length === t.length;
}

/** True when the pattern contains a wildcard token. */
export function isWildcard(pattern: string): boolean {
  return pattern.split('.').some((t) => t === '*' || t === '>');
}
