/**
 * The sequence view: messages in → handler calls → outputs out, in order, for the newest
 * `SEQUENCE_STEPS` steps of a session (their frames, `getTransitions { frames: true }`, name the
 * messages each call ran and what each run sent). Re-read when the session gains a step. During
 * time travel the rows after the step shown are dimmed.
 */
import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { describeError, type Connection } from '../connection.js';
import { formatPreciseTime, preview } from '../format.js';
import type { HistoryMessage, Transition } from '../sessionFeed.js';
import { sequenceOf, type SequenceRow } from '../timeTravel.js';

/** Steps whose frames the view reads (the newest). */
export const SEQUENCE_STEPS = 500;

/** Props of `SequencePanel`. */
export interface SequencePanelProps {
  readonly conn: Connection;
  readonly agentId: string;
  readonly history: readonly HistoryMessage[];
  /** The feed's transitions: their count says when to re-read, their times where to start. */
  readonly transitions: readonly Transition[];
  /** Time travel: rows after this time are dimmed. */
  readonly asOf: number | null;
}

function Row({ r, later }: { r: SequenceRow; later: boolean }): JSX.Element {
  const cls = `seq-row seq-${r.kind}${later ? ' seq-later' : ''}`;
  const time = <time class="muted">{formatPreciseTime(r.at)}</time>;
  switch (r.kind) {
    case 'in':
      return <li class={cls} data-kind="in">{time} <span class="seq-arrow" aria-label="in">→</span> <span class="kind">{r.msgKind}</span> <span class="muted">#{r.seq}</span>{r.from && <span class="muted"> from {r.from}</span>} <code class="body">{preview(r.body, 80)}</code>{r.fate !== 'handled' && <span class={`badge fate fate-${r.fate}`}>{r.fate}</span>}</li>;
    case 'call':
      return <li class={cls} data-kind="call">{time} <span class="seq-arrow" aria-label="handler call">⚙</span> <strong>handler call {r.number}</strong> <span class="muted">run {r.runId}</span> runs {r.seqs.length ? r.seqs.map((s) => `#${s}`).join(', ') : ''}{r.wake ? `${r.seqs.length ? ' + ' : ''}wake` : ''}</li>;
    case 'out':
      return <li class={cls} data-kind="out">{time} <span class="seq-arrow" aria-label="out">←</span> <span class="kind">{r.outKind}</span> <span class="muted">run {r.runId}</span> <code class="body">{preview(r.body, 80)}</code></li>;
    case 'state':
      return <li class={cls} data-kind="state">{time} <span class={`state-pill state-${r.to.split('.')[0]}`}>{r.to}</span> <span class="muted">{r.event}</span></li>;
  }
}

/** The sequence of one session. */
export function SequencePanel({ conn, agentId, history, transitions, asOf }: SequencePanelProps): JSX.Element {
  const [steps, setSteps] = useState<readonly (Transition & { frame?: unknown })[]>([]);
  const [error, setError] = useState('');
  const count = transitions.length;
  const from = count > SEQUENCE_STEPS ? transitions[count - SEQUENCE_STEPS]!.at - 1 : undefined;
  useEffect(() => {
    let live = true;
    conn.client.getTransitions({ agentId, frames: true, limit: 1000, ...(from !== undefined ? { after: from } : {}) }).then(
      (r) => { if (live) { setSteps(r.transitions); setError(''); } },
      (e: unknown) => { if (live) setError(describeError(e)); },
    );
    return () => { live = false; };
  }, [conn, agentId, count, from]);
  const oldest = steps[0]?.at ?? -Infinity;
  const rows = sequenceOf(history.filter((m) => m.at >= oldest), steps);
  if (error) return <p class="error" role="alert">{error}</p>;
  if (rows.length === 0) return <p class="muted">Nothing in or out yet.</p>;
  return (
    <ol class="sequence" data-testid="sequence">
      {rows.map((r) => <Row key={r.key} r={r} later={asOf !== null && r.at > asOf} />)}
    </ol>
  );
}
