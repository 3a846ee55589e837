// Shared set-up of the ingress suites: a real nats-server, a real Postgres schema, a runtime and
// its control plane on a free port with a token, and a plain-fetch POST helper.
import type { AnyAgent } from '../../actors/index.js';
import { openStore } from '../../persistence/index.js';
import type { Store } from '../../persistence/types.js';
import { startControlPlane, type ControlPlane, type ControlPlaneOptions, type Runtime } from '../../runtime/index.js';
import type { RuntimeConfigInput } from '../../runtime/config.js';
import { PG_URL, dropSchema, schemaName, startNats, startRuntime } from '../helpers.js';

export interface IngressEnv {
  readonly nats: Awaited<ReturnType<typeof startNats>>;
  readonly store: Store;
  readonly rt: Runtime;
  readonly cp: ControlPlane;
  readonly token: string;
  /** `Authorization: Bearer <token>`. */
  readonly auth: Record<string, string>;
  /** POSTs `body` (JSON unless a string is given as `raw`) and returns status, headers and parsed JSON. */
  post(path: string, body?: unknown, opts?: { headers?: Record<string, string>; raw?: string; token?: string | null }): Promise<{ status: number; headers: Headers; json: any }>;
  stop(): Promise<void>;
}

/** Starts everything; `stop()` tears it down and drops the schema. */
export async function startIngressEnv(tag: string, agents: readonly AnyAgent[], opts: { config?: RuntimeConfigInput; controlPlane?: ControlPlaneOptions } = {}): Promise<IngressEnv> {
  const nats = await startNats(8);
  const schema = schemaName(tag);
  const store = openStore({ databaseUrl: PG_URL, schema });
  const rt = await startRuntime(nats.url, { agents, store, ...(opts.config ? { config: opts.config } : {}) });
  const token = `tok-${Math.random().toString(36).slice(2)}-${Date.now()}`;
  const cp = await startControlPlane(rt, { port: 0, token, ...opts.controlPlane });
  const auth = { Authorization: `Bearer ${token}` };
  return {
    nats, store, rt, cp, token, auth,
    async post(path, body, o = {}) {
      const headers: Record<string, string> = { ...(o.token === null ? {} : { Authorization: `Bearer ${o.token ?? token}` }), ...o.headers };
      const payload = o.raw ?? (body === undefined ? undefined : JSON.stringify(body));
      if (payload !== undefined && o.raw === undefined && !Object.keys(headers).some((k) => k.toLowerCase() === 'content-type')) headers['Content-Type'] = 'application/json';
      const res = await fetch(`${cp.url}${path}`, { method: 'POST', headers, ...(payload !== undefined ? { body: payload } : {}) });
      const text = await res.text();
      let json: unknown;
      try { json = JSON.parse(text); } catch { json = text; }
      return { status: res.status, headers: res.headers, json };
    },
    async stop() {
      await cp.close();
      await rt.stop();
      await store.close();
      await nats.cleanup();
      await dropSchema(schema);
    },
  };
}
