/**
 * The inspector's shell: top bar (brand, where you are, the Cluster link, connection badge), the
 * token prompt, and a hash router — `#/` for the sessions view, `#/s/<id>` for one session,
 * `#/cluster` for the nodes and partitions — so links work, the back button works, and the
 * server needs no routes of its own.
 */
import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { Connection } from './connection.js';
import type { SessionIndex } from './sessionIndex.js';
import { ClusterView } from './components/ClusterView.js';
import { ConnectionBadge } from './components/ConnectionBadge.js';
import { SessionView } from './components/SessionView.js';
import { SessionsView } from './components/SessionsView.js';
import { TokenPrompt } from './components/TokenPrompt.js';

/** The session id in a location hash (`#/s/<id>`), or null for the sessions view. */
export function routeOf(hash: string): string | null {
  const m = /^#\/s\/(.+)$/.exec(hash);
  if (!m) return null;
  try { return decodeURIComponent(m[1]!); } catch { return null; }
}

/** True when a location hash names the Cluster page. */
export function isClusterRoute(hash: string): boolean {
  return hash === '#/cluster';
}

/** The whole UI. */
export function App({ conn, index }: { conn: Connection; index: SessionIndex }): JSX.Element {
  const [session, setSession] = useState(() => routeOf(location.hash));
  const [cluster, setCluster] = useState(() => isClusterRoute(location.hash));
  useEffect(() => {
    const onHash = (): void => { setSession(routeOf(location.hash)); setCluster(isClusterRoute(location.hash)); window.scrollTo(0, 0); };
    addEventListener('hashchange', onHash);
    return () => { removeEventListener('hashchange', onHash); };
  }, []);
  useEffect(() => {
    document.title = session ? `${session} · Agentry inspector` : cluster ? 'Cluster · Agentry inspector' : 'Agentry inspector';
  }, [session, cluster]);
  const open = (id: string): void => { location.hash = `#/s/${encodeURIComponent(id)}`; };

  return (
    <>
      <a class="skip" href="#main">Skip to content</a>
      <header class="topbar">
        <a class="brand" href="#/" aria-label="Agentry inspector: all sessions">
          <img src="/favicon.svg" alt="" width={22} height={22} />
          <span>Agentry <span class="muted">inspector</span></span>
        </a>
        <nav aria-label="Breadcrumb" class="crumbs">
          {cluster
            ? <span aria-current="page">Cluster</span>
            : <a href="#/" aria-current={session ? undefined : 'page'}>Sessions</a>}
          {session && <><span aria-hidden="true">/</span><span aria-current="page">{session}</span></>}
        </nav>
        {/* The other top-level view (the breadcrumb says where you are). */}
        <nav aria-label="Views" class="views">
          {cluster ? <a href="#/">Sessions</a> : <a href="#/cluster">Cluster</a>}
        </nav>
        <ConnectionBadge conn={conn} />
      </header>
      <main id="main" tabIndex={-1}>
        {session ? <SessionView key={session} conn={conn} agentId={session} />
          : cluster ? <ClusterView conn={conn} />
            : <SessionsView conn={conn} index={index} onOpen={open} />}
      </main>
      <TokenPrompt conn={conn} />
    </>
  );
}
