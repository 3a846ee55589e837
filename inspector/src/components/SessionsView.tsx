/**
 * The sessions view: counts by state (which double as state filters), id prefix search, type,
 * tenant, tag and last-activity filters, sorting, the windowed list, and a form to create a session.
 * Filtering and sorting happen on the server (`listAgents`); the query lives in the URL
 * (`#/?state=sleeping&q=support-`), so reload, back and shared links restore it, and the list
 * model keeps its pages and scroll offset while a session is open.
 */
import type { JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Connection } from '../connection.js';
import { useAction, useSubscription, parseBody } from '../hooks.js';
import { parseRoute } from '../route.js';
import { ACTIVITY_WINDOWS, defaultDesc, hashOf, isFiltered, queryFromHash, type ListQuery, type SortKey } from '../listQuery.js';
import type { SessionIndex } from '../sessionIndex.js';
import { STATES, type SessionState } from '../states.js';
import { ActionResult } from './ActionResult.js';
import { SessionTable } from './SessionTable.js';
import { Waitpoints } from './Waitpoints.js';

/** Typing waits this long before the list asks the server (one query per pause, not per key). */
const TYPING_DEBOUNCE_MS = 100;
const ACTIVITY_LABELS: Readonly<Record<string, string>> = { '5m': 'last 5 minutes', '1h': 'last hour', '24h': 'last 24 hours', '7d': 'last 7 days' };

/** Props of `SessionsView`. */
export interface SessionsViewProps {
  readonly conn: Connection;
  readonly index: SessionIndex;
  onOpen(id: string): void;
}

/** The list of sessions with its filters and the create form. */
export function SessionsView({ conn, index, onOpen }: SessionsViewProps): JSX.Element {
  useSubscription(index);
  // The URL is the source of truth; the index keeps its pages when it already shows this query.
  const [query, setQueryState] = useState<ListQuery>(() => queryFromHash(location.hash));
  const [showCreate, setShowCreate] = useState(false);
  const [text, setText] = useState({ q: query.q, type: query.type, tenant: query.tenant, tag: query.tag });
  const typing = useRef<ReturnType<typeof setTimeout> | null>(null);
  // The debounced apply must start from the query as it is when it fires, not as it was at the
  // key press: a state chip clicked in between would otherwise be undone.
  const latest = useRef(query);
  latest.current = query;

  index.setQuery(query);
  const apply = (q: ListQuery): void => {
    const hash = hashOf(q);
    if (location.hash !== hash && !(location.hash === '' && hash === '#/')) history.replaceState(history.state, '', hash);
    latest.current = q;
    setQueryState(q);
  };
  // A hash edited by hand (or a link to another query) while the list is open.
  useEffect(() => {
    const onHash = (): void => {
      if (parseRoute(location.hash).page !== 'sessions') return; // another page: this view is leaving
      const q = queryFromHash(location.hash);
      setQueryState(q);
      setText({ q: q.q, type: q.type, tenant: q.tenant, tag: q.tag });
    };
    addEventListener('hashchange', onHash);
    return () => { removeEventListener('hashchange', onHash); if (typing.current) clearTimeout(typing.current); };
  }, []);
  const typeInto = (field: 'q' | 'type' | 'tenant' | 'tag', value: string): void => {
    const next = { ...text, [field]: value };
    setText(next);
    if (typing.current) clearTimeout(typing.current);
    typing.current = setTimeout(() => { typing.current = null; apply({ ...latest.current, ...next }); }, TYPING_DEBOUNCE_MS);
  };

  const counts = index.counts;
  const fmt = (n: number | null | undefined): string => (n === null || n === undefined ? '…' : n.toLocaleString('en-US'));
  const all = counts ? STATES.reduce((n, s) => n + counts[s], 0) : null;
  const toggleState = (s: SessionState): void => {
    const states = query.states.includes(s) ? query.states.filter((x) => x !== s) : STATES.filter((x) => x === s || query.states.includes(x));
    apply({ ...query, states });
  };
  const onSort = (key: SortKey): void => {
    apply({ ...query, sort: key, desc: query.sort === key ? !query.desc : defaultDesc(key) });
  };
  const types = [...index.types].sort();
  const matching = index.total === null ? '…' : `${fmt(index.total)}${index.totalCapped ? '+' : ''}`;

  return (
    <section class="sessions-view" aria-labelledby="sessions-title">
      <div class="view-head">
        <h1 id="sessions-title">Sessions</h1>
        <p class="summary" aria-live="polite" data-testid="sessions-summary">
          {isFiltered(query) ? `${matching} of ${fmt(all)} sessions` : `${fmt(all)} sessions`}
          {index.loading && ' · loading…'}
        </p>
        <button type="button" onClick={() => { index.reload(); }} title="Read the counts and the rows in view again">Refresh</button>
        <button type="button" class="primary" aria-expanded={showCreate} aria-controls="create-form" onClick={() => { setShowCreate(!showCreate); }}>
          New session
        </button>
      </div>
      {showCreate && <CreateSession conn={conn} index={index} onCreated={(id) => { setShowCreate(false); onOpen(id); }} />}
      {index.error && <p class="error" role="alert">{index.error}</p>}
      <Waitpoints conn={conn} quiet />
      <div class="filters" role="search" aria-label="Filter sessions">
        <div class="state-chips" role="group" aria-label="Filter by state">
          <button type="button" class={`chip${query.states.length === 0 ? ' on' : ''}`} aria-pressed={query.states.length === 0}
            onClick={() => { apply({ ...query, states: [] }); }}>
            all <span class="count">{fmt(all)}</span>
          </button>
          {STATES.map((s) => (
            <button key={s} type="button" class={`chip state-${s}${query.states.includes(s) ? ' on' : ''}`} aria-pressed={query.states.includes(s)}
              data-count-state={s} onClick={() => { toggleState(s); }}>
              {s} <span class="count">{fmt(counts?.[s])}</span>
            </button>
          ))}
        </div>
        <label class="field grow">
          <span>Session id starts with</span>
          <input type="search" value={text.q} placeholder="e.g. support-" aria-label="Filter by session id"
            onInput={(e) => { typeInto('q', e.currentTarget.value); }} />
        </label>
        <label class="field">
          <span>Type</span>
          <input type="search" list="list-types" value={text.type} placeholder="any type" aria-label="Filter by agent type"
            onInput={(e) => { typeInto('type', e.currentTarget.value); }} />
          <datalist id="list-types">{types.map((t) => <option key={t} value={t} />)}</datalist>
        </label>
        <label class="field">
          <span>Tenant</span>
          <input type="search" value={text.tenant} placeholder="any tenant" aria-label="Filter by tenant"
            onInput={(e) => { typeInto('tenant', e.currentTarget.value); }} />
        </label>
        <label class="field">
          <span>Tag</span>
          <input type="search" value={text.tag} placeholder="any tag" aria-label="Filter by tag"
            onInput={(e) => { typeInto('tag', e.currentTarget.value); }} />
        </label>
        <label class="field">
          <span>Last activity</span>
          <select value={query.active} aria-label="Filter by last activity" onChange={(e) => { apply({ ...query, active: e.currentTarget.value }); }}>
            <option value="">any time</option>
            {Object.keys(ACTIVITY_WINDOWS).map((k) => <option key={k} value={k}>{ACTIVITY_LABELS[k] ?? k}</option>)}
          </select>
        </label>
      </div>
      <SessionTable index={index} sort={query.sort} desc={query.desc} onSort={onSort} onOpen={onOpen} />
    </section>
  );
}

