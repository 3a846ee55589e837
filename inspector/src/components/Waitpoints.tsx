/**
 * Pending waitpoints (sessions waiting for a person), each with an answer form: a JSON text area
 * started from the schema's shape and checked against it before sending (`waitpointForm.ts`; the
 * server has the last word), plus Cancel. Polls `listWaitpoints` while shown.
 */
import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { Connection } from '../connection.js';
import { describeError } from '../connection.js';
import { formatRelative } from '../format.js';
import { useAction, useNow } from '../hooks.js';
import { readAnswer, skeletonOf } from '../waitpointForm.js';
import { ActionResult } from './ActionResult.js';

/** A pending waitpoint as `listWaitpoints` returns it. */
type Waitpoint = Awaited<ReturnType<Connection['client']['listWaitpoints']>>['waitpoints'][number];

const POLL_MS = 3000;

/** Pending waitpoints: all of them, or one session's (`agentId`). Renders nothing when there are none and `quiet`. */
export function Waitpoints({ conn, agentId, quiet, onChanged }: { conn: Connection; agentId?: string; quiet?: boolean; onChanged?(): void }): JSX.Element | null {
  const [items, setItems] = useState<readonly Waitpoint[]>([]);
  const [error, setError] = useState('');
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    const load = (): void => {
      conn.client.listWaitpoints({ ...(agentId ? { agentId } : {}), limit: 100 }).then(
        (r) => { if (live) { setItems(r.waitpoints); setError(''); } },
        (e: unknown) => { if (live) setError(describeError(e)); },
      );
    };
    load();
    const t = setInterval(load, POLL_MS);
    return () => { live = false; clearInterval(t); };
  }, [conn, agentId, tick]);
  const changed = (): void => { setTick((n) => n + 1); onChanged?.(); };
  if (items.length === 0 && quiet && !error) return null;
  return (
    <section class="card waitpoints" aria-labelledby={`wp-title-${agentId ?? 'all'}`}>
      <h2 id={`wp-title-${agentId ?? 'all'}`}>Pending waitpoints <span class="count">{items.length}</span></h2>
      {error && <p class="error" role="alert">{error}</p>}
      {items.length === 0 ? <p class="muted">No session is waiting for an answer.</p>
        : <ul class="waitpoint-list">{items.map((w) => <Item key={w.id} conn={conn} w={w} showSession={!agentId} onChanged={changed} />)}</ul>}
    </section>
  );
}

function Item({ conn, w, showSession, onChanged }: { conn: Connection; w: Waitpoint; showSession: boolean; onChanged(): void }): JSX.Element {
  const now = useNow();
  const [text, setText] = useState(() => JSON.stringify(skeletonOf(w.schema), null, 2));
  const [problem, setProblem] = useState('');
  const action = useAction();
  const submit = (e: Event): void => {
    e.preventDefault();
    const a = readAnswer(w.schema, text);
    if (!a.ok) { setProblem(a.problem); return; }
    setProblem('');
    void action.run(async () => {
      const r = await conn.client.completeWaitpoint({ id: w.id, value: a.value });
      onChanged();
      return r.duplicate ? 'Already answered with this value' : `Answered: ${r.agentId} resumes`;
    });
  };
  return (
    <li>
      <form class="waitpoint" onSubmit={submit} aria-label={`Answer waitpoint ${w.id}`}>
        <div class="wp__head">
          {showSession && <a href={`#/s/${encodeURIComponent(w.agentId)}`}>{w.agentId}</a>}
          <span class="muted">{w.agentType}</span>
          {w.tags.map((t) => <span key={t} class="badge">{t}</span>)}
          <span class="muted">asked {formatRelative(w.createdAt, now)}</span>
          {w.expiresAt !== null && <span class="muted">times out {formatRelative(w.expiresAt, now)}{w.hasDefault ? ' (with its default)' : ''}</span>}
        </div>
        <details>
          <summary>Schema</summary>
          <pre class="body">{JSON.stringify(w.schema, null, 2)}</pre>
        </details>
        <label class="field grow">
          <span>Answer (JSON)</span>
          <textarea rows={4} value={text} aria-label={`Answer of waitpoint ${w.id}`} aria-invalid={problem ? true : undefined}
            onInput={(e) => { setText(e.currentTarget.value); setProblem(''); }} />
        </label>
        {problem && <p class="error" role="alert">{problem}</p>}
        <div class="wp__actions">
          <button type="submit" class="primary small" disabled={action.busy}>Send answer</button>
          <button type="button" class="small" disabled={action.busy}
            onClick={() => { void action.run(async () => { await conn.client.cancelWaitpoint({ id: w.id }); onChanged(); return 'Cancelled'; }); }}>
            Cancel waitpoint
          </button>
        </div>
        <ActionResult action={action} />
      </form>
    </li>
  );
}
