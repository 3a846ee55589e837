/**
 * The sessions view: counts by state (which double as state filters), id search, type filter,
 * sorting, the windowed list, and a form to create a session. The query lives in module state
 * so it survives a visit to a session and back.
 */
import type { JSX } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { Connection } from '../connection.js';
import { useAction, useSubscription, parseBody } from '../hooks.js';
import { queryRows, type Query, type SessionIndex, type SessionRow, type SortKey } from '../sessionIndex.js';
import { STATES, type SessionState } from '../states.js';
import { ActionResult } from './ActionResult.js';
import { SessionTable } from './SessionTable.js';
import { Waitpoints } from './Waitpoints.js';

/** How often (at most) the list re-filters and re-sorts while rows change underneath it. */
const REQUERY_MS = 300;

let savedQuery: Query = { states: new Set(), type: '', text: '', sort: 'id', desc: false };

/** Props of `SessionsView`. */
export interface SessionsViewProps {
  readonly conn: Connection;
  readonly index: SessionIndex;
  onOpen(id: string): void;
}

/** The list of every session with its filters and the create form. */
export function SessionsView({ conn, index, onOpen }: SessionsViewProps): JSX.Element {
  useSubscription(index);
  const [query, setQueryState] = useState<Query>(savedQuery);
  const setQuery = (q: Query): void => { savedQuery = q; setQueryState(q); };
  const [showCreate, setShowCreate] = useState(false);

  // Re-query when the query changes at once; when rows change, at most every REQUERY_MS.
  const [structure, setStructure] = useState(index.structureVersion);
  const pending = useRef<ReturnType<typeof setTimeout> | null>(null);
  useEffect(() => {
    if (index.structureVersion === structure || pending.current) return;
    pending.current = setTimeout(() => { pending.current = null; setStructure(index.structureVersion); }, REQUERY_MS);
  });
  useEffect(() => () => { if (pending.current) clearTimeout(pending.current); }, []);
  const rows: SessionRow[] = useMemo(() => queryRows(index.all, query), [query, structure, index]);

  const total = index.all.length;
  const toggleState = (s: SessionState): void => {
    const states = new Set(query.states);
    if (states.has(s)) states.delete(s); else states.add(s);
    setQuery({ ...query, states });
  };
  const onSort = (key: SortKey): void => {
    setQuery({ ...query, sort: key, desc: query.sort === key ? !query.desc : key === 'updatedAt' });
  };
  const types = [...index.types].sort();

  return (
    <section class="sessions-view" aria-labelledby="sessions-title">
      <div class="view-head">
        <h1 id="sessions-title">Sessions</h1>
        <p class="summary" aria-live="polite" data-testid="sessions-summary">
          {rows.length === total ? `${total.toLocaleString('en-US')} sessions` : `${rows.length.toLocaleString('en-US')} of ${total.toLocaleString('en-US')} sessions`}
          {index.loading && ` · loading… ${index.loaded.toLocaleString('en-US')}`}
        </p>
        <button type="button" class="primary" aria-expanded={showCreate} aria-controls="create-form" onClick={() => { setShowCreate(!showCreate); }}>
          New session
        </button>
      </div>
      {showCreate && <CreateSession conn={conn} index={index} onCreated={(id) => { setShowCreate(false); onOpen(id); }} />}
      {index.error && <p class="error" role="alert">{index.error}</p>}
      <Waitpoints conn={conn} quiet />
      <div class="filters" role="search" aria-label="Filter sessions">
        <div class="state-chips" role="group" aria-label="Filter by state">
          <button type="button" class={`chip${query.states.size === 0 ? ' on' : ''}`} aria-pressed={query.states.size === 0}
            onClick={() => { setQuery({ ...query, states: new Set() }); }}>
            all <span class="count">{total.toLocaleString('en-US')}</span>
          </button>
          {STATES.map((s) => (
            <button key={s} type="button" class={`chip state-${s}${query.states.has(s) ? ' on' : ''}`} aria-pressed={query.states.has(s)}
              data-count-state={s} onClick={() => { toggleState(s); }}>
              {s} <span class="count">{index.counts[s].toLocaleString('en-US')}</span>
            </button>
          ))}
        </div>
        <label class="field grow">
          <span>Session id contains</span>
          <input type="search" value={query.text} placeholder="e.g. support-" aria-label="Filter by session id"
            onInput={(e) => { setQuery({ ...query, text: e.currentTarget.value }); }} />
        </label>
        <label class="field">
          <span>Type</span>
          <select value={query.type} aria-label="Filter by agent type" onChange={(e) => { setQuery({ ...query, type: e.currentTarget.value }); }}>
            <option value="">any type</option>
            {types.map((t) => <option key={t} value={t}>{t}</option>)}
          </select>
        </label>
      </div>
      <SessionTable rows={rows} index={index} sort={query.sort} desc={query.desc} onSort={onSort} onOpen={onOpen} />
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
