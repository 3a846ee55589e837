// Shared test infrastructure: a real nats-server per suite (free port, temp store, the project's
// nats.conf), a real Postgres schema per suite (CI's 127.0.0.1:5432) or PGlite, runtimes wired
// to them, and polling helpers. Nothing here fakes NATS or Postgres.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { findNatsServerBinary, startNatsServer, type NatsServerHandle } from '../ops/natsServer.js';
import { createRuntime, type Runtime, type RuntimeOptions } from '../runtime/index.js';
import type { RuntimeConfigInput } from '../runtime/config.js';
import { createLogger } from '../runtime/logger.js';

export const PG_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A temp directory removed by the returned cleanup. */
export function tempDir(prefix = 'agentry-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => { rmSync(dir, { recursive: true, force: true }); } };
}

/**
 * The nats-server binary the tests run: `AGENTRY_TEST_NATS_SERVER` (a path) when set, so a suite
 * can be run on another server version (the cluster tests' results depend on it: nats-server
 * 2.9.10 loses messages in a cluster, docs/operations.md "A NATS cluster") without PATH tricks;
 * otherwise the one on PATH, then Debian's (`findNatsServerBinary`). A path that does not exist
 * fails loudly rather than falling back to another version unnoticed.
 */
export function testNatsServerBinary(): string {
  const bin = process.env.AGENTRY_TEST_NATS_SERVER;
  if (bin === undefined || bin === '') return findNatsServerBinary();
  if (!existsSync(bin)) throw new Error(`AGENTRY_TEST_NATS_SERVER is ${bin}, which does not exist: set it to a nats-server binary, or unset it to use the one on PATH`);
  return bin;
}

/** Starts a nats-server (`testNatsServerBinary()`) with the project's nats.conf on a free port. */
export async function startNats(partitions = 8): Promise<NatsServerHandle & { dir: string; cleanup: () => Promise<void> }> {
  const t = tempDir('agentry-nats-');
  const srv = await startNatsServer({ storeDir: join(t.dir, 'js'), partitions, binary: testNatsServerBinary() });
  return Object.assign(srv, {
    dir: t.dir,
    cleanup: async () => { await srv.stop(); t.cleanup(); },
  });
}

/** A fresh Postgres schema name; `dropSchema` removes it. */
export function schemaName(tag: string): string {
  return `t_${tag}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
}

export async function dropSchema(schema: string): Promise<void> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try { await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`); } finally { await c.end(); }
}

/** Starts a runtime against the given server with test-friendly defaults (quiet logs, short ack wait). */
export async function startRuntime(natsUrl: string, opts: Omit<RuntimeOptions, 'config'> & { config?: RuntimeConfigInput; partitions?: number }): Promise<Runtime> {
  return createRuntime({
    ...opts,
    logger: opts.logger ?? createLogger(process.env.TEST_LOG_LEVEL ?? 'silent'),
    // A long lease: single-node suites test other things than failover, and a 2-core box under
    // load can stall the event loop for seconds (a lapsed lease re-runs handlers: correct, but noisy).
    config: { natsUrl, partitions: opts.partitions ?? 8, ackWaitMs: 5000, store: 'memory', groupCommitLingerMs: 1, leaseTtlMs: 30_000, ...opts.config },
  });
}

/** Connects a plain NATS client (the "producer" side of tests). */
export function natsClient(url: string): Promise<NatsConnection> {
  return connect({ servers: url });
}

/** Publishes to a session inbox through JetStream with Agentry headers, as any producer would. */
export async function publish(nc: NatsConnection, sessionId: string, body: unknown, h: Record<string, string> = {}): Promise<number> {
  const hdrs = natsHeaders();
  for (const [k, v] of Object.entries(h)) hdrs.set(k, v);
  // A generous ack timeout: suites share 2 cores with a nats-server, Postgres and a runtime under load.
  const ack = await jetstream(nc, { timeout: 30_000 }).publish(`agentry.in.${sessionId}`, typeof body === 'string' ? body : JSON.stringify(body), { headers: hdrs });
  return ack.seq;
}

/** Polls `fn` until it returns a truthy value or the timeout passes (then throws with `what`). */
export async function waitFor<T>(fn: () => T | Promise<T>, what: string, timeoutMs = 20_000, everyMs = 20): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A suite's whole stack: its own nats-server, a fresh Postgres schema, the store and a runtime. */
export interface Stack {
  readonly nats: Awaited<ReturnType<typeof startNats>>;
  readonly schema: string;
  readonly store: import('../persistence/types.js').Store;
  readonly rt: Runtime;
  /** Stops the runtime, closes the store, stops NATS and drops the schema. */
  stop(): Promise<void>;
}

/** Starts a suite's stack (what most integration suites need in `beforeAll`). */
export async function startStack(tag: string, opts: Omit<RuntimeOptions, 'config' | 'store'> & { config?: RuntimeConfigInput; partitions?: number }): Promise<Stack> {
  const { openStore } = await import('../persistence/index.js');
  const nats = await startNats(opts.partitions ?? 8);
  const schema = schemaName(tag);
  const store = openStore({ databaseUrl: PG_URL, schema });
  const rt = await startRuntime(nats.url, { ...opts, store });
  return {
    nats, schema, store, rt,
    async stop() {
      await rt.stop();
      await store.close();
      await nats.cleanup();
      await dropSchema(schema);
    },
  };
}

/** A session's state, or null while its first message has not created it yet. */
export async function stateOf(rt: Runtime, sid: string): Promise<string | null> {
  try { return (await rt.getAgent(sid)).state; } catch (e) {
    if ((e as { code?: string }).code === 'UNKNOWN_SESSION') return null;
    throw e;
  }
}

/** What `pgSuite` sets up for an in-process suite (fields filled in `beforeAll`: read them inside tests and hooks). */
export interface PgSuite {
  readonly nats: Awaited<ReturnType<typeof startNats>>;
  readonly schema: string;
  readonly store: import('../persistence/types.js').Store;
  /** The suite's runtime, if it started one: stopped after the suite. */
  rt: Runtime | undefined;
}

/**
 * Registers the hooks an in-process suite over real servers needs: before, a nats-server and a
 * Postgres schema with a store; after, `beforeStop`, the runtime stopped, the store closed, the
 * server stopped and the schema dropped. Call it at the top of a file or of a `describe`.
 */
export function pgSuite(tag: string, opts: { beforeStop?: () => void } = {}): PgSuite {
  const suite = { rt: undefined } as { -readonly [K in keyof PgSuite]: PgSuite[K] };
  beforeAll(async () => {
    const { openStore } = await import('../persistence/index.js');
    suite.nats = await startNats(8);
    suite.schema = schemaName(tag);
    suite.store = openStore({ databaseUrl: PG_URL, schema: suite.schema });
  });
  afterAll(async () => {
    opts.beforeStop?.();
    await suite.rt?.stop();
    await suite.store?.close();
    await suite.nats?.cleanup();
    if (suite.schema) await dropSchema(suite.schema);
  });
  return suite;
}
