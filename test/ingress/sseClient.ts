// A minimal server-sent events client over plain fetch (what a script or a test would write):
// it reads the body stream, parses the text/event-stream format itself (fields id, event, data,
// retry; comment lines; events separated by a blank line) and hands out events in order.

/** One parsed event. */
export interface SseEvent {
  readonly id: string | undefined;
  readonly event: string;
  readonly data: string;
  readonly json: unknown;
}

/** An open stream; `close()` disconnects (aborts the request). */
export interface SseStream {
  readonly status: number;
  readonly headers: Headers;
  /** Every event received so far, in order. */
  readonly events: readonly SseEvent[];
  /** Comment lines received (heartbeats). */
  readonly comments: readonly string[];
  /** Resolves with the first event (from the start of the stream) matching `pred` not yet taken by `next`. */
  next(pred?: (e: SseEvent) => boolean, timeoutMs?: number): Promise<SseEvent>;
  /** Waits until `pred(events)` holds. */
  until(pred: (events: readonly SseEvent[]) => boolean, what: string, timeoutMs?: number): Promise<void>;
  readonly ended: boolean;
  close(): void;
}

/** Opens `url` as an event stream with `headers`; resolves once the response headers arrived. */
export async function openSse(url: string, headers: Record<string, string> = {}): Promise<SseStream> {
  const ac = new AbortController();
  const res = await fetch(url, { headers: { Accept: 'text/event-stream', ...headers }, signal: ac.signal });
  const events: SseEvent[] = [];
  const comments: string[] = [];
  const waiters = new Set<() => void>();
  let ended = false;
  let taken = 0;
  const wake = (): void => { for (const w of [...waiters]) w(); };

  const parse = async (): Promise<void> => {
    if (!res.body) return;
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    let id: string | undefined;
    let event = '';
    let data: string[] = [];
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).replace(/\r$/, '');
          buf = buf.slice(nl + 1);
          if (line === '') {
            if (data.length > 0 || event !== '') {
              const text = data.join('\n');
              let json: unknown;
              try { json = JSON.parse(text); } catch { json = undefined; }
              events.push({ id, event: event || 'message', data: text, json });
              wake();
            }
            id = undefined; event = ''; data = [];
            continue;
          }
          if (line.startsWith(':')) { comments.push(line.slice(1).trim()); wake(); continue; }
          const colon = line.indexOf(':');
          const name = colon < 0 ? line : line.slice(0, colon);
          const val = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (name === 'id') id = val;
          else if (name === 'event') event = val;
          else if (name === 'data') data.push(val);
        }
      }
    } catch { /* aborted */ }
    ended = true;
    wake();
  };
  void parse();

  const waitUntil = (check: () => boolean, what: string, timeoutMs: number): Promise<void> => new Promise((resolve, reject) => {
    if (check()) { resolve(); return; }
    const timer = setTimeout(() => { waiters.delete(w); reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; got ${JSON.stringify(events.map((e) => [e.id, e.event]))}`)); }, timeoutMs);
    const w = (): void => {
      if (check()) { clearTimeout(timer); waiters.delete(w); resolve(); }
      else if (ended) { clearTimeout(timer); waiters.delete(w); reject(new Error(`stream ended while waiting for ${what}`)); }
    };
    waiters.add(w);
  });

  return {
    status: res.status,
    headers: res.headers,
    events,
    comments,
    get ended() { return ended; },
    async next(pred = () => true, timeoutMs = 10_000) {
      let found = -1;
      await waitUntil(() => {
        found = events.findIndex((e, i) => i >= taken && pred(e));
        return found >= 0;
      }, 'an event', timeoutMs);
      taken = found + 1;
      return events[found]!;
    },
    until: (pred, what, timeoutMs = 10_000) => waitUntil(() => pred(events), what, timeoutMs),
    close() { ac.abort(); },
  };
}
