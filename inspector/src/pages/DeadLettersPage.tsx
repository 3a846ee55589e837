/**
 * The Dead letters page: dead letters across sessions, newest first, a page at a time from the
 * server (`listDeadLetters`), filtered by reason, session, agent type, tenant, time and whether
 * they were replayed (the URL's query). Select rows, then replay or discard them in bulk after a
 * confirmation; each id's outcome is listed (replayed, skipped as replayed before, discarded,
 * gone already, or its error code), and the page is read again.
 */
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import type { ResultOf } from '../../../client/index.js';
import { describeError, type Connection } from '../connection.js';
import { formatTime, preview } from '../format.js';
import { usePaged } from '../paged.js';
import { localInputToMs, pageSize, sessionHash } from '../route.js';
import { FilterForm, Pager, TextFilter, useDraft } from './Pager.js';

type Row = ResultOf<'listDeadLetters'>['deadLetters'][number];
type Action = 'replay' | 'discard';

/** Rows per page (at most 100: one bulk call covers a whole page). */
export const DEAD_LETTERS_PAGE_SIZE = 50;

/** Reasons the runtime writes, offered as suggestions (any text is accepted). */
const REASONS = ['handler-failed', 'failed', 'stopped', 'expired', 'no-recipient', 'operator', 'budget', 'tenant-mismatch', 'mailbox-full', 'unstorable', 'payload-too-large', 'invalid-header'];

/** One id's outcome of a bulk action, as a line of text and whether it went well. */
interface Outcome { readonly id: string; readonly ok: boolean; readonly text: string }

function outcomesOf(action: Action, r: ResultOf<'replayDeadLetters'> | ResultOf<'discardDeadLetters'>): Outcome[] {
  return r.results.map((x): Outcome => {
    if (!x.ok) return { id: x.id, ok: false, text: `${x.error.type}: ${x.error.message}` };
    if (action === 'discard') return { id: x.id, ok: true, text: 'discarded' in x && x.discarded ? 'discarded' : 'already gone' };
    const rr = x as { published: number; duplicates: number; skipped: boolean };
    return { id: x.id, ok: true, text: rr.skipped ? 'skipped: replayed before' : `replayed: ${rr.published} message${rr.published === 1 ? '' : 's'} sent${rr.duplicates ? `, ${rr.duplicates} duplicate` : ''}` };
  });
}

