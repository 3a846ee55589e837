/**
 * Owns what happens to a promise rejection nobody handles while a runtime runs in this process.
 * Node's default (since 15) turns one into an uncaught exception and ends the process: a single
 * agent handler that starts a promise without awaiting it (`void fetch(...)`, a forgotten
 * `.catch`) and sees it fail took the whole node down, every session on it with it. Its message,
 * never acked, came back after the restart — the same handler, the same crash — and on another
 * node after failover: one message crash-looping the cluster. While a runtime runs (and
 * `AGENTRY_UNHANDLED_REJECTIONS` is `log`, the default) such a rejection is logged at error level
 * with its stack and counted (`agentry_unhandled_rejections_total`); the handler's turn goes on.
 * `crash` keeps Node's behaviour, for an application that owns its process's policy. One
 * listener serves every runtime of the process, removed when the last one stops.
 */
import type { Logger } from './logger.js';

interface Watcher { readonly logger: Logger; count: number }

const watchers = new Set<Watcher>();
let listening = false;

function onUnhandled(reason: unknown): void {
  const err = reason instanceof Error ? reason : new Error(`non-error rejection: ${String(reason)}`);
  let logged = false;
  for (const w of watchers) {
    w.count++;
    if (!logged) {
      logged = true;
      w.logger.error({ err }, 'a promise rejected and nothing handled it (an agent handler that did not await or catch it?): logged, the node runs on');
    }
  }
}

/** What a runtime holds while it watches: how many rejections it saw, and the way to stop watching. */
export interface RejectionWatch {
  /** Unhandled rejections seen since this runtime started (metric agentry_unhandled_rejections_total). */
  count(): number;
  stop(): void;
}

/** Logs unhandled rejections instead of letting Node end the process, until `stop()` (see the module comment). */
export function watchUnhandledRejections(logger: Logger): RejectionWatch {
  const w: Watcher = { logger, count: 0 };
  watchers.add(w);
  if (!listening) {
    listening = true;
    process.on('unhandledRejection', onUnhandled);
  }
  return {
    count: () => w.count,
    stop: () => {
      watchers.delete(w);
      if (watchers.size === 0 && listening) {
        listening = false;
        process.off('unhandledRejection', onUnhandled);
      }
    },
  };
}
