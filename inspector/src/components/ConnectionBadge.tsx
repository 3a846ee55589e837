/** The connection badge in the top bar: connected, connecting, reconnecting (with backoff), offline or needs a token. */
import type { JSX } from 'preact';
import type { Connection } from '../connection.js';
import { useSubscription } from '../hooks.js';

const TEXT = {
  connecting: 'Connecting…',
  open: 'Connected',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
  unauthorized: 'Token needed',
} as const;

/** Shows `conn`'s state; the detail (why, next retry) is in the title and for screen readers. */
export function ConnectionBadge({ conn }: { conn: Connection }): JSX.Element {
  useSubscription(conn);
  return (
    <span class={`badge conn conn--${conn.state}`} role="status" aria-live="polite" title={conn.detail || TEXT[conn.state]} data-connection={conn.state}>
      <span class="dot" aria-hidden="true" />
      {TEXT[conn.state]}
      {conn.detail && <span class="visually-hidden">: {conn.detail}</span>}
    </span>
  );
}
