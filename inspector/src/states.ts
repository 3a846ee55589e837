/** The five top-level session states, in the order the UI lists them. */
export const STATES = ['idle', 'active', 'sleeping', 'waiting', 'stopped'] as const;

/** A top-level session state. */
export type SessionState = (typeof STATES)[number];

/** The top-level state of a state path (`active.running` → `active`). */
export function topOf(path: string): SessionState {
  const top = path.split('.')[0] ?? '';
  return (STATES as readonly string[]).includes(top) ? (top as SessionState) : 'idle';
}
