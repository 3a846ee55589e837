// One inspector test stack: a nats-server, a Postgres schema, a runtime with the given agents,
// its control plane serving the built inspector, a NATS client for publishing as producers do,
// and one Chromium page (browser.ts) — what a
// browser test file starts once in beforeAll and closes in afterAll. Keeps each file to one
// browser launch.
import type { NatsConnection } from '@nats-io/transport-node';
import type { Page } from 'playwright-core';
import type { AnyAgent } from '../../actors/index.js';
import { openStore } from '../../persistence/index.js';
import type { Store } from '../../persistence/types.js';
import { startControlPlane, type ControlPlane, type Runtime } from '../../runtime/index.js';
import type { RuntimeConfigInput } from '../../runtime/config.js';
import { PG_URL, dropSchema, natsClient, schemaName, startNats, startRuntime } from '../helpers.js';
import { assertInspectorBuilt, launch, type BrowserSession } from './browser.js';

/** A started stack; `close()` stops everything it started, in reverse order. */
export interface InspectorStack {
  readonly nats: Awaited<ReturnType<typeof startNats>>;
  /** The Postgres schema of the stack's store (for seeding rows straight into it). */
  readonly schema: string;
  readonly store: Store;
  readonly rt: Runtime;
  readonly cp: ControlPlane;
  readonly nc: NatsConnection;
  readonly browser: BrowserSession;
  readonly page: Page;
  close(): Promise<void>;
}

/** Starts the stack for a browser test file (`tag` names its Postgres schema). */
export async function startInspectorStack(tag: string, agents: readonly AnyAgent[], opts: { partitions?: number; config?: RuntimeConfigInput; width?: number; height?: number; token?: string } = {}): Promise<InspectorStack> {
  assertInspectorBuilt();
  const undo: (() => Promise<unknown>)[] = [];
  /** Stops what started so far, newest first (a failed start leaves nothing running). */
  const unwind = async (): Promise<void> => { for (const f of undo.reverse()) await f().catch(() => undefined); };
  try {
    const nats = await startNats(opts.partitions ?? 8);
    undo.push(() => nats.cleanup());
    const schema = schemaName(tag);
    undo.push(() => dropSchema(schema));
    const store = openStore({ databaseUrl: PG_URL, schema });
    undo.push(() => store.close());
    const rt = await startRuntime(nats.url, { agents: [...agents], store, partitions: opts.partitions ?? 8, ...(opts.config ? { config: opts.config } : {}) });
    undo.push(() => rt.stop());
    const cp = await startControlPlane(rt, { port: 0, ...(opts.token ? { token: opts.token } : {}) });
    undo.push(() => cp.close());
    const nc = await natsClient(nats.url);
    undo.push(() => nc.close());
    const browser = await launch(opts.width ?? 1280, opts.height ?? 800);
    undo.push(() => browser.close());
    return { nats, schema, store, rt, cp, nc, browser, page: browser.page, close: unwind };
  } catch (e) {
    await unwind();
    throw e;
  }
}
