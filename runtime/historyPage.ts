/**
 * Owns the order of a session's history as the API pages it: newest first, wake records among
 * the messages by time. The store orders history by inbox sequence, and a wake record has none
 * (its seq is 0, so the store sorts every wake last); the sequence must stay the inbox message's
 * own (tools and the chaos verifier read `seq > 0` as "a message"). So a page is read as:
 * up to `limit` messages by sequence (`before` exclusive), and the wake records whose time falls
 * between the message above the page (the `before` one) and the page's last message, merged in
 * by time. A page thus ends with a message (the cursor for the next page) unless it is the last.
 *
 * Limits: wake records come from the newest 1000 of the session (the store's page limit); a page
 * deeper in the past than those shows its messages without their wakes.
 *
 * Each row gets its `fate` (not a column): its outcome, where an `ok` run's message is `merged`
 * when its batch held other messages, else `handled`. A batch's messages have adjacent
 * sequences, so the row below the page and the row above it settle the batches cut by its edges.
 */
import { fateOf } from '../actors/types.js';
import type { HistoryEntry, Store } from '../persistence/types.js';

const WAKE_WINDOW = 1000;

/**
 * One page of `sessionId`'s history, newest first: at most `limit` messages, plus the wake
 * records between them (so a page may hold more than `limit` rows).
 *
 * @example
 * const page = await historyPage(store, 'demo', { limit: 50 });
 * const next = await historyPage(store, 'demo', { limit: 50, before: page.at(-1)!.seq });
 */
export async function historyPage(store: Pick<Store, 'getHistory'>, sessionId: string, opts: { limit?: number; before?: number } = {}): Promise<HistoryEntry[]> {
  const limit = opts.limit ?? 100;
  const rows = await store.getHistory(sessionId, { limit: limit + 1, ...(opts.before !== undefined ? { before: opts.before } : {}) });
  const all = rows.filter((r) => r.seq > 0);
  const below = all.length > limit ? all[limit] : undefined;
  let messages = all.slice(0, limit);
  // Wakes are stored with seq 0: `before: 1` reads only them, newest first.
  const wakes = (await store.getHistory(sessionId, { limit: WAKE_WINDOW, before: 1 })).filter((r) => r.seq <= 0).map((w) => ({ ...w, fate: fateOf(w.outcome, 1) }));
  const aboveRow = opts.before !== undefined && messages.length > 0 ? (await store.getHistory(sessionId, { limit: 1, before: opts.before + 1 }))[0] : undefined;
  messages = withFates(messages, [below, aboveRow]);
  if (wakes.length === 0) return messages;
  // This page's span in time: [its last message's time, the previous page's last message's time).
  const lower = messages.length >= limit ? messages[messages.length - 1]!.at : -Infinity;
  let upper = Infinity;
  if (opts.before !== undefined) {
    const above = (await store.getHistory(sessionId, { limit: 1, before: opts.before + 1 }))[0];
    if (above && above.seq === opts.before) upper = above.at;
    else if (messages[0]) upper = messages[0].at; // a cursor that is no message: keep the page's own span
  }
  const mine = wakes.filter((w) => w.at >= lower && w.at < upper);
  // Merge by time, newest first; a wake at the same time as a message goes above it.
  const out: HistoryEntry[] = [];
  let w = 0;
  for (const m of messages) {
    while (w < mine.length && mine[w]!.at >= m.at) out.push(mine[w++]!);
    out.push(m);
  }
  while (w < mine.length) out.push(mine[w++]!);
  return out;
}

/** The page's message rows with their fates; `neighbours` are rows just outside it (their batches may continue in). */
function withFates(messages: readonly HistoryEntry[], neighbours: readonly (HistoryEntry | undefined)[]): HistoryEntry[] {
  const count = new Map<string, number>();
  for (const r of [...messages, ...neighbours]) if (r && r.seq > 0) count.set(r.batchId, (count.get(r.batchId) ?? 0) + 1);
  return messages.map((r) => ({ ...r, fate: fateOf(r.outcome, count.get(r.batchId) ?? 1) }));
}
