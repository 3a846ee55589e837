/** The in-place outcome of one control: the error (role=alert, code and message) or a short success line. */
import type { JSX } from 'preact';
import type { ActionState } from '../hooks.js';

/** Renders `action`'s error or success text next to the control that caused it. */
export function ActionResult({ action }: { action: ActionState }): JSX.Element {
  return (
    <div class="action-result">
      {action.error && <p class="error" role="alert">{action.error}</p>}
      <p class="ok" role="status">{action.ok}</p>
    </div>
  );
}