/** Dead letters across sessions with bulk replay and discard. */
export function DeadLettersPage({ conn, params }: { conn: Connection; params: Readonly<Record<string, string>> }): JSX.Element {
  const [draft, set] = useDraft(params);
  const key = JSON.stringify(params);
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
  const [confirming, setConfirming] = useState<Action | null>(null);
  const [busy, setBusy] = useState(false);
  const [outcomes, setOutcomes] = useState<{ action: Action; items: Outcome[] } | null>(null);
  const [actionError, setActionError] = useState('');

  const paged = usePaged<Row, string>(conn, key, async (before) => {
    const since = localInputToMs(params.since);
    const until = localInputToMs(params.until);
    const r = await conn.client.call('listDeadLetters', {
      limit: pageSize(params.limit, DEAD_LETTERS_PAGE_SIZE, 100),
      ...(params.reason ? { reason: params.reason } : {}), ...(params.agentId ? { agentId: params.agentId } : {}),
      ...(params.agentType ? { agentType: params.agentType } : {}), ...(params.tenant ? { tenant: params.tenant } : {}),
      ...(since !== undefined ? { since } : {}), ...(until !== undefined ? { until } : {}),
      ...(params.replayed === 'yes' ? { replayed: true } : params.replayed === 'no' ? { replayed: false } : {}),
      ...(before !== undefined ? { before } : {}),
    });
    setSelected(new Set());
    return { rows: r.deadLetters, next: r.next ?? null };
  });

  const onPage = paged.rows.map((d) => d.id);
  const allOn = onPage.length > 0 && onPage.every((id) => selected.has(id));
  const toggle = (id: string): void => {
    const s = new Set(selected);
    if (s.has(id)) s.delete(id); else s.add(id);
    setSelected(s);
  };

  const run = async (action: Action): Promise<void> => {
    const ids = [...selected];
    setBusy(true);
    setActionError('');
    try {
      const items: Outcome[] = [];
      for (let i = 0; i < ids.length; i += 100) {
        const batch = ids.slice(i, i + 100);
        const r = action === 'replay'
          ? await conn.client.call('replayDeadLetters', { ids: batch })
          : await conn.client.call('discardDeadLetters', { ids: batch });
        items.push(...outcomesOf(action, r));
      }
      setOutcomes({ action, items });
      setSelected(new Set());
      paged.reload();
    } catch (e) {
      setActionError(describeError(e));
    } finally {
      setBusy(false);
      setConfirming(null);
    }
  };

  return (
    <section class="fleet-view dead-letters-view" aria-labelledby="dl-title">
      <div class="view-head">
        <h1 id="dl-title">Dead letters</h1>
        <p class="summary" aria-live="polite" data-testid="dead-letters-summary">
          {paged.loading ? 'loading…' : `${paged.rows.length} on page ${paged.page}, newest first${selected.size ? ` · ${selected.size} selected` : ''}`}
        </p>
        <button type="button" onClick={paged.reload} disabled={conn.state !== 'open'}>Refresh</button>
      </div>
      <FilterForm page="dead-letters" draft={draft} label="Filter dead letters">
        <label class="field">
          <span>Reason</span>
          <input name="reason" list="dl-reasons" value={draft.reason ?? ''} aria-label="Reason" placeholder="any" onInput={(e) => { set('reason', e.currentTarget.value); }} />
          <datalist id="dl-reasons">{REASONS.map((r) => <option key={r} value={r} />)}</datalist>
        </label>
        <TextFilter name="agentId" label="Session" placeholder="any" draft={draft} set={set} />
        <TextFilter name="agentType" label="Agent type" placeholder="any" draft={draft} set={set} />
        <TextFilter name="tenant" label="Tenant" placeholder="any" draft={draft} set={set} />
        <TextFilter name="since" label="From time" type="datetime-local" draft={draft} set={set} />
        <TextFilter name="until" label="Until time" type="datetime-local" draft={draft} set={set} />
        <label class="field">
          <span>Replayed</span>
          <select name="replayed" value={draft.replayed ?? ''} aria-label="Replayed" onChange={(e) => { set('replayed', e.currentTarget.value); }}>
            <option value="">either</option><option value="no">not yet</option><option value="yes">replayed</option>
          </select>
        </label>
      </FilterForm>
      {paged.error && <p class="error" role="alert">{paged.error}</p>}
      <div class="bulk-bar" role="group" aria-label="Bulk actions">
        <button type="button" disabled={selected.size === 0 || busy} onClick={() => { setConfirming('replay'); }}>Replay selected ({selected.size})</button>
        <button type="button" class="danger" disabled={selected.size === 0 || busy} onClick={() => { setConfirming('discard'); }}>Discard selected ({selected.size})</button>
      </div>
      {confirming && (
        <div class="confirm card" role="alertdialog" aria-labelledby="dl-confirm-text" aria-modal="false">
          <p id="dl-confirm-text">
            {confirming === 'replay'
              ? `Replay ${selected.size} dead letter${selected.size === 1 ? '' : 's'}? Their messages go to their sessions' inboxes again (those replayed before are skipped).`
              : `Discard ${selected.size} dead letter${selected.size === 1 ? '' : 's'} for good? This cannot be undone.`}
          </p>
          <button type="button" class={confirming === 'discard' ? 'danger' : 'primary'} disabled={busy} onClick={() => { void run(confirming); }}>
            {confirming === 'replay' ? 'Yes, replay' : 'Yes, discard'}
          </button>
          <button type="button" disabled={busy} onClick={() => { setConfirming(null); }}>Cancel</button>
        </div>
      )}
      {actionError && <p class="error" role="alert">{actionError}</p>}
      {outcomes && (
        <div class="panel bulk-outcome" data-testid="bulk-outcome" role="status">
          <h2>{outcomes.action === 'replay' ? 'Replay' : 'Discard'}: {outcomes.items.filter((o) => o.ok).length} of {outcomes.items.length} done</h2>
          <ul>
            {outcomes.items.map((o) => (
              <li key={o.id} data-id={o.id} class={o.ok ? 'ok' : 'error-text'}><code>{o.id}</code> — {o.text}</li>
            ))}
          </ul>
          <button type="button" class="small" onClick={() => { setOutcomes(null); }}>Dismiss</button>
        </div>
      )}
      <div class="panel">
        <div class="table-scroll">
          <table class="compact fleet-table" data-testid="dead-letters-table">
            <thead>
              <tr>
                <th scope="col"><input type="checkbox" aria-label="Select all on this page" checked={allOn} disabled={onPage.length === 0}
                  onChange={() => { setSelected(allOn ? new Set() : new Set(onPage)); }} /></th>
                <th scope="col">Created</th><th scope="col">Session</th><th scope="col">Type</th><th scope="col">Reason</th>
                <th scope="col">Error</th><th scope="col" class="num">Attempts</th><th scope="col">Replayed</th><th scope="col">Payload</th>
              </tr>
            </thead>
            <tbody>
              {paged.rows.map((d) => (
                <tr key={d.id} data-id={d.id} class={selected.has(d.id) ? 'selected' : undefined}>
                  <td><input type="checkbox" aria-label={`Select ${d.id}`} checked={selected.has(d.id)} onChange={() => { toggle(d.id); }} /></td>
                  <td><time dateTime={new Date(d.createdAt).toISOString()}>{formatTime(d.createdAt)}</time></td>
                  <td><a href={sessionHash(d.agentId)}>{d.agentId}</a></td>
                  <td>{d.agentType ?? <span class="muted">—</span>}</td>
                  <td><span class="badge outcome-dead-letter">{d.reason}</span></td>
                  <td class="error-text" title={d.error ?? ''}>{d.error ? preview(d.error, 80) : ''}</td>
                  <td class="num">{d.attempts}</td>
                  <td>{d.replayedAt !== null ? formatTime(d.replayedAt) : <span class="muted">no</span>}</td>
                  <td><code class="body" title={preview(d.payload, 2000)}>{preview(d.payload, 80)}</code></td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        {!paged.loading && paged.rows.length === 0 && !paged.error && <p class="muted">No dead letters match.</p>}
        <Pager paged={paged} label="Dead letters" />
      </div>
    </section>
  );
}
