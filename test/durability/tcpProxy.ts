// A loopback TCP proxy a test can cut: `cut()` destroys every proxied connection and refuses
// new ones (accepts and closes them at once) until `restore()`. Used to take Postgres away from
// a runtime while the test itself still reaches Postgres directly.
//
// Three modes (`setMode`), for the fault tests in test/chaos/:
//   pass      — forward both ways (the default; `restore()`);
//   refuse    — close every connection, old and new (`cut()`): the peer sees a reset at once;
//   blackhole — accept, read, never answer or forward (`blackhole()`): the peer sees nothing
//               at all, as behind a dropped route, and only a timeout of its own can tell.
//   deaf      — forward to the target, drop its answers (`deafen()`): statements run and
//               commit, the client never hears of it (an ambiguous commit: its own timeout
//               fires on work that was done). Reset on restore().
// Besides the modes, `delayAnswers(ms)` holds every answer of the target back `ms` (in order)
// while passing: a server that is slow to answer (overloaded), not gone. restore() ends it.
// A blackholed connection has lost bytes, so leaving the blackhole resets it (as a peer whose
// keepalive gave up would), unless `blackhole({ heal: true })` froze it instead: then nothing was
// read or dropped and it resumes where it stopped, as TCP does after a short partition heals.
import { createServer, connect, type Socket } from 'node:net';

/** What the proxy does with traffic now. */
export type ProxyMode = 'pass' | 'refuse' | 'blackhole' | 'deaf';

export interface TcpProxy {
  readonly port: number;
  /** Connections accepted since start (including refused ones). */
  readonly accepted: () => number;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
  /** The current mode. */
  mode(): ProxyMode;
  /** `pass` = restore(), `refuse` = cut(), `blackhole` = blackhole(). */
  setMode(mode: ProxyMode): void;
  /**
   * Accepts and reads but never answers or forwards. `heal`: existing connections are frozen
   * (not read) and resume on restore(); otherwise they are drained into nothing and reset on restore().
   */
  blackhole(opts?: { heal?: boolean }): void;
  /** Forwards to the target, drops its answers; connections are reset on restore(). */
  deafen(): void;
  /** In `pass` mode: every answer of the target reaches the client `ms` later, in order (0: at once). */
  delayAnswers(ms: number): void;
  /**
   * Local ports of the proxy's live upstream connections: how the target sees its clients
   * (e.g. `pg_stat_activity.client_port`), so a test can find the server sessions behind it.
   */
  upstreamPorts(): number[];
}

interface Pair {
  readonly client: Socket; readonly upstream: Socket | null; frozen: boolean; swallowed: boolean;
  /** Answers held back by `delayAnswers`, due times ascending; null when answers are piped. */
  delayed: { queue: { due: number; chunk: Buffer }[]; timer: NodeJS.Timeout | null; onData: (chunk: Buffer) => void } | null;
}

