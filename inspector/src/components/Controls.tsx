/**
 * The session's controls, each a small form calling one control-API method and showing its
 * outcome in place: send a message, send mail, sleep (until / duration / events / mail
 * priority), wake, interrupt, stop (with a confirming second press), schedule a cron task and
 * publish an event. Every input has a label; every button says what it does.
 */
import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { Connection } from '../connection.js';
import { formatTime, parseDuration } from '../format.js';
import { parseBody, useAction } from '../hooks.js';
import type { AgentView } from '../sessionFeed.js';
import { ActionResult } from './ActionResult.js';

const PRIORITIES = ['low', 'normal', 'high', 'urgent'] as const;
type Priority = (typeof PRIORITIES)[number];

/** Props of `Controls`. */
export interface ControlsProps {
  readonly conn: Connection;
  readonly agentId: string;
  readonly view: AgentView | null;
  /** Called after a successful call, so the view re-reads the session. */
  onChanged(): void;
  /** Time travel is on: the controls act on the live session, so they are disabled and say why. */
  readonly disabled?: boolean;
}

function PrioritySelect({ value, onChange, label, allowNone = false }: { value: string; onChange(v: string): void; label: string; allowNone?: boolean }): JSX.Element {
  return (
    <label class="field">
      <span>{label}</span>
      <select value={value} aria-label={label} onChange={(e) => { onChange(e.currentTarget.value); }}>
        {allowNone && <option value="">none</option>}
        {PRIORITIES.map((p) => <option key={p} value={p}>{p}</option>)}
      </select>
    </label>
  );
}

function splitList(text: string): string[] {
  return text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
}

