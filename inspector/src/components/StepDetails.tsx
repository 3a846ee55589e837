/**
 * What time travel adds to the session page: the waitpoint a past step waited on (read only: the
 * live one is answered in the live view), the changes from the step before, and the event object
 * that caused the step.
 */
import type { JSX } from 'preact';
import { preview } from '../format.js';
import type { DiffEntry } from '../timeTravel.js';
import { JsonTree } from './JsonTree.js';

/** The waitpoint of a past step. */
export function PastWaitpoint({ waitpoint }: { waitpoint: { id: string; schema: unknown; hasDefault: boolean; default: unknown; tags: readonly string[] } }): JSX.Element {
  return (
    <div class="card past-waitpoint" data-testid="past-waitpoint">
      <h3>Waitpoint</h3>
      <dl class="kv">
        <dt>Id</dt><dd><code>{waitpoint.id}</code></dd>
        <dt>Tags</dt><dd>{waitpoint.tags.length ? waitpoint.tags.map((t) => <span key={t} class="tag">{t}</span>) : <span class="muted">none</span>}</dd>
        <dt>Default</dt><dd>{waitpoint.hasDefault ? <code>{preview(waitpoint.default, 120)}</code> : <span class="muted">none</span>}</dd>
      </dl>
      <JsonTree name="schema" value={waitpoint.schema} openDepth={0} />
    </div>
  );
}

/** The differences from the previous step (`null`: it is the oldest step kept). */
export function ContextDiff({ diff }: { diff: readonly DiffEntry[] | null }): JSX.Element {
  if (diff === null) return <p class="muted small" data-testid="context-diff">The first step kept: nothing to compare with.</p>;
  if (diff.length === 0) return <p class="muted small" data-testid="context-diff">No change from the previous step.</p>;
  return (
    <table class="compact diff" data-testid="context-diff">
      <caption>Changes from the previous step</caption>
      <thead><tr><th scope="col">Path</th><th scope="col">Before</th><th scope="col">After</th></tr></thead>
      <tbody>
        {diff.map((d) => (
          <tr key={d.path} class={`diff-${d.kind}`}>
            <td><code>{d.path}</code></td>
            <td>{d.kind === 'added' ? <span class="muted">—</span> : <code class="diff-before">{preview(d.before, 80)}</code>}</td>
            <td>{d.kind === 'removed' ? <span class="muted">removed</span> : <code class="diff-after">{preview(d.after, 80)}</code>}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** The event object that caused the step. */
export function StepEvent({ event }: { event: unknown }): JSX.Element {
  return (
    <div data-testid="step-event">
      {event === null ? <p class="muted small">The event of this step was not recorded.</p> : <JsonTree name="event" value={event} openDepth={2} />}
    </div>
  );
}
