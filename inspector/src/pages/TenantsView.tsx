/**
 * The Tenants page (issue 17 in the inspector): every tenant — of stored sessions, or with
 * budget limits set — a page at a time from the server (`listTenants`), with its sessions by
 * state, its budget limits with what was used in each limit's window, and its lifetime usage
 * (`getBudget { tenant }`, one read per tenant on the page). Links lead to the tenant's dead
 * letters and cron tasks.
 */
import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { ResultOf } from '../../../client/index.js';
import { describeError, type Connection } from '../connection.js';
import { usePaged } from '../paged.js';
import { hashOf, pageSize } from '../route.js';
import { STATES } from '../states.js';
import { Pager } from './Pager.js';

type Tenant = ResultOf<'listTenants'>['tenants'][number];
type Budget = ResultOf<'getBudget'>;

/** Rows per page (each row reads its budget: keep it small). */
export const TENANTS_PAGE_SIZE = 20;

/** Tenants with their sessions, budget limits and usage. */
export function TenantsView({ conn, params }: { conn: Connection; params: Readonly<Record<string, string>> }): JSX.Element {
  const paged = usePaged<Tenant, string>(conn, JSON.stringify(params), async (after) => {
    const r = await conn.client.call('listTenants', { limit: pageSize(params.limit, TENANTS_PAGE_SIZE, 100), ...(after !== undefined ? { after } : {}) });
    return { rows: r.tenants, next: r.next };
  });
  return (
    <section class="fleet-view tenants-view" aria-labelledby="tenants-title">
      <div class="view-head">
        <h1 id="tenants-title">Tenants</h1>
        <p class="summary" aria-live="polite" data-testid="tenants-summary">
          {paged.loading ? 'loading…' : `${paged.rows.length} tenant${paged.rows.length === 1 ? '' : 's'} on page ${paged.page}`}
        </p>
        <button type="button" onClick={paged.reload} disabled={conn.state !== 'open'}>Refresh</button>
      </div>
      {paged.error && <p class="error" role="alert">{paged.error}</p>}
      <div class="panel">
        <div class="table-scroll">
          <table class="compact fleet-table" data-testid="tenants-table">
            <thead>
              <tr>
                <th scope="col">Tenant</th><th scope="col" class="num">Sessions</th><th scope="col">By state</th>
                <th scope="col">Budget limits (used / max in the window)</th><th scope="col">Usage, lifetime</th><th scope="col">See</th>
              </tr>
            </thead>
            <tbody>
              {paged.rows.map((t) => <TenantRow key={t.tenant} conn={conn} t={t} />)}
            </tbody>
          </table>
        </div>
        {!paged.loading && paged.rows.length === 0 && !paged.error && <p class="muted">No tenants: sessions created with a tenant, or tenant budgets, appear here.</p>}
        <Pager paged={paged} label="Tenants" />
      </div>
    </section>
  );
}

function TenantRow({ conn, t }: { conn: Connection; t: Tenant }): JSX.Element {
  const [budget, setBudget] = useState<Budget | null>(null);
  const [error, setError] = useState('');
  useEffect(() => {
    let gone = false;
    conn.client.call('getBudget', { tenant: t.tenant }).then((b) => { if (!gone) setBudget(b); }, (e: unknown) => { if (!gone) setError(describeError(e)); });
    return () => { gone = true; };
  }, [conn, t]);
  const life = budget?.usage.find((u) => u.window === 'lifetime')?.totals;
  return (
    <tr data-tenant={t.tenant}>
      <th scope="row"><code>{t.tenant}</code></th>
      <td class="num" data-testid="tenant-sessions">{t.sessions.toLocaleString('en-US')}</td>
      <td>
        {STATES.filter((s) => (t.byState[s] ?? 0) > 0).map((s) => (
          <span key={s} class={`tag state-tag state-${s}`}>{s} {t.byState[s]!.toLocaleString('en-US')}</span>
        ))}
      </td>
      <td data-testid="tenant-limits">
        {error ? <span class="error-text">{error}</span>
          : !budget ? <span class="muted">…</span>
            : budget.limits.length === 0 ? <span class="muted">none</span>
              : (
                <ul class="limit-list">
                  {budget.limits.map((l, i) => (
                    <li key={i} class={l.exceeded ? 'exceeded' : undefined}>
                      {l.metric} {l.used ?? '?'} / {l.max} <span class="muted">({l.window}, {l.policy})</span>{l.exceeded ? ' — exceeded' : ''}
                    </li>
                  ))}
                </ul>
              )}
      </td>
      <td class="small" data-testid="tenant-usage">
        {life ? ['tokens', 'cost', 'turns'].map((k) => `${k} ${life[k] ?? '0'}`).join(' · ') : <span class="muted">—</span>}
      </td>
      <td class="small">
        <a href={hashOf('dead-letters', { tenant: t.tenant })}>dead letters</a> · <a href={hashOf('schedules', { tenant: t.tenant })}>schedules</a>
      </td>
    </tr>
  );
}
