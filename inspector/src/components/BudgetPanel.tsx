/**
 * A session's budget (issue 17): every limit that applies to it (its agent type's, its own, its
 * tenant's) with what was used in the limit's current window, the session's totals per window,
 * the limit holding it (pause or ask), and its tenant's totals (the per-tenant summary). Read with
 * getBudget when the session's view changes; nothing when no limit applies and it has no tenant.
 */
import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { Connection } from '../connection.js';
import type { AgentView } from '../sessionFeed.js';

type Report = Awaited<ReturnType<Connection['client']['getBudget']>>;

/** Props of `BudgetPanel`. */
export interface BudgetPanelProps {
  readonly conn: Connection;
  readonly agentId: string;
  readonly view: AgentView;
}

/** Limits, usage and hold of one session, and its tenant's totals. */
export function BudgetPanel({ conn, agentId, view }: BudgetPanelProps): JSX.Element | null {
  const [mine, setMine] = useState<Report | null>(null);
  const [tenant, setTenant] = useState<Report | null>(null);
  const [error, setError] = useState<string | null>(null);
  const tenantName = view.tenant ?? null;
  useEffect(() => {
    let gone = false;
    conn.client.getBudget({ agentId }).then((r) => { if (!gone) { setMine(r); setError(null); } }, (e: unknown) => { if (!gone) setError(String((e as Error).message)); });
    if (tenantName) conn.client.getBudget({ tenant: tenantName }).then((r) => { if (!gone) setTenant(r); }, () => undefined);
    return () => { gone = true; };
  }, [conn, agentId, tenantName, view.updatedAt, view.state]);
  if (error) return <p class="error small">Budget: {error}</p>;
  if (!mine || (mine.limits.length === 0 && !tenantName)) return null;
  const life = mine.usage.find((u) => u.window === 'lifetime');
  return (
    <div class="budget-panel" data-testid="budget-panel">
      <h3>Budget{tenantName ? <> · tenant <span class="tag" data-testid="budget-tenant">{tenantName}</span></> : null}</h3>
      {mine.held ? <p class="error small" data-testid="budget-held">Held by its budget ({String(mine.held.policy)}): {String(mine.held.metric ?? '')} {String(mine.held.window ?? '')} max {String(mine.held.max ?? '')}</p> : null}
      {mine.limits.length > 0 ? (
        <table class="small">
          <thead><tr><th>scope</th><th>metric</th><th>window</th><th>used / max</th><th>policy</th></tr></thead>
          <tbody>
            {mine.limits.map((l, i) => (
              <tr key={i} class={l.exceeded ? 'exceeded' : undefined} data-testid="budget-limit">
                <td>{l.scope}</td><td>{l.metric}</td><td>{l.window}</td><td>{l.used ?? '?'} / {l.max}{l.exceeded ? ' ⚠' : ''}</td><td>{l.policy}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : <p class="muted small">No limits apply.</p>}
      {life ? <p class="small muted">Session, lifetime: {totalsLine(life.totals)}{life.open ? ` · ${life.open} open reservation(s)` : ''}</p> : null}
      {tenant ? <p class="small muted" data-testid="budget-tenant-summary">Tenant {tenantName}, lifetime: {totalsLine(tenant.usage.find((u) => u.window === 'lifetime')?.totals ?? {})}</p> : null}
    </div>
  );
}

function totalsLine(t: Record<string, string>): string {
  return ['tokens', 'cost', 'toolCalls', 'turns', 'wallMs'].map((k) => `${k} ${t[k] ?? '0'}`).join(' · ');
}
