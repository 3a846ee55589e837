/**
 * The session view: statechart, timeline, wake conditions and cron tasks, mailbox, user state and
 * context, history by handler call, dead letters, live output and the sequence view, and the
 * controls. Data comes from a `SessionFeed` for this session.
 *
 * Time travel: scrubbing the timeline to a past entry shows the whole session as it was then
 * (`getSessionAt` for the step at or before the entry): every panel says "as of step N", a banner
 * leads back to live, the context panel lists the changes from the step before and the event
 * object of the step, and the controls (which act on the live session) are disabled.
 */
import type { JSX } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { ResultOf } from '../../../client/index.js';
import graph from 'virtual:session-machine';
import { describeError, type Connection } from '../connection.js';
import { formatPreciseTime, formatRelative, formatTime, preview } from '../format.js';
import { useAction, useNow, useSubscription } from '../hooks.js';
import { SessionFeed, type AgentView } from '../sessionFeed.js';
import type { LastTransition } from '../statechart/graph.js';
import { Statechart } from '../statechart/Statechart.js';
import { forkPointOf, timelineItems, type TimelineItem } from '../timelineItems.js';
import { diffValues, stepOfItem, type StepRef } from '../timeTravel.js';
import { ActionResult } from './ActionResult.js';
import { Controls } from './Controls.js';
import { DeadLetters } from './DeadLetters.js';
import { HistoryPanel } from './HistoryPanel.js';
import { JsonTree } from './JsonTree.js';
import { MailboxPanel } from './MailboxPanel.js';
import { Timeline } from './Timeline.js';
import { WakePanel } from './WakePanel.js';
import { BudgetPanel } from './BudgetPanel.js';
import { Waitpoints } from './Waitpoints.js';
import { SequencePanel } from './SequencePanel.js';
import { ContextDiff, PastWaitpoint, StepEvent } from './StepDetails.js';

function Panel({ id, title, area, asOf, children }: { id: string; title: string; area: string; asOf?: string | null; children: JSX.Element | JSX.Element[] | null | false }): JSX.Element {
  return (
    <section class={`panel area-${area}${asOf ? ' is-past' : ''}`} aria-labelledby={id} data-panel={area}>
      <h2 id={id}>{title}{asOf && <span class="as-of" data-testid="as-of"> · {asOf}</span>}</h2>
      {children}
    </section>
  );
}

/** `getSessionAt`'s answer. */
type PastStep = ResultOf<'getSessionAt'>;

/** Reads (and keeps) the session as of `ref`'s step; null while none is picked or it loads. */
function usePastStep(conn: Connection, agentId: string, ref: StepRef | null): { data: PastStep | null; error: string } {
  const cache = useRef(new Map<string, PastStep>());
  const [state, setState] = useState<{ key: string; data: PastStep | null; error: string }>({ key: '', data: null, error: '' });
  const key = ref ? `${agentId}|${ref.transition}|${ref.until}` : '';
  useEffect(() => { cache.current.clear(); }, [agentId]);
  useEffect(() => {
    if (!ref) return undefined;
    const hit = cache.current.get(key);
    if (hit) { setState({ key, data: hit, error: '' }); return undefined; }
    let live = true;
    conn.client.getSessionAt({ agentId, transition: ref.transition, until: ref.until }).then(
      (r) => { cache.current.set(key, r); if (live) setState({ key, data: r, error: '' }); },
      (e: unknown) => { if (live) setState({ key, data: null, error: describeError(e) }); },
    );
    return () => { live = false; };
  }, [conn, key]);
  return state.key === key ? { data: state.data, error: state.error } : { data: null, error: '' };
}

/** The context a panel shows and a diff compares: the session's own state apart from its identity. */
function contextOf(v: AgentView): Record<string, unknown> {
  return { stateValue: v.stateValue, lastSeq: v.lastSeq, wake: v.wake, wait: v.wait, mailbox: v.mailbox, lastError: v.lastError };
}

/** "last seq 12", or what a 0 means: nothing applied yet (a first turn still running commits its seq when it ends). */
function lastSeqText(v: AgentView): string {
  if (v.lastSeq > 0) return `last seq ${v.lastSeq}`;
  return v.mailbox.running > 0 ? 'first turn running, nothing applied yet' : 'no message applied yet';
}

function wakeCaption(view: AgentView, now: number): string | undefined {
  if (view.state === 'sleeping' && view.wake) {
    const parts = [view.wake.until !== null ? `wakes at ${formatTime(view.wake.until, now)} (${formatRelative(view.wake.until, now)})` : 'no wake time'];
    if (view.wake.events.length) parts.push(`or on ${view.wake.events.join(', ')}`);
    if (view.wake.mailPriority) parts.push(`or on mail ≥ ${view.wake.mailPriority}`);
    return `Sleeping: ${parts.join(' ')}`;
  }
  if (view.state === 'waiting' && view.wait) {
    const what = [view.wait.event ? `event ${view.wait.event}` : '', view.wait.replyFrom ? `a reply from ${view.wait.replyFrom}` : ''].filter(Boolean).join(' or ');
    return `Waiting for ${what || 'a wake'}${view.wait.timeoutAt !== null ? `, times out ${formatRelative(view.wait.timeoutAt, now)}` : ''}`;
  }
  return undefined;
}

