// The running system the inspector's browser tests drive: nats-server, a Postgres schema of its
// own, a runtime with the given agents, the control plane serving the built inspector, a NATS
// client for publishing, and Chromium with one page. One call starts it all, `stop()` undoes it.
import type { NatsConnection } from '@nats-io/transport-node';
import type { AnyAgent } from '../../actors/defineAgent.js';
import { openStore } from '../../persistence/index.js';
import type { Store } from '../../persistence/types.js';
import { startControlPlane, type ControlPlane, type Runtime } from '../../runtime/index.js';
import { PG_URL, dropSchema, natsClient, schemaName, startNats, startRuntime } from '../helpers.js';
import { assertInspectorBuilt, launch, type BrowserSession } from './browser.js';

/** What `startInspectorStack` started. */
export interface InspectorStack {
  readonly store: Store;
  readonly rt: Runtime;
  readonly cp: ControlPlane;
  readonly nc: NatsConnection;
  readonly browser: BrowserSession;
  stop(): Promise<void>;
}

/** Starts everything a browser test of the inspector needs (`tag` names the schema). */
export async function startInspectorStack(tag: string, agents: readonly AnyAgent[], size: { width: number; height: number } = { width: 1280, height: 900 }): Promise<InspectorStack> {
  assertInspectorBuilt();
  const nats = await startNats(8);
  const schema = schemaName(tag);
  const store = openStore({ databaseUrl: PG_URL, schema });
  const rt = await startRuntime(nats.url, { agents: [...agents], store });
  const cp = await startControlPlane(rt, { port: 0 });
  const nc = await natsClient(nats.url);
  const browser = await launch(size.width, size.height);
  return {
    store, rt, cp, nc, browser,
    async stop() {
      await browser.close();
      await nc.close();
      await cp.close();
      await rt.stop();
      await store.close();
      await nats.cleanup();
      await dropSchema(schema);
    },
  };
}
