/**
 * The Schedules page: cron tasks (`scheduleTask`), oldest first, a page at a time from the
 * server (`listTasks`), by session or tenant (the URL's query). Each shows its next run in its
 * own time zone (and in local time, and how far off), its last run, and cancels after a
 * confirmation in its row.
 */
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import type { ResultOf } from '../../../client/index.js';
import { describeError, type Connection } from '../connection.js';
import { formatRelative, formatTime, preview } from '../format.js';
import { formatInZone } from '../zoned.js';
import { useNow } from '../hooks.js';
import { usePaged } from '../paged.js';
import { pageSize, sessionHash } from '../route.js';
import { FilterForm, Pager, TextFilter, useDraft } from './Pager.js';

type Task = ResultOf<'listTasks'>['tasks'][number];

/** Rows per page. */
export const SCHEDULES_PAGE_SIZE = 50;

/** Cron tasks with their next and last runs, and cancel. */
export function SchedulesView({ conn, params }: { conn: Connection; params: Readonly<Record<string, string>> }): JSX.Element {
  const [draft, set] = useDraft(params);
  const key = JSON.stringify(params);
  const now = useNow(1000);
  const paged = usePaged<Task, string>(conn, key, async (after) => {
    const r = await conn.client.call('listTasks', {
      limit: pageSize(params.limit, SCHEDULES_PAGE_SIZE, 1000),
      ...(params.agentId ? { agentId: params.agentId } : {}), ...(params.tenant ? { tenant: params.tenant } : {}),
      ...(after !== undefined ? { after } : {}),
    });
    return { rows: r.tasks, next: r.next ?? null };
  });

  return (
    <section class="fleet-view schedules-view" aria-labelledby="schedules-title">
      <div class="view-head">
        <h1 id="schedules-title">Schedules</h1>
        <p class="summary" aria-live="polite" data-testid="schedules-summary">
          {paged.loading ? 'loading…' : `${paged.rows.length} cron task${paged.rows.length === 1 ? '' : 's'} on page ${paged.page}`}
        </p>
        <button type="button" onClick={paged.reload} disabled={conn.state !== 'open'}>Refresh</button>
      </div>
      <FilterForm page="schedules" draft={draft} label="Filter schedules">
        <TextFilter name="agentId" label="Session" placeholder="any" draft={draft} set={set} />
        <TextFilter name="tenant" label="Tenant" placeholder="any" draft={draft} set={set} />
      </FilterForm>
      {paged.error && <p class="error" role="alert">{paged.error}</p>}
      <div class="panel">
        <div class="table-scroll">
          <table class="compact fleet-table" data-testid="schedules-table">
            <thead>
              <tr>
                <th scope="col">Task</th><th scope="col">Session</th><th scope="col">Schedule</th><th scope="col">Next run (its time zone)</th>
                <th scope="col">Next run (local)</th><th scope="col">Last run</th><th scope="col">Task body</th><th scope="col"><span class="visually-hidden">Actions</span></th>
              </tr>
            </thead>
            <tbody>
              {paged.rows.map((t) => <TaskRow key={t.taskId} conn={conn} t={t} now={now} onCancelled={paged.reload} />)}
            </tbody>
          </table>
        </div>
        {!paged.loading && paged.rows.length === 0 && !paged.error && <p class="muted">No cron tasks match.</p>}
        <Pager paged={paged} label="Schedules" />
      </div>
    </section>
  );
}

function TaskRow({ conn, t, now, onCancelled }: { conn: Connection; t: Task; now: number; onCancelled(): void }): JSX.Element {
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const cancel = async (): Promise<void> => {
    setBusy(true);
    setError('');
    try {
      await conn.client.call('cancelTask', { taskId: t.taskId });
      onCancelled();
    } catch (e) {
      setError(describeError(e));
      setBusy(false);
    }
  };
  return (
    <tr data-task={t.taskId}>
      <td><code>{t.taskId}</code></td>
      <td><a href={sessionHash(t.agentId)}>{t.agentId}</a></td>
      <td><code>{t.schedule}</code></td>
      <td data-testid="next-run-zoned">{formatInZone(t.nextRunAt, t.timezone)}</td>
      <td title={formatTime(t.nextRunAt, now)}>{formatTime(t.nextRunAt, now)} <span class="muted">({formatRelative(t.nextRunAt, now)})</span></td>
      <td>{t.lastRunAt === null ? <span class="muted">never</span> : formatTime(t.lastRunAt, now)}</td>
      <td><code class="body" title={preview(t.task, 2000)}>{preview(t.task, 60)}</code></td>
      <td class="row-actions">
        {confirming
          ? (
            <span role="group" aria-label={`Confirm cancelling ${t.taskId}`}>
              <span>Cancel this task?</span>{' '}
              <button type="button" class="small danger" disabled={busy} onClick={() => { void cancel(); }}>Yes, cancel it</button>{' '}
              <button type="button" class="small" disabled={busy} onClick={() => { setConfirming(false); }}>Keep</button>
            </span>
          )
          : <button type="button" class="small danger" aria-label={`Cancel task ${t.taskId}`} onClick={() => { setConfirming(true); }}>Cancel…</button>}
        {error && <p class="error" role="alert">{error}</p>}
      </td>
    </tr>
  );
}
