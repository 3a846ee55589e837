/**
 * The session view: statechart with the current (or scrubbed) state, timeline, wake conditions
 * and cron tasks, mailbox, user state and context, history by handler call, dead letters, live
 * output, and the controls. Data comes from a `SessionFeed` for this session.
 */
import type { JSX } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import graph from 'virtual:session-machine';
import type { Connection } from '../connection.js';
import { formatRelative, formatTime, preview } from '../format.js';
import { useAction, useNow, useSubscription } from '../hooks.js';
import { SessionFeed, type AgentView } from '../sessionFeed.js';
import type { LastTransition } from '../statechart/graph.js';
import { Statechart } from '../statechart/Statechart.js';
import { forkPointOf, timelineItems, type TimelineItem } from '../timelineItems.js';
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

function Panel({ id, title, area, children }: { id: string; title: string; area: string; children: JSX.Element | JSX.Element[] | null | false }): JSX.Element {
  return (
    <section class={`panel area-${area}`} aria-labelledby={id}>
      <h2 id={id}>{title}</h2>
      {children}
    </section>
  );
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

/** One session, live. */
export function SessionView({ conn, agentId }: { conn: Connection; agentId: string }): JSX.Element {
  const feed = useMemo(() => new SessionFeed(conn, agentId), [conn, agentId]);
  useEffect(() => () => { feed.close(); }, [feed]);
  useSubscription(feed);
  const now = useNow(1000);
  const [scrub, setScrub] = useState<number | null>(null);
  useEffect(() => { setScrub(null); }, [agentId]);

  const items = timelineItems(feed.transitions, feed.history);
  const view = feed.view;
  const picked = scrub !== null ? items[scrub] : undefined;
  const chartState = picked ? picked.state : (view?.stateValue ?? 'idle');
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

  return (
    <section class="session-view" aria-labelledby="session-title">
      <div class="view-head">
        <a href="#/" class="back">← Sessions</a>
        <h1 id="session-title"><span class="visually-hidden">Session </span>{agentId}</h1>
        {view && (
          <>
            <span class="type-tag" title="agent type">{view.type}</span>
            <span class={`state-pill big state-${view.state}`} data-testid="session-state" data-state={view.state}>{view.stateValue}</span>
            <span class="muted small">{view.live ? 'live in memory' : 'passivated'} · last seq {view.lastSeq}{view.updatedAt ? ` · updated ${formatRelative(view.updatedAt, now)}` : ''}</span>
          </>
        )}
      </div>
      {feed.error && <p class="error" role="alert">{feed.error}</p>}
      {feed.loading && !view && <p class="muted" role="status">Loading…</p>}
      {view && (
        <div class="session-grid">
          <Panel id="p-chart" title="Statechart" area="chart">
            <Statechart graph={graph} current={chartState} last={chartLast} recorded={picked !== undefined} caption={picked ? `Recorded state at ${new Date(picked.at).toLocaleTimeString()}` : wakeCaption(view, now)} />
          </Panel>
          <Panel id="p-timeline" title="Timeline" area="timeline">
            <>
              <Timeline items={items} selected={scrub} onSelect={setScrub} onFork={fork} forkBusy={forkAction.busy} />
              <ActionResult action={forkAction} />
              {forked && <p><a href={`#/s/${encodeURIComponent(forked)}`} data-testid="fork-link">Open {forked}</a></p>}
            </>
          </Panel>
          <aside class="panel area-controls" aria-labelledby="p-controls">
            <h2 id="p-controls">Controls</h2>
            <Controls conn={conn} agentId={agentId} view={view} onChanged={refresh} />
          </aside>
          <Panel id="p-wake" title="Wake-up" area="wake">
            <>
              <WakePanel conn={conn} view={view} tasks={feed.tasks} onChanged={refresh} />
              {view.state === 'waiting' && <Waitpoints conn={conn} agentId={agentId} quiet onChanged={refresh} />}
            </>
          </Panel>
          <Panel id="p-mailbox" title="Mailbox" area="mailbox">
            <MailboxPanel view={view} />
          </Panel>
          <Panel id="p-state" title="State" area="state">
            <JsonTree name="userState" value={view.userState} openDepth={2} />
            <BudgetPanel conn={conn} agentId={agentId} view={view} />
            <JsonTree name="context" openDepth={1} value={{
              stateValue: view.stateValue, lastSeq: view.lastSeq, live: view.live, updatedAt: view.updatedAt,
              wake: view.wake, wait: view.wait, mailbox: view.mailbox, lastError: view.lastError,
            }} />
          </Panel>
          <Panel id="p-history" title="History" area="history">
            <HistoryPanel history={feed.history} />
          </Panel>
          <Panel id="p-output" title="Live output" area="output">
            {feed.outputs.length === 0 ? <p class="muted">Replies and streamed chunks appear here as they are published.</p> : (
              <ol class="outputs">
                {feed.outputs.map((o, i) => (
                  <li key={`${o.at}:${i}`} class={`out-${o.kind}${o.retracted ? ' out-retracted' : ''}`} title={o.retracted ? 'retracted: its run was aborted' : undefined}><time class="muted">{formatTime(o.at, now)}</time> <span class="kind">{o.kind}</span> <code class="body">{preview(o.body, 200)}</code></li>
                ))}
              </ol>
            )}
          </Panel>
          <Panel id="p-dead" title="Dead letters" area="dead">
            <DeadLetters conn={conn} items={feed.deadLetters} onChanged={refresh} />
          </Panel>
        </div>
      )}
    </section>
  );
}
