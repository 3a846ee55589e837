/** A session's mailbox: pending and running counts and the deferred mail (kept while asleep) with priorities. */
import type { JSX } from 'preact';
import { formatTime } from '../format.js';
import type { AgentView } from '../sessionFeed.js';

/** The mailbox of `view`. */
export function MailboxPanel({ view }: { view: AgentView }): JSX.Element {
  const { pending, running, deferred } = view.mailbox;
  return (
    <div>
      <dl class="stats">
        <div><dt>Pending</dt><dd data-testid="mailbox-pending">{pending}</dd></div>
        <div><dt>Running</dt><dd>{running}</dd></div>
        <div><dt>Deferred</dt><dd data-testid="mailbox-deferred">{deferred.length}</dd></div>
      </dl>
      {deferred.length > 0 ? (
        <table class="compact">
          <caption class="visually-hidden">Deferred messages, delivered at wake, oldest first</caption>
          <thead><tr><th scope="col">Seq</th><th scope="col">Kind</th><th scope="col">Priority</th><th scope="col">From</th><th scope="col">Received</th></tr></thead>
          <tbody>
            {deferred.map((d) => (
              <tr key={d.seq}>
                <td class="num">{d.seq}</td><td>{d.kind}</td>
                <td><span class={`prio prio-${d.priority}`}>{d.priority}</span></td>
                <td>{d.from ?? '—'}</td><td>{formatTime(d.at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : <p class="muted">No deferred mail.</p>}
      {view.migrationError && (
        <p class="error-box" data-testid="migration-error"><strong>Cannot migrate</strong> {view.migrationError.code} ({view.migrationError.reason}, version {view.migrationError.fromVersion} → {view.migrationError.toVersion}): {view.migrationError.message}. Its snapshot and messages are kept until a deploy can take it.</p>
      )}
      {view.lastError && (
        <p class="error-box"><strong>Last error</strong> {view.lastError.code}: {view.lastError.message}{view.lastError.terminal ? ' (terminal)' : ''}</p>
      )}
    </div>
  );
}
