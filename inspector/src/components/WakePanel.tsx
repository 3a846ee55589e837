/**
 * What wakes a session and when: the sleep deadline with a live countdown, the events and the
 * mail priority that wake it early, a wait's event, sender and timeout; and its cron tasks with
 * their next run and a cancel button each.
 */
import type { JSX } from 'preact';
import type { Connection } from '../connection.js';
import { formatRelative, formatTime, preview } from '../format.js';
import { useAction, useNow } from '../hooks.js';
import type { AgentView, Task } from '../sessionFeed.js';
import { ActionResult } from './ActionResult.js';

/** Props of `WakePanel`. */
export interface WakePanelProps {
  readonly conn: Connection;
  readonly view: AgentView;
  readonly tasks: readonly Task[];
  onChanged(): void;
  /** Time travel: the time of the step shown; countdowns count from it and cron tasks (live only) are left out. */
  readonly asOf?: number | null;
}

/** Wake conditions and cron tasks of one session. */
export function WakePanel({ conn, view, tasks, onChanged, asOf = null }: WakePanelProps): JSX.Element {
  const clock = useNow(1000);
  const now = asOf ?? clock;
  const { wake, wait } = view;
  return (
    <div class="wake-panel">
      {view.state === 'sleeping' && wake ? (
        <dl class="kv" data-testid="wake-conditions">
          <dt>Wakes at</dt>
          <dd>{wake.until !== null
            ? <><time dateTime={new Date(wake.until).toISOString()}>{formatTime(wake.until, now)}</time> <span class="countdown" data-testid="wake-countdown">{formatRelative(wake.until, now)}</span></>
            : <span class="muted">no time set (events, mail or wakeAgent only)</span>}</dd>
          <dt>On events</dt>
          <dd>{wake.events.length ? wake.events.map((e) => <span key={e} class="tag">{e}</span>) : <span class="muted">none</span>}</dd>
          <dt>On mail</dt>
          <dd>{wake.mailPriority ? <span>priority <span class={`prio prio-${wake.mailPriority}`}>{wake.mailPriority}</span> or above</span> : <span class="muted">no threshold</span>}</dd>
        </dl>
      ) : view.state === 'waiting' && wait ? (
        <dl class="kv" data-testid="wake-conditions">
          <dt>Waiting for</dt>
          <dd>{wait.event ? <>event <span class="tag">{wait.event}</span></> : null}{wait.replyFrom ? <> reply from <span class="tag">{wait.replyFrom}</span></> : null}</dd>
          <dt>Times out</dt>
          <dd>{wait.timeoutAt !== null ? <>{formatTime(wait.timeoutAt, now)} <span class="countdown">{formatRelative(wait.timeoutAt, now)}</span></> : <span class="muted">never</span>}</dd>
        </dl>
      ) : <p class="muted" data-testid="wake-none">Not sleeping or waiting.</p>}
      {asOf !== null ? <p class="muted small">Times are relative to that step. Cron tasks are shown live only.</p> : <>
      <h3>Cron tasks</h3>
      {tasks.length === 0 ? <p class="muted">None scheduled.</p> : (
        <ul class="tasks">
          {tasks.map((t) => <TaskRow key={t.taskId} conn={conn} task={t} now={now} onChanged={onChanged} />)}
        </ul>
      )}
      </>}
    </div>
  );
}

function TaskRow({ conn, task, now, onChanged }: { conn: Connection; task: Task; now: number; onChanged(): void }): JSX.Element {
  const action = useAction();
  return (
    <li data-task={task.taskId}>
      <div class="task__main">
        <code>{task.schedule}</code> <span class="muted">{task.timezone}</span>
        <span class="task__next">next {task.nextRunAt !== null ? `${formatTime(task.nextRunAt, now)} (${formatRelative(task.nextRunAt, now)})` : '—'}</span>
        <button type="button" class="small danger" disabled={action.busy} aria-label={`Cancel task ${task.taskId}`}
          onClick={() => { void action.run(async () => { await conn.client.cancelTask({ taskId: task.taskId }); onChanged(); return 'Cancelled'; }); }}>
          Cancel
        </button>
      </div>
      <div class="muted small">{task.taskId} · task {preview(task.task, 60)}{task.lastRunAt !== null ? ` · last ran ${formatRelative(task.lastRunAt, now)}` : ''}</div>
      <ActionResult action={action} />
    </li>
  );
}