const discard = (): void => { /* blackholed bytes */ };

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  const pairs = new Set<Pair>();
  let mode: ProxyMode = 'pass';
  let heal = false;
  let accepted = 0;

  const drop = (pair: Pair): void => {
    pair.client.destroy();
    pair.upstream?.destroy();
    sockets.delete(pair.client);
    if (pair.upstream) sockets.delete(pair.upstream);
    pairs.delete(pair);
  };
  /** Stops forwarding a pair: frozen (nothing read) or swallowed (read into nothing). */
  const silence = (pair: Pair): void => {
    undelayPair(pair);
    const { client, upstream } = pair;
    if (upstream) { client.unpipe(upstream); upstream.unpipe(client); }
    if (heal && upstream) {
      pair.frozen = true;
      client.pause();
      upstream.pause();
    } else {
      pair.swallowed = true;
      for (const s of upstream ? [client, upstream] : [client]) { s.on('data', discard); s.resume(); }
    }
  };

  const server = createServer((client) => {
    accepted++;
    if (mode === 'refuse') { client.destroy(); return; }
    if (mode === 'blackhole') {
      // Never answered: swallowed now, reset when the blackhole ends.
      const pair: Pair = { client, upstream: null, frozen: false, swallowed: true, delayed: null };
      pairs.add(pair);
      sockets.add(client);
      client.on('error', () => { drop(pair); });
      client.on('close', () => { drop(pair); });
      client.on('data', discard);
      return;
    }
    const upstream = connect(targetPort, targetHost);
    const pair: Pair = { client, upstream, frozen: false, swallowed: false, delayed: null };
    pairs.add(pair);
    sockets.add(client);
    sockets.add(upstream);
    const close = (): void => { drop(pair); };
    for (const s of [client, upstream]) { s.on('error', close); s.on('close', close); }
    client.pipe(upstream);
    if (mode === 'deaf') deafenPair(pair); else if (answerDelay > 0) delayPair(pair); else upstream.pipe(client);
  });
  let answerDelay = 0;
  /** Holds the target's answers back `answerDelay` ms each, in order (one timer per pair). */
  const delayPair = (pair: Pair): void => {
    if (!pair.upstream || pair.delayed) return;
    const d: NonNullable<Pair['delayed']> = { queue: [], timer: null, onData: () => undefined };
    const pump = (): void => {
      d.timer = null;
      const now = Date.now();
      while (d.queue.length > 0 && d.queue[0]!.due <= now) {
        const { chunk } = d.queue.shift()!;
        if (!pair.client.destroyed) pair.client.write(chunk);
      }
      if (d.queue.length > 0) d.timer = setTimeout(pump, d.queue[0]!.due - now);
    };
    d.onData = (chunk: Buffer): void => {
      // Never earlier than an answer before it: order is kept when the delay shrinks.
      const due = Math.max(Date.now() + answerDelay, d.queue.at(-1)?.due ?? 0);
      d.queue.push({ due, chunk });
      if (d.timer === null) d.timer = setTimeout(pump, due - Date.now());
    };
    pair.upstream.unpipe(pair.client);
    pair.upstream.on('data', d.onData);
    pair.upstream.resume(); // unpipe left it paused
    pair.delayed = d;
  };
  /** Sends what was held back at once and pipes answers again. */
  const undelayPair = (pair: Pair): void => {
    const d = pair.delayed;
    if (!d || !pair.upstream) return;
    pair.delayed = null;
    if (d.timer) clearTimeout(d.timer);
    pair.upstream.off('data', d.onData);
    for (const { chunk } of d.queue) if (!pair.client.destroyed) pair.client.write(chunk);
    pair.upstream.pipe(pair.client);
  };
  /** The target's answers go nowhere from now on; the pair is reset when the proxy is restored. */
  const deafenPair = (pair: Pair): void => {
    if (!pair.upstream) return;
    undelayPair(pair);
    pair.upstream.unpipe(pair.client);
    pair.upstream.on('data', discard);
    pair.upstream.resume();
    pair.swallowed = true;
  };
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(0, '127.0.0.1', resolve); });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;

  const cut = (): void => {
    mode = 'refuse';
    for (const s of sockets) s.destroy();
    sockets.clear();
    pairs.clear();
  };
  const restore = (): void => {
    mode = 'pass';
    answerDelay = 0;
    for (const pair of [...pairs]) {
      undelayPair(pair);
      if (pair.swallowed) drop(pair);
      else if (pair.frozen && pair.upstream) {
        pair.frozen = false;
        pair.client.pipe(pair.upstream);
        pair.upstream.pipe(pair.client);
      }
    }
  };
  const deafen = (): void => {
    if (mode !== 'pass') return;
    mode = 'deaf';
    for (const pair of pairs) deafenPair(pair);
  };
  const blackhole = (opts: { heal?: boolean } = {}): void => {
    if (mode === 'blackhole') return;
    mode = 'blackhole';
    heal = opts.heal === true;
    for (const pair of pairs) silence(pair);
  };

  return {
    port,
    accepted: () => accepted,
    cut,
    restore,
    mode: () => mode,
    setMode(m) {
      if (m === 'pass') restore();
      else if (m === 'refuse') cut();
      else if (m === 'deaf') deafen();
      else blackhole();
    },
    blackhole,
    deafen,
    delayAnswers(ms) {
      if (mode !== 'pass') return;
      answerDelay = Math.max(0, ms);
      for (const pair of pairs) {
        if (answerDelay > 0) delayPair(pair); else undelayPair(pair);
      }
    },
    upstreamPorts: () => [...pairs].flatMap((p) => (p.upstream?.localPort !== undefined ? [p.upstream.localPort] : [])),
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      sockets.clear();
      pairs.clear();
      server.close(() => { resolve(); });
    }),
  };
}
