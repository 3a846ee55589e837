// An independent JSON-RPC 2.0 client for the control-plane tests: plain `ws` and JSON, none of
// the project's client code, so the tests check the wire protocol itself.
import WebSocket from 'ws';

export interface RpcResponse {
  jsonrpc: '2.0';
  id: string | number | null;
  result?: any;
  error?: { code: number; message: string; data?: any };
}

export interface RpcNotification {
  jsonrpc: '2.0';
  method: 'notify';
  params: { subscriptionId: string; seq: number; kind: string; agentId?: string; data: any };
}

/** A raw WebSocket JSON-RPC client that records every frame it receives. */
export class RawRpc {
  readonly frames: unknown[] = [];
  readonly notifications: RpcNotification[] = [];
  closeCode: number | null = null;
  private nextId = 1;
  private waiters: (() => void)[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      let msg: unknown;
      try { msg = JSON.parse(data.toString()); } catch { msg = { unparsable: data.toString() }; }
      this.frames.push(msg);
      const list = Array.isArray(msg) ? msg : [msg];
      for (const m of list) if ((m as RpcNotification).method === 'notify') this.notifications.push(m as RpcNotification);
      this.wake();
    });
    ws.on('close', (code) => { this.closeCode = code; this.wake(); });
    ws.on('error', () => undefined);
  }

  /** Opens a connection; rejects with the HTTP status when the server refuses the handshake. */
  static open(url: string, opts: { headers?: Record<string, string>; origin?: string } = {}): Promise<RawRpc> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers: opts.headers ?? {}, ...(opts.origin ? { origin: opts.origin } : {}) });
      ws.once('open', () => { resolve(new RawRpc(ws)); });
      ws.once('unexpected-response', (_req, res) => { reject(Object.assign(new Error(`refused with ${res.statusCode}`), { status: res.statusCode })); });
      ws.once('error', reject);
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Waits until `pick` finds something in the received frames (or the socket closes / time runs out). */
  async waitFor<T>(pick: () => T | undefined, timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = pick();
      if (v !== undefined) return v;
      if (this.closeCode !== null) throw new Error(`socket closed (${this.closeCode}) while waiting`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => { clearTimeout(t); r(); });
      });
    }
  }

  /** The single (non-batch) response with this id. */
  response(id: string | number | null, timeoutMs?: number): Promise<RpcResponse> {
    return this.waitFor(() => this.frames.find((f): f is RpcResponse => !Array.isArray(f) && (f as RpcResponse).id === id && (('result' in (f as object)) || ('error' in (f as object)))), timeoutMs);
  }

  /** Sends a request and resolves to the whole response object. */
  async call(method: string, params?: unknown): Promise<RpcResponse> {
    const id = this.nextId++;
    this.ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) }));
    return this.response(id);
  }

  /** Calls and returns the result; throws with the error when there is one. */
  async ok(method: string, params?: unknown): Promise<any> {
    const r = await this.call(method, params);
    if (r.error) throw new Error(`${method} failed: ${JSON.stringify(r.error)}`);
    return r.result;
  }

  /** Calls and returns the error; throws when the call succeeded. */
  async err(method: string, params?: unknown): Promise<NonNullable<RpcResponse['error']>> {
    const r = await this.call(method, params);
    if (!r.error) throw new Error(`${method} unexpectedly succeeded: ${JSON.stringify(r.result)}`);
    return r.error;
  }

  sendRaw(text: string | Buffer): void {
    this.ws.send(text);
  }

  close(): void {
    this.ws.terminate();
  }
}