/** One session, live, or as of a past step. */
export function SessionView({ conn, agentId }: { conn: Connection; agentId: string }): JSX.Element {
  const feed = useMemo(() => new SessionFeed(conn, agentId), [conn, agentId]);
  useEffect(() => () => { feed.close(); }, [feed]);
  useSubscription(feed);
  const now = useNow(1000);
  const [scrub, setScrub] = useState<number | null>(null);
  const [tab, setTab] = useState<'output' | 'sequence'>('output');
  useEffect(() => { setScrub(null); }, [agentId]);

  const items = timelineItems(feed.transitions, feed.history);
  const live = feed.view;
  const picked = scrub !== null ? items[scrub] : undefined;
  const ref = scrub !== null ? stepOfItem(items, scrub) : null;
  const past = usePastStep(conn, agentId, ref);
  const travelling = picked !== undefined;
  // While travelling every panel shows the past step, never the live session.
  const view: AgentView | null = travelling ? (past.data?.agent ?? null) : live;
  const stepNo = (scrub ?? 0) + 1;
  const asOf = travelling ? `as of step ${stepNo}` : null;
  const stepAt = picked?.at ?? null;
  const chartState = picked ? picked.state : (live?.stateValue ?? 'idle');
  const chartLast: LastTransition | null = picked
    ? (picked.transition ? { from: picked.transition.from, to: picked.transition.to, event: picked.transition.event, key: `scrub:${picked.key}` } : null)
    : feed.last;
  const refresh = (): void => { feed.refreshSoon(); };
  const forkAction = useAction();
  const [forked, setForked] = useState<string | null>(null);
  useEffect(() => { setForked(null); forkAction.clear(); }, [agentId]);
  const fork = (it: TimelineItem): void => {
    const at = forkPointOf(it);
    if (!at) return;
    void forkAction.run(async () => {
      setForked(null);
      const r = await conn.client.forkSession({ agentId, at });
      setForked(r.agentId);
      return `Forked into ${r.agentId} (${r.state}; from version ${r.from.version}, last seq ${r.from.lastSeq})`;
    });
  };
  const prevAgent = past.data?.previous?.agent ?? null;
  const diff = travelling && view ? (past.data?.previous ? diffValues(prevAgent ? { userState: prevAgent.userState, ...contextOf(prevAgent) } : null, { userState: view.userState, ...contextOf(view) }) : null) : null;
  const notRecorded = travelling && past.data !== null && past.data.agent === null;
  const pastPlaceholder = (what: string): JSX.Element => (
    <p class="muted" role="status">{past.error ? `Cannot read this step: ${past.error}` : notRecorded ? `Not recorded for this step (written before the runtime kept steps): the state name alone is known.` : `Loading the ${what} as of this step…`}</p>
  );

  return (
    <section class={`session-view${travelling ? ' is-travelling' : ''}`} aria-labelledby="session-title">
      <div class="view-head">
        <a href="#/" class="back">← Sessions</a>
        <h1 id="session-title"><span class="visually-hidden">Session </span>{agentId}</h1>
        {live && (
          <>
            <span class="type-tag" title="agent type">{live.type}</span>
            {(live.tags ?? []).map((t) => <a key={t} class="type-tag" href={`#/?tag=${encodeURIComponent(t)}`} title="tag: list the sessions carrying it" data-testid="session-tag">#{t}</a>)}
            {travelling ? (
              <span class={`state-pill big state-${picked.state.split('.')[0]}`} data-testid="session-state" data-state={picked.state.split('.')[0]} data-past="true">{picked.state} <span class="small">(step {stepNo})</span></span>
            ) : <span class={`state-pill big state-${live.state}`} data-testid="session-state" data-state={live.state}>{live.stateValue}</span>}
            <span class="muted small" data-testid="session-meta">{travelling
              ? `as of ${formatPreciseTime(picked.at)}${view ? ` · ${lastSeqText(view)}` : ''}`
              : `${live.live ? 'live in memory' : 'passivated'} · ${lastSeqText(live)}${live.updatedAt ? ` · updated ${formatRelative(live.updatedAt, now)}` : ''}`}</span>
          </>
        )}
      </div>
      {travelling && (
        <div class="travel-banner" role="status" data-testid="travel-banner">
          <span><strong>Time travel:</strong> every panel shows the session as of step {stepNo} of {items.length} ({formatPreciseTime(picked.at)} · {picked.label}). Controls act on the live session and are disabled.</span>
          <button type="button" class="primary" data-testid="back-to-live" onClick={() => { setScrub(null); }}>Back to live</button>
        </div>
      )}
      {feed.error && <p class="error" role="alert">{feed.error}</p>}
      {feed.loading && !live && <p class="muted" role="status">Loading…</p>}
      {live && (
        <div class="session-grid">
          <Panel id="p-chart" title="Statechart" area="chart" asOf={asOf}>
            <Statechart graph={graph} current={chartState} last={chartLast} recorded={travelling} caption={picked ? `Recorded state at ${new Date(picked.at).toLocaleTimeString()}` : wakeCaption(live, now)} />
          </Panel>
          <Panel id="p-timeline" title="Timeline" area="timeline">
            <>
              <Timeline items={items} selected={scrub} onSelect={setScrub} onFork={fork} forkBusy={forkAction.busy} />
              <ActionResult action={forkAction} />
              {forked && <p><a href={`#/s/${encodeURIComponent(forked)}`} data-testid="fork-link">Open {forked}</a></p>}
            </>
          </Panel>
          <aside class="panel area-controls" aria-labelledby="p-controls">
            <h2 id="p-controls">Controls{travelling && <span class="as-of"> · live session</span>}</h2>
            <Controls conn={conn} agentId={agentId} view={live} onChanged={refresh} disabled={travelling} />
          </aside>
          <Panel id="p-wake" title="Wake-up" area="wake" asOf={asOf}>
            {view ? (
              <>
                <WakePanel conn={conn} view={view} tasks={feed.tasks} onChanged={refresh} asOf={stepAt} />
                {travelling
                  ? (past.data?.waitpoint ? <PastWaitpoint waitpoint={past.data.waitpoint} /> : null)
                  : (view.state === 'waiting' && <Waitpoints conn={conn} agentId={agentId} quiet onChanged={refresh} />)}
              </>
            ) : pastPlaceholder('wake-up conditions')}
          </Panel>
          <Panel id="p-mailbox" title="Mailbox" area="mailbox" asOf={asOf}>
            {view ? <MailboxPanel view={view} entries={travelling ? past.data?.mailbox ?? null : null} /> : pastPlaceholder('mailbox')}
          </Panel>
          <Panel id="p-state" title={travelling ? 'State and context' : 'State'} area="state" asOf={asOf}>
            {view ? (
              <>
                <div data-testid="user-state">
                  {travelling && past.data && !past.data.userStateRecorded
                    ? <p class="muted small">The user state of this step is no longer kept (pruned with older steps).</p>
                    : <JsonTree name="userState" value={view.userState} openDepth={2} />}
                </div>
                {!travelling && <BudgetPanel conn={conn} agentId={agentId} view={view} />}
                <div data-testid="context"><JsonTree name="context" openDepth={1} value={travelling ? contextOf(view) : { ...contextOf(view), live: view.live, updatedAt: view.updatedAt }} /></div>
                {travelling && (
                  <>
                    <ContextDiff diff={diff} />
                    <h3>Event of this step</h3>
                    <StepEvent event={past.data?.event ?? null} />
                  </>
                )}
              </>
            ) : pastPlaceholder('state')}
          </Panel>
          <Panel id="p-history" title="History" area="history" asOf={asOf}>
            {travelling ? (past.data ? <HistoryPanel history={past.data.history} past /> : pastPlaceholder('history')) : <HistoryPanel history={feed.history} />}
          </Panel>
          <section class={`panel area-output${travelling ? ' is-past' : ''}`} aria-label="Output and sequence" data-panel="output">
            <div class="tabs" role="tablist" aria-label="Output views">
              <button type="button" role="tab" id="tab-output" aria-selected={tab === 'output'} aria-controls="tp-output" onClick={() => { setTab('output'); }}>Live output</button>
              <button type="button" role="tab" id="tab-sequence" aria-selected={tab === 'sequence'} aria-controls="tp-sequence" data-testid="tab-sequence" onClick={() => { setTab('sequence'); }}>Sequence</button>
              {travelling && <span class="as-of">{tab === 'sequence' ? `${asOf ?? ''}: later rows dimmed` : 'live'}</span>}
            </div>
            {tab === 'output' ? (
              <div role="tabpanel" id="tp-output" aria-labelledby="tab-output">
                {feed.outputs.length === 0 ? <p class="muted">Replies and streamed chunks appear here as they are published.</p> : (
                  <ol class="outputs">
                    {feed.outputs.map((o, i) => (
                      <li key={`${o.at}:${i}`} class={`out-${o.kind}${o.retracted ? ' out-retracted' : ''}`} title={o.retracted ? 'retracted: its run was aborted' : undefined}><time class="muted">{formatTime(o.at, now)}</time> <span class="kind">{o.kind}</span> <code class="body">{preview(o.body, 200)}</code></li>
                    ))}
                  </ol>
                )}
              </div>
            ) : (
              <div role="tabpanel" id="tp-sequence" aria-labelledby="tab-sequence">
                <SequencePanel conn={conn} agentId={agentId} history={feed.history} transitions={feed.transitions} asOf={stepAt} />
              </div>
            )}
          </section>
          <Panel id="p-dead" title="Dead letters" area="dead" asOf={asOf}>
            <DeadLetters conn={conn} items={feed.deadLetters} onChanged={refresh} asOf={stepAt} />
          </Panel>
        </div>
      )}
    </section>
  );
}
