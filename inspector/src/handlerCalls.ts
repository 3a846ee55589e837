/**
 * Owns how history reads as handler calls: messages that share a `batchId` were handled by one
 * call (cancel-and-merge folds messages that arrive during a run into the next call).
 */
import type { HistoryMessage } from './sessionFeed.js';

/** One handler call and the messages it handled, oldest first. */
export interface HandlerCall {
  /** 1 for the oldest call shown, counting up: run ids (`batchId`) skip (a retry, a merge or a wake takes one too), so they are not shown as call numbers. */
  readonly number: number;
  readonly batchId: string;
  readonly outcome: string;
  readonly messages: readonly HistoryMessage[];
}

/** Groups history (newest first, as `getHistory` returns it) into handler calls, newest call first, numbered from the oldest (1). */
export function groupByCall(history: readonly HistoryMessage[]): HandlerCall[] {
  const calls = new Map<string, HistoryMessage[]>();
  for (const m of history) {
    const list = calls.get(m.batchId);
    if (list) list.push(m); else calls.set(m.batchId, [m]);
  }
  const list = [...calls.entries()];
  return list.map(([batchId, msgs], i) => ({
    number: list.length - i, batchId, outcome: msgs[0]!.outcome, messages: [...msgs].sort((a, b) => a.at - b.at || a.seq - b.seq),
  }));
}
