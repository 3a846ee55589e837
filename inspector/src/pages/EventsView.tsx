/**
 * The Events page: the event log (what `publishEvent`, handlers' `ctx.publish` and the runtime's
 * own events put on the bus), newest first, a page at a time from the server
 * (`listEvents { order: 'newest' }`), filtered by type pattern, sender and time range. The
 * filters are the URL's query: `#/events?type=invoice.*&from=billing-7`.
 */
import type { JSX } from 'preact';
import type { ResultOf } from '../../../client/index.js';
import type { Connection } from '../connection.js';
import { formatTime, preview } from '../format.js';
import { usePaged } from '../paged.js';
import { localInputToMs, pageSize, sessionHash } from '../route.js';
import { FilterForm, Pager, TextFilter, useDraft } from './Pager.js';

type EventRow = ResultOf<'listEvents'>['events'][number];

/** Rows per page. */
export const EVENTS_PAGE_SIZE = 25;

/** The event log with its filters. */
export function EventsView({ conn, params }: { conn: Connection; params: Readonly<Record<string, string>> }): JSX.Element {
  const [draft, set] = useDraft(params);
  const key = JSON.stringify(params);
  const limit = pageSize(params.limit, EVENTS_PAGE_SIZE, 1000);
  const paged = usePaged<EventRow, number>(conn, key, async (before) => {
    const since = localInputToMs(params.since);
    const until = localInputToMs(params.until);
    const r = await conn.client.call('listEvents', {
      order: 'newest', limit,
      ...(params.type ? { type: params.type } : {}), ...(params.from ? { from: params.from } : {}),
      ...(since !== undefined ? { since } : {}), ...(until !== undefined ? { until } : {}), ...(before !== undefined ? { before } : {}),
    });
    return { rows: r.events, next: r.next ?? null };
  });

  return (
    <section class="fleet-view events-view" aria-labelledby="events-title">
      <div class="view-head">
        <h1 id="events-title">Events</h1>
        <p class="summary" aria-live="polite" data-testid="events-summary">
          {paged.loading ? 'loading…' : `${paged.rows.length} event${paged.rows.length === 1 ? '' : 's'} on page ${paged.page}, newest first`}
          {!paged.loading && paged.hasOlder && paged.rows.length < limit && ' · a partial page: each request reads a bounded part of the history, Older → goes on'}
        </p>
        <button type="button" onClick={paged.reload} disabled={conn.state !== 'open'}>Refresh</button>
      </div>
      <FilterForm page="events" draft={draft} label="Filter events">
        <TextFilter name="type" label="Type or pattern" placeholder="invoice.* or order.>" draft={draft} set={set} />
        <TextFilter name="from" label="Sender (session id)" placeholder="any" draft={draft} set={set} />
        <TextFilter name="since" label="From time" type="datetime-local" draft={draft} set={set} />
        <TextFilter name="until" label="Until time" type="datetime-local" draft={draft} set={set} />
      </FilterForm>
      {paged.error && <p class="error" role="alert">{paged.error}</p>}
      <div class="panel">
        <div class="table-scroll">
          <table class="compact fleet-table" data-testid="events-table">
            <thead>
              <tr><th scope="col" class="num">Seq</th><th scope="col">Time</th><th scope="col">Type</th><th scope="col">Sender</th><th scope="col">Priority</th><th scope="col">Data</th></tr>
            </thead>
            <tbody>
              {paged.rows.map((e) => (
                <tr key={e.seq} data-seq={e.seq}>
                  <td class="num">{e.seq}</td>
                  <td><time dateTime={new Date(e.at).toISOString()}>{formatTime(e.at)}</time></td>
                  <td><code>{e.type}</code></td>
                  <td>{e.from === null ? <span class="muted">—</span>
                    : /[.*>\s]/.test(e.from) ? <code>{e.from}</code> /* not a session id (agentry.budget, …) */
                      : <a href={sessionHash(e.from)} title="open the sending session">{e.from}</a>}</td>
                  <td><span class={`badge prio-${e.priority}`}>{e.priority}</span></td>
                  <td><code class="body" title={preview(e.data, 2000)}>{preview(e.data, 120)}</code></td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        {!paged.loading && paged.rows.length === 0 && !paged.error && <p class="muted">No events match.</p>}
        <Pager paged={paged} label="Events" />
      </div>
    </section>
  );
}
