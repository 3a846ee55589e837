/** A session's dead letters (batches that failed for good, messages to a stopped session), with replay. */
import type { JSX } from 'preact';
import type { Connection } from '../connection.js';
import { formatTime, preview } from '../format.js';
import { useAction } from '../hooks.js';
import type { DeadLetter } from '../sessionFeed.js';
import { ActionResult } from './ActionResult.js';

/** The dead-letter list of one session. */
export function DeadLetters({ conn, items, onChanged, asOf = null }: { conn: Connection; items: readonly DeadLetter[]; onChanged(): void; asOf?: number | null }): JSX.Element {
  // Time travel: the dead letters made by then, without replay (it acts on the live session).
  const shown = asOf === null ? items : items.filter((d) => d.createdAt <= asOf);
  if (shown.length === 0) return <p class="muted">{asOf === null ? 'No dead letters.' : 'No dead letters by then.'}</p>;
  return <ul class="dead-letters">{shown.map((d) => <Item key={d.id} conn={conn} d={d} onChanged={onChanged} readOnly={asOf !== null} />)}</ul>;
}

function Item({ conn, d, onChanged, readOnly }: { conn: Connection; d: DeadLetter; onChanged(): void; readOnly: boolean }): JSX.Element {
  const action = useAction();
  return (
    <li>
      <div class="dl__head">
        <span class="badge outcome-dead-letter">{d.reason}</span>
        <time class="muted">{formatTime(d.createdAt)}</time>
        <span class="muted">{d.attempts} attempt{d.attempts === 1 ? '' : 's'}</span>
        {readOnly ? null : d.replayedAt !== null
          ? <span class="muted">replayed {formatTime(d.replayedAt)}</span>
          : (
            <button type="button" class="small" disabled={action.busy} aria-label={`Replay dead letter ${d.id}`}
              onClick={() => { void action.run(async () => { const r = await conn.client.replayDeadLetter({ id: d.id }); onChanged(); return `Replayed ${r.published} message(s)`; }); }}>
              Replay
            </button>
          )}
      </div>
      {d.error && <div class="error-text">{d.error}</div>}
      <code class="body" title={preview(d.payload, 2000)}>{preview(d.payload, 160)}</code>
      <ActionResult action={action} />
    </li>
  );
}