function CreateSession({ conn, index, onCreated }: { conn: Connection; index: SessionIndex; onCreated(id: string): void }): JSX.Element {
  const [id, setId] = useState('');
  const [type, setType] = useState(() => [...index.types].sort()[0] ?? 'echo');
  const [state, setState] = useState('');
  const action = useAction();
  const first = useRef<HTMLInputElement>(null);
  useEffect(() => { first.current?.focus(); }, []);
  const submit = (e: Event): void => {
    e.preventDefault();
    void action.run(async () => {
      const initial = state.trim() ? parseBody(state) : undefined;
      const r = await conn.client.createAgent({ agentId: id.trim(), type: type.trim(), ...(initial !== undefined ? { state: initial } : {}) });
      index.upsert(r.agentId, { type: r.type, state: r.state, updatedAt: Date.now() });
      onCreated(r.agentId);
      return `Created ${r.agentId}`;
    });
  };
  return (
    <form id="create-form" class="card create-form" onSubmit={submit} aria-label="Create a session">
      <label class="field">
        <span>Session id</span>
        <input ref={first} required maxLength={128} pattern="[^.*>\s]+" value={id} aria-label="New session id"
          title="1–128 characters; no '.', '*', '>' or spaces" onInput={(e) => { setId(e.currentTarget.value); }} />
      </label>
      <label class="field">
        <span>Agent type</span>
        <input required list="known-types" value={type} aria-label="New session agent type" onInput={(e) => { setType(e.currentTarget.value); }} />
        <datalist id="known-types">{[...index.types].sort().map((t) => <option key={t} value={t} />)}</datalist>
      </label>
      <label class="field grow">
        <span>Initial user state (JSON, optional)</span>
        <input value={state} placeholder='{"turns": 0}' aria-label="Initial user state" onInput={(e) => { setState(e.currentTarget.value); }} />
      </label>
      <button type="submit" class="primary" disabled={action.busy}>Create session</button>
      <ActionResult action={action} />
    </form>
  );
}
