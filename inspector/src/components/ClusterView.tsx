/**
 * The Nodes page (`#/cluster`): every live node (version, uptime, its partitions, sessions,
 * heartbeat age, lease renewal lag), a grid of all partitions coloured by owner, the epoch in
 * each cell's tooltip, and a table of partitions with owner, lease epoch and renewal age that can
 * be narrowed to one owner or the free ones (`#/cluster?node=<id>`, or `node=free`). Read with `listNodes` and `getPartitions` every few seconds while the page is open
 * (any node answers for the whole cluster); a failed read keeps the last view and says why.
 */
import type { JSX } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import type { ResultOf } from '../../../client/index.js';
import { lagLevel, ownerSlots, partitionRanges } from '../clusterModel.js';
import { describeError, type Connection } from '../connection.js';
import { formatDuration, formatRelative } from '../format.js';
import { useNow, useSubscription } from '../hooks.js';
import { hashOf } from '../route.js';

/** How often the page reads the cluster view again. */
export const CLUSTER_REFRESH_MS = 3000;

type Nodes = ResultOf<'listNodes'>;
type Partitions = ResultOf<'getPartitions'>;
interface View { readonly nodes: Nodes['nodes']; readonly partitions: Partitions['partitions']; readonly leaseTtlMs: number; readonly at: number }

const age = (ms: number | null): string => (ms === null ? '—' : formatDuration(ms));
const count = (n: number | null): string => (n === null ? '—' : n.toLocaleString('en-US'));