/** All controls of one session. */
export function Controls({ conn, agentId, view, onChanged, disabled = false }: ControlsProps): JSX.Element {
  const api = (): Connection['client'] => conn.client;
  const stopped = view?.state === 'stopped';

  // ---- message
  const [message, setMessage] = useState('');
  const [msgPriority, setMsgPriority] = useState<Priority>('normal');
  const sendAction = useAction();
  // ---- mail
  const [mailBody, setMailBody] = useState('');
  const [mailFrom, setMailFrom] = useState('inspector');
  const [mailPriority, setMailPriority] = useState<Priority>('high');
  const mailAction = useAction();
  // ---- sleep
  const [until, setUntil] = useState('');
  const [duration, setDuration] = useState('');
  const [events, setEvents] = useState('');
  const [wakeMail, setWakeMail] = useState('');
  const sleepAction = useAction();
  // ---- lifecycle
  const lifeAction = useAction();
  const [confirmStop, setConfirmStop] = useState(false);
  useEffect(() => {
    if (!confirmStop) return undefined;
    const t = setTimeout(() => { setConfirmStop(false); }, 5000);
    return () => { clearTimeout(t); };
  }, [confirmStop]);
  // ---- task
  const [cron, setCron] = useState('*/5 * * * *');
  const [tz, setTz] = useState(() => Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC');
  const [taskBody, setTaskBody] = useState('{"job": "check"}');
  const taskAction = useAction();
  // ---- event
  const [eventType, setEventType] = useState('');
  const [eventData, setEventData] = useState('');
  const [eventPriority, setEventPriority] = useState<Priority>('normal');
  const eventAction = useAction();

  const done = (text: string): string => { onChanged(); return text; };

  return (
    <fieldset class="controls" disabled={disabled} data-testid="controls" aria-describedby={disabled ? 'controls-live-only' : undefined}>
      <legend class="visually-hidden">Session controls</legend>
      {disabled && <p id="controls-live-only" class="hint" data-testid="controls-live-only">These act on the live session: go back to live to use them.</p>}
      <form aria-labelledby="c-msg" onSubmit={(e) => {
        e.preventDefault();
        void sendAction.run(async () => {
          const r = await api().sendMessage({ agentId, message: parseBody(message), priority: msgPriority });
          setMessage('');
          return done(`Sent as #${r.seq}`);
        });
      }}>
        <h3 id="c-msg">Send a message</h3>
        <label class="field">
          <span>Message (text or JSON)</span>
          <textarea rows={2} required value={message} aria-label="Message" onInput={(e) => { setMessage(e.currentTarget.value); }} />
        </label>
        <div class="row">
          <PrioritySelect label="Message priority" value={msgPriority} onChange={(v) => { setMsgPriority(v as Priority); }} />
          <button type="submit" class="primary" disabled={sendAction.busy}>Send message</button>
        </div>
        <ActionResult action={sendAction} />
      </form>

      <form aria-labelledby="c-mail" onSubmit={(e) => {
        e.preventDefault();
        void mailAction.run(async () => {
          const r = await api().sendMail({ to: agentId, body: parseBody(mailBody), priority: mailPriority, ...(mailFrom.trim() ? { from: mailFrom.trim() } : {}) });
          setMailBody('');
          return done(`Mail sent as #${r.seq}`);
        });
      }}>
        <h3 id="c-mail">Send mail</h3>
        <label class="field">
          <span>Mail body (text or JSON)</span>
          <textarea rows={2} required value={mailBody} aria-label="Mail body" onInput={(e) => { setMailBody(e.currentTarget.value); }} />
        </label>
        <div class="row">
          <label class="field">
            <span>From</span>
            <input value={mailFrom} aria-label="Mail sender" onInput={(e) => { setMailFrom(e.currentTarget.value); }} />
          </label>
          <PrioritySelect label="Mail priority" value={mailPriority} onChange={(v) => { setMailPriority(v as Priority); }} />
          <button type="submit" class="primary" disabled={mailAction.busy}>Send mail</button>
        </div>
        <ActionResult action={mailAction} />
      </form>

      <form aria-labelledby="c-sleep" onSubmit={(e) => {
        e.preventDefault();
        void sleepAction.run(async () => {
          if (until && duration.trim()) throw new Error('Give either a time or a duration, not both.');
          const durationMs = duration.trim() ? parseDuration(duration) : null;
          if (duration.trim() && durationMs === null) throw new Error(`"${duration}" is not a duration: try 90s, 10m, 1h30m or milliseconds.`);
          const wakeEvents = splitList(events);
          const r = await api().sleepAgent({
            agentId,
            ...(until ? { untilTime: new Date(until).toISOString() } : {}),
            ...(durationMs !== null ? { durationMs } : {}),
            ...(wakeEvents.length ? { wakeEvents } : {}),
            ...(wakeMail ? { wakeOnMailPriority: wakeMail as Priority } : {}),
          });
          return done(`Now ${r.state}${r.wakeAt !== null ? `; wakes at ${formatTime(r.wakeAt)}` : ''}`);
        });
      }}>
        <h3 id="c-sleep">Sleep</h3>
        <div class="row">
          <label class="field">
            <span>Until</span>
            <input type="datetime-local" step={1} value={until} aria-label="Sleep until" onInput={(e) => { setUntil(e.currentTarget.value); }} />
          </label>
          <label class="field">
            <span>or for</span>
            <input value={duration} placeholder="10m, 1h30m" aria-label="Sleep duration" onInput={(e) => { setDuration(e.currentTarget.value); }} />
          </label>
        </div>
        <div class="row">
          <label class="field grow">
            <span>Wake on events</span>
            <input value={events} placeholder="invoice.paid, alert" aria-label="Wake on events" onInput={(e) => { setEvents(e.currentTarget.value); }} />
          </label>
          <PrioritySelect label="Wake on mail priority" value={wakeMail} allowNone onChange={setWakeMail} />
        </div>
        <button type="submit" class="primary" disabled={sleepAction.busy || stopped}>Sleep</button>
        <ActionResult action={sleepAction} />
      </form>

      <div class="lifecycle" role="group" aria-labelledby="c-life">
        <h3 id="c-life">Lifecycle</h3>
        <div class="row">
          <button type="button" disabled={lifeAction.busy || stopped} onClick={() => {
            void lifeAction.run(async () => done(`Now ${(await api().wakeAgent({ agentId })).state}`));
          }}>Wake</button>
          <button type="button" disabled={lifeAction.busy || stopped} onClick={() => {
            void lifeAction.run(async () => {
              const r = await api().interruptAgent({ agentId, reason: 'interrupted from the inspector' });
              return done(r.interrupted ? 'Interrupted the running handler' : `Nothing to interrupt (${r.state})`);
            });
          }}>Interrupt</button>
          <button type="button" class="danger" disabled={lifeAction.busy || stopped} aria-live="polite" onClick={() => {
            if (!confirmStop) { setConfirmStop(true); return; }
            setConfirmStop(false);
            void lifeAction.run(async () => done(`Now ${(await api().stopAgent({ agentId, reason: 'stopped from the inspector' })).state}`));
          }}>{confirmStop ? 'Confirm stop' : 'Stop'}</button>
        </div>
        {confirmStop && <p class="hint">Stopping is final: later messages sent through the API are refused (SESSION_STOPPED); ones published straight to NATS are dead-lettered. Press again to confirm.</p>}
        <ActionResult action={lifeAction} />
      </div>

      <form aria-labelledby="c-task" onSubmit={(e) => {
        e.preventDefault();
        void taskAction.run(async () => {
          const r = await api().scheduleTask({ agentId, task: parseBody(taskBody), schedule: cron.trim(), timezone: tz.trim() || 'UTC' });
          return done(`Scheduled ${r.taskId}${r.nextRunAt !== null ? `; first run ${formatTime(r.nextRunAt)}` : ''}`);
        });
      }}>
        <h3 id="c-task">Schedule a task</h3>
        <div class="row">
          <label class="field">
            <span>Cron</span>
            <input required value={cron} aria-label="Cron expression" onInput={(e) => { setCron(e.currentTarget.value); }} />
          </label>
          <label class="field">
            <span>Time zone</span>
            <input value={tz} aria-label="Time zone" onInput={(e) => { setTz(e.currentTarget.value); }} />
          </label>
        </div>
        <label class="field">
          <span>Task body (text or JSON)</span>
          <input value={taskBody} aria-label="Task body" onInput={(e) => { setTaskBody(e.currentTarget.value); }} />
        </label>
        <button type="submit" class="primary" disabled={taskAction.busy || stopped}>Schedule task</button>
        <ActionResult action={taskAction} />
      </form>

      <form aria-labelledby="c-event" onSubmit={(e) => {
        e.preventDefault();
        void eventAction.run(async () => {
          const data = eventData.trim() ? parseBody(eventData) : undefined;
          const r = await api().publishEvent({ type: eventType.trim(), priority: eventPriority, ...(data !== undefined ? { data } : {}) });
          return done(`Published #${r.seq} to ${r.recipients} session${r.recipients === 1 ? '' : 's'}`);
        });
      }}>
        <h3 id="c-event">Publish an event</h3>
        <div class="row">
          <label class="field grow">
            <span>Event type</span>
            <input required value={eventType} placeholder="invoice.paid" aria-label="Event type" onInput={(e) => { setEventType(e.currentTarget.value); }} />
          </label>
          <PrioritySelect label="Event priority" value={eventPriority} onChange={(v) => { setEventPriority(v as Priority); }} />
        </div>
        <label class="field">
          <span>Event data (text or JSON, optional)</span>
          <input value={eventData} aria-label="Event data" onInput={(e) => { setEventData(e.currentTarget.value); }} />
        </label>
        <button type="submit" class="primary" disabled={eventAction.busy}>Publish event</button>
        <ActionResult action={eventAction} />
      </form>
    </fieldset>
  );
}
