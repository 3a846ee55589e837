/** A session's mailbox: pending and running counts and the deferred mail (kept while asleep) with priorities. */
import type { JSX } from 'preact';
import { formatTime } from '../format.js';
import type { ResultOf } from '../../../client/index.js';
import type { AgentView } from '../sessionFeed.js';

/** Every entry of a mailbox (time travel has them; the live view has counts). */
export type MailboxEntries = NonNullable<ResultOf<'getSessionAt'>['mailbox']>;

const seqList = (ms: readonly { seq: number; kind: string }[]): string => ms.map((m) => (m.seq > 0 ? `#${m.seq}` : m.kind)).join(', ');

/** The mailbox of `view`; `entries` (a past step) also names the pending and running messages. */
export function MailboxPanel({ view, entries }: { view: AgentView; entries?: MailboxEntries | null }): JSX.Element {
  const { pending, running, deferred } = view.mailbox;
  return (
    <div>
      <dl class="stats">
        <div><dt>Pending</dt><dd data-testid="mailbox-pending">{pending}</dd></div>
        <div><dt>Running</dt><dd data-testid="mailbox-running">{running}</dd></div>
        <div><dt>Deferred</dt><dd data-testid="mailbox-deferred">{deferred.length}</dd></div>
      </dl>
      {entries && (entries.running.length > 0 || entries.pending.length > 0) && (
        <p class="small" data-testid="mailbox-entries">
          {entries.running.length > 0 && <>Running {seqList(entries.running)}. </>}
          {entries.pending.length > 0 && <>Pending {seqList(entries.pending)}{entries.pendingOmitted ? ` and ${entries.pendingOmitted.count} more (up to ${entries.pendingOmitted.maxSeq})` : ''}.</>}
        </p>
      )}
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
