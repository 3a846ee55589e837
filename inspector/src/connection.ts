/**
 * Owns the inspector's one connection to the control plane: a typed client (`client/`) on the
 * same origin's `/rpc`, the connection badge's state, and the token. The client reconnects with
 * backoff by itself while subscriptions are open; this module adds what a browser cannot learn
 * from a WebSocket (a refused handshake looks like any other failure): after a failure it asks
 * `GET /metrics`, which answers 401 exactly when the token is missing or wrong, and then asks
 * the user for a token (kept in sessionStorage, sent as `?token=` as browsers must).
 */
// Runtime values come from the client's modules that do not load the zod schemas: building
// those schemas probes `new Function` (zod's JIT), which this page's CSP forbids and Chrome
// reports as a console error. Types come from the client's public surface as usual.
import { createClient, type AgentryClient } from '../../client/createClient.js';
import { ConnectionError, RpcError } from '../../client/errors.js';

/** What the badge shows. `unauthorized` also opens the token prompt. */
export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'offline' | 'unauthorized';

const TOKEN_KEY = 'agentry.token';

function storedToken(): string | undefined {
  try { return sessionStorage.getItem(TOKEN_KEY) ?? undefined; } catch { return undefined; }
}

/** The `/rpc` URL of the server that served this page. */
export function rpcUrlOf(loc: Location): string {
  return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/rpc`;
}

/**
 * Asks the server whether our credentials are accepted, without a WebSocket: `/metrics` needs
 * the same token as `/rpc` (the cookie set by a `?token=` visit travels with it), so 401 means
 * "ask for a token" and a network failure means "the server is away".
 */
async function probeAuth(token: string | undefined): Promise<'ok' | 'unauthorized' | 'offline'> {
  try {
    // GET, not HEAD: Chrome reports a HEAD answered 401 as an aborted request.
    const res = await fetch('/metrics', {
      method: 'GET', cache: 'no-store', credentials: 'same-origin',
      headers: token ? { Authorization: `Bearer ${token}` } : {},
    });
    return res.status === 401 ? 'unauthorized' : 'ok';
  } catch {
    return 'offline';
  }
}

type Listener = () => void;

/**
 * The connection the whole UI shares. `client` is replaced when the token changes, so callers
 * read it at call time (`connection.client.getAgent(...)`) rather than keeping a reference.
 */
export class Connection {
  state: ConnectionState = 'connecting';
  /** Short explanation for the badge's tooltip and the offline banner. */
  detail = '';
  client: AgentryClient;
  private readonly listeners = new Set<Listener>();
  private readonly openListeners = new Set<Listener>();
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private probeTimer: ReturnType<typeof setTimeout> | null = null;
  private attempt = 0;
  private generation = 0;

  constructor(private readonly url: string, private token: string | undefined = storedToken()) {
    this.client = this.makeClient();
  }

  /** Subscribes to state changes (for the badge and prompt); returns the unsubscribe. */
  onChange(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => { this.listeners.delete(fn); };
  }

  /**
   * Called every time a connection opens (first or after the token changed): the sessions
   * index subscribes and loads then. Re-opens after a network blip need no call: the client
   * re-subscribes by itself and reports a gap.
   */
  onOpen(fn: Listener): () => void {
    this.openListeners.add(fn);
    if (this.state === 'open') fn();
    return () => { this.openListeners.delete(fn); };
  }

  /** Opens the first connection; keeps retrying with backoff until it works or a token is needed. */
  start(): void {
    const gen = this.generation;
    this.client.connect().then(() => {
      if (gen !== this.generation) return;
      this.attempt = 0;
      this.set('open', '');
      for (const fn of [...this.openListeners]) fn();
    }, async (err: unknown) => {
      if (gen !== this.generation) return;
      const probe = await probeAuth(this.token);
      if (gen !== this.generation) return;
      if (probe === 'unauthorized' || (err instanceof ConnectionError && err.type === 'UNAUTHORIZED')) {
        this.set('unauthorized', this.token ? 'the server refused this token' : 'the server requires a token');
        return;
      }
      const delay = Math.min(10_000, 500 * 2 ** this.attempt++);
      this.set('offline', `${describeError(err)} — retrying in ${Math.round(delay / 1000)} s`);
      this.retryTimer = setTimeout(() => { this.retryTimer = null; this.start(); }, delay);
    });
  }

  /** Uses `token` from now on (stored for this browser tab) and connects again. */
  setToken(token: string): void {
    this.token = token.trim() || undefined;
    try {
      if (this.token) sessionStorage.setItem(TOKEN_KEY, this.token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch { /* storage disabled: the token lives until the tab closes anyway */ }
    this.restart();
  }

  /** True when a token was typed into this tab (the prompt offers to forget it). */
  get hasToken(): boolean {
    return this.token !== undefined;
  }

  private restart(): void {
    this.generation++;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.retryTimer = this.probeTimer = null;
    const old = this.client;
    void old.close();
    this.client = this.makeClient();
    this.attempt = 0;
    this.set('connecting', '');
    this.start();
  }

  private makeClient(): AgentryClient {
    const gen = this.generation;
    return createClient(this.url, {
      ...(this.token ? { token: this.token } : {}),
      requestTimeoutMs: 20_000,
      onConnectionChange: (s) => {
        if (gen !== this.generation) return;
        if (s === 'open') {
          if (this.probeTimer) { clearTimeout(this.probeTimer); this.probeTimer = null; }
          this.set('open', '');
        } else if (s === 'reconnecting') {
          if (this.state !== 'reconnecting') this.set('reconnecting', 'connection lost; reconnecting with backoff');
          // A server that came back with another token refuses every attempt: find out and ask.
          this.probeTimer ??= setTimeout(() => {
            this.probeTimer = null;
            void probeAuth(this.token).then((p) => {
              if (gen === this.generation && p === 'unauthorized' && this.state === 'reconnecting') {
                this.set('unauthorized', 'the server refused the token after a reconnect');
              }
            });
          }, 3000);
        } else {
          this.set('offline', 'connection closed');
        }
      },
    });
  }

  private set(state: ConnectionState, detail: string): void {
    if (state === this.state && detail === this.detail) return;
    this.state = state;
    this.detail = detail;
    for (const fn of [...this.listeners]) fn();
  }
}

/** One line for an error shown in place: the stable code first, then the server's message. */
export function describeError(err: unknown): string {
  if (err instanceof RpcError) return `${err.type} (${err.code}): ${err.message}`;
  if (err instanceof ConnectionError) return `${err.type}: ${err.message}`;
  if (err instanceof Error) return err.message;
  return String(err);
}
