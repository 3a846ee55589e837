/**
 * The inspector's shell: top bar (brand, where you are, the page navigation, connection badge),
 * the token prompt, and a hash router (`route.ts`) — `#/` sessions, `#/s/<id>` one session,
 * `#/events`, `#/dead-letters`, `#/schedules`, `#/cluster` (Nodes) and `#/tenants`, each with
 * its filters in the hash's query — so links work, the back button works, and the server needs
 * no routes of its own.
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
import { DeadLettersPage } from './pages/DeadLettersPage.js';
import { EventsView } from './pages/EventsView.js';
import { SchedulesView } from './pages/SchedulesView.js';
import { TenantsView } from './pages/TenantsView.js';
import { PAGES, PAGE_TITLES, hashOf, parseRoute, sessionHash, type Route } from './route.js';
import './pages/pages.css';

/** The session id in a location hash (`#/s/<id>`), or null for any other page. */
export function routeOf(hash: string): string | null {
  return parseRoute(hash).session ?? null;
}

/** True when a location hash names the Nodes (cluster) page. */
export function isClusterRoute(hash: string): boolean {
  return parseRoute(hash).page === 'cluster';
}

/** The whole UI. */
export function App({ conn, index }: { conn: Connection; index: SessionIndex }): JSX.Element {
  const [route, setRoute] = useState<Route>(() => parseRoute(location.hash));
  useEffect(() => {
    const onHash = (): void => {
      const next = parseRoute(location.hash);
      setRoute((was) => {
        if (was.page !== next.page || was.session !== next.session) window.scrollTo(0, 0);
        return next;
      });
    };
    addEventListener('hashchange', onHash);
    return () => { removeEventListener('hashchange', onHash); };
  }, []);
  const { page, session, params } = route;
  useEffect(() => {
    document.title = session ? `${session} · Agentry inspector` : page === 'sessions' ? 'Agentry inspector' : `${PAGE_TITLES[page]} · Agentry inspector`;
  }, [page, session]);
  const open = (id: string): void => { location.hash = sessionHash(id); };
  const current = page === 'session' ? 'sessions' : page;

  return (
    <>
      <a class="skip" href="#main">Skip to content</a>
      <header class="topbar">
        <a class="brand" href="#/" aria-label="Agentry inspector: all sessions">
          <img src="/favicon.svg" alt="" width={22} height={22} />
          <span>Agentry <span class="muted">inspector</span></span>
        </a>
        <nav aria-label="Breadcrumb" class="crumbs">
          {page === 'sessions' || page === 'session'
            ? <a href="#/" aria-current={session ? undefined : 'page'}>Sessions</a>
            : <span aria-current="page">{PAGE_TITLES[page]}</span>}
          {session && <><span aria-hidden="true">/</span><span aria-current="page">{session}</span></>}
        </nav>
        <nav aria-label="Views" class="views">
          {PAGES.map((p) => (
            <a key={p} href={hashOf(p)} aria-current={current === p ? 'page' : undefined}>{PAGE_TITLES[p]}</a>
          ))}
        </nav>
        <ConnectionBadge conn={conn} />
      </header>
      <main id="main" tabIndex={-1}>
        {page === 'session' && session ? <SessionView key={session} conn={conn} agentId={session} />
          : page === 'cluster' ? <ClusterView conn={conn} params={params} />
            : page === 'events' ? <EventsView conn={conn} params={params} />
              : page === 'dead-letters' ? <DeadLettersPage conn={conn} params={params} />
                : page === 'schedules' ? <SchedulesView conn={conn} params={params} />
                  : page === 'tenants' ? <TenantsView conn={conn} params={params} />
                    : <SessionsView conn={conn} index={index} onOpen={open} />}
      </main>
      <TokenPrompt conn={conn} />
    </>
  );
}
