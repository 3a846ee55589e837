// One inspector test stack: a nats-server, a Postgres schema, a runtime with the given agents,
// its control plane serving the built inspector, and one Chromium page (browser.ts) — what a
// browser test file starts once in beforeAll and closes in afterAll. Keeps each file to one
// browser launch.
import type { Page } from 'playwright-core';
import type { AnyAgent } from '../../actors/index.js';
import { openStore } from '../../persistence/index.js';
import type { Store } from '../../persistence/types.js';
import { startControlPlane, type ControlPlane, type Runtime } from '../../runtime/index.js';
import type { RuntimeConfigInput } from '../../runtime/config.js';
import { PG_URL, dropSchema, schemaName, startNats, startRuntime } from '../helpers.js';
import { assertInspectorBuilt, launch, type BrowserSession } from './browser.js';

/** A started stack; `close()` stops everything it started, in reverse order. */
export interface InspectorStack {
  readonly nats: Awaited<ReturnType<typeof startNats>>;
  readonly store: Store;
  readonly rt: Runtime;
  readonly cp: ControlPlane;
  readonly browser: BrowserSession;
  readonly page: Page;
  close(): Promise<void>;
}

/** Starts the stack for a browser test file (`tag` names its Postgres schema). */
export async function startInspectorStack(tag: string, agents: readonly AnyAgent[], opts: { partitions?: number; config?: RuntimeConfigInput; width?: number; height?: number } = {}): Promise<InspectorStack> {
  assertInspectorBuilt();
  const nats = await startNats(opts.partitions ?? 8);
  const schema = schemaName(tag);
  const store = openStore({ databaseUrl: PG_URL, schema });
  const rt = await startRuntime(nats.url, { agents: [...agents], store, partitions: opts.partitions ?? 8, ...(opts.config ? { config: opts.config } : {}) });
  const cp = await startControlPlane(rt, { port: 0 });
  const browser = await launch(opts.width ?? 1280, opts.height ?? 800);
  return {
    nats, store, rt, cp, browser, page: browser.page,
    async close() {
      await browser.close();
      await cp.close();
      await rt.stop();
      await store.close();
      await nats.cleanup();
      await dropSchema(schema);
    },
  };
}