/** Nodes and partitions of the cluster, refreshed every `CLUSTER_REFRESH_MS`; `params.node` narrows the partition table. */
export function ClusterView({ conn, params = {} }: { conn: Connection; params?: Readonly<Record<string, string>> }): JSX.Element {
  const owner = params.node ?? '';
  useSubscription(conn);
  const now = useNow(1000);
  const [view, setView] = useState<View | null>(null);
  const [error, setError] = useState('');
  const inFlight = useRef(false);
  const mounted = useRef(true);
  useEffect(() => () => { mounted.current = false; }, []);

  const refresh = useCallback(async (): Promise<void> => {
    if (inFlight.current || conn.state !== 'open') return;
    inFlight.current = true;
    try {
      const [n, p] = await Promise.all([conn.client.call('listNodes', {}), conn.client.call('getPartitions', {})]);
      if (!mounted.current) return;
      setView({ nodes: n.nodes, partitions: p.partitions, leaseTtlMs: n.leaseTtlMs, at: Date.now() });
      setError('');
    } catch (e) {
      if (mounted.current) setError(describeError(e));
    } finally {
      inFlight.current = false;
    }
  }, [conn]);

  // Read at once when the connection is (again) open, then every few seconds.
  useEffect(() => { void refresh(); }, [conn.state, refresh]);
  useEffect(() => {
    const t = setInterval(() => { void refresh(); }, CLUSTER_REFRESH_MS);
    return () => { clearInterval(t); };
  }, [refresh]);

  const slots = ownerSlots([...(view?.nodes.map((n) => n.nodeId) ?? []), ...(view?.partitions.map((p) => p.nodeId) ?? [])]);
  const free = view ? view.partitions.filter((p) => p.nodeId === null).length : 0;

  return (
    <section class="cluster-view" aria-labelledby="cluster-title">
      <div class="view-head">
        <h1 id="cluster-title">Nodes</h1>
        <p class="summary" aria-live="polite" data-testid="cluster-summary">
          {view
            ? `${view.nodes.length} node${view.nodes.length === 1 ? '' : 's'} · ${view.partitions.length} partitions, ${free} free · lease TTL ${formatDuration(view.leaseTtlMs)} · updated ${formatRelative(view.at, now)}`
            : error ? '' : 'loading…'}
        </p>
        <button type="button" onClick={() => { void refresh(); }} disabled={conn.state !== 'open'}>Refresh</button>
      </div>
      {error && <p class="error" role="alert">{error}{view ? ' (showing the last view read)' : ''}</p>}
      {view && (
        <>
          <div class="panel">
            <h2>Nodes</h2>
            <div class="table-scroll">
              <table class="compact cluster-nodes" data-testid="cluster-nodes">
                <thead>
                  <tr>
                    <th scope="col">Node</th><th scope="col">Version</th><th scope="col">Uptime</th>
                    <th scope="col" title="partitions whose lease names the node now">Partitions</th>
                    <th scope="col" class="num" title="session actors in memory, as of its last heartbeat">Live</th>
                    <th scope="col" class="num" title="handlers running, as of its last heartbeat">Active</th>
                    <th scope="col" class="num" title="age of its last heartbeat (rewritten every quarter of the lease TTL)">Heartbeat</th>
                    <th scope="col" class="num" title="how long ago its oldest lease was renewed; near the lease TTL its partitions are suspended">Lease lag</th>
                  </tr>
                </thead>
                <tbody>
                  {view.nodes.map((n) => {
                    const lag = lagLevel(n.leaseRenewalAgeMs, view.leaseTtlMs);
                    return (
                      <tr key={n.nodeId} data-node={n.nodeId}>
                        <th scope="row">
                          <span class={`swatch owner-${slots.get(n.nodeId) ?? 0}`} aria-hidden="true" />
                          <code>{n.nodeId}</code>
                          {n.self && <span class="tag self-tag" title="the node serving this page">this node</span>}
                        </th>
                        <td>{n.version ?? '—'}</td>
                        <td>{age(n.uptimeMs)}</td>
                        <td data-testid="node-partitions"><span class="count">{n.partitions.length}</span>{n.partitions.length > 0 && <span class="muted"> ({partitionRanges(n.partitions)})</span>}</td>
                        <td class="num">{count(n.liveSessions)}</td>
                        <td class="num">{count(n.activeSessions)}</td>
                        <td class="num">{age(n.heartbeatAgeMs)}</td>
                        <td class={`num lag-${lag}`} title={lag === 'bad' ? 'at 90% of the lease TTL its partitions are suspended' : lag === 'warn' ? 'over half the lease TTL: the node is slow to renew' : undefined}>
                          {age(n.leaseRenewalAgeMs)}
                        </td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </div>
          </div>
          <div class="panel">
            <h2>Partitions</h2>
            <ul class="legend" aria-label="Owners">
              {[...slots].map(([id, slot]) => <li key={id}><span class={`swatch owner-${slot}`} aria-hidden="true" />{id}</li>)}
              <li><span class="swatch owner-free" aria-hidden="true" />free</li>
            </ul>
            <ol class="partition-grid" data-testid="partition-grid" aria-label="Partitions by owner">
              {view.partitions.map((p) => {
                const text = p.nodeId === null
                  ? `partition ${p.partition}: free`
                  : `partition ${p.partition}: ${p.nodeId}, epoch ${p.epoch ?? '—'}, renewed ${age(p.renewalAgeMs)} ago`;
                return (
                  <li key={p.partition} class={`pcell ${p.nodeId === null ? 'owner-free' : `owner-${slots.get(p.nodeId) ?? 0}`}`}
                    title={text} aria-label={text} data-partition={p.partition} data-owner={p.nodeId ?? ''} data-epoch={p.epoch ?? ''}>
                    {p.partition}
                  </li>
                );
              })}
            </ol>
          </div>
          <div class="panel">
            <h2 id="partition-table-title">Partitions and their owners</h2>
            <label class="field owner-filter">
              <span>Owner</span>
              <select value={owner} aria-label="Filter partitions by owner"
                onChange={(e) => { location.hash = hashOf('cluster', { node: e.currentTarget.value }); }}>
                <option value="">every owner</option>
                {[...slots.keys()].map((id) => <option key={id} value={id}>{id}</option>)}
                <option value="free">free</option>
              </select>
            </label>
            <div class="table-scroll">
              <table class="compact" data-testid="partition-table" aria-labelledby="partition-table-title">
                <thead><tr><th scope="col" class="num">Partition</th><th scope="col">Owner</th><th scope="col" class="num">Lease epoch</th><th scope="col" class="num">Renewed</th></tr></thead>
                <tbody>
                  {view.partitions.filter((p) => owner === '' || (owner === 'free' ? p.nodeId === null : p.nodeId === owner)).map((p) => (
                    <tr key={p.partition} data-partition={p.partition}>
                      <td class="num">{p.partition}</td>
                      <td>{p.nodeId === null ? <span class="muted">free</span> : <><span class={`swatch owner-${slots.get(p.nodeId) ?? 0}`} aria-hidden="true" /><code>{p.nodeId}</code></>}</td>
                      <td class="num">{p.epoch ?? '—'}</td>
                      <td class="num">{p.renewalAgeMs === null ? '—' : `${age(p.renewalAgeMs)} ago`}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </div>
        </>
      )}
    </section>
  );
}
