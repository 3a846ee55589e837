// Readiness against blackholed servers (issue 11 item 7): a real Postgres and a real
// nats-server, each reached through the TCP proxy, which accepts and swallows traffic without
// answering (a dropped route). The store ping and the NATS flush then never settle; readiness
// must turn false anyway (the ping deadline), the other check must stay true, and both must
// turn true again once the route is back, whether the blackhole reset the connections or froze
// and resumed them.
//
// The health object is created here directly against a real pg store and a real NATS
// connection, with the options the runtime uses; runtime/runtime.ts wires the same object
// into `runtime.readiness()` and /readyz.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createPgStore } from '../../persistence/index.js';
import type { Store } from '../../persistence/types.js';
import { createHealth, type Health } from '../../runtime/health.js';
import { createLogger } from '../../runtime/logger.js';
import { PG_URL, startNats, waitFor } from '../helpers.js';
import { startTcpProxy, type TcpProxy } from './tcpProxy.js';

let nats: Awaited<ReturnType<typeof startNats>>;
let pgProxy: TcpProxy;
let natsProxy: TcpProxy;
let store: Store;
let nc: NatsConnection;
let health: Health;

beforeAll(async () => {
  nats = await startNats(8);
  const pgUrl = new URL(PG_URL);
  pgProxy = await startTcpProxy(Number(pgUrl.port || 5432), pgUrl.hostname);
  natsProxy = await startTcpProxy(Number(new URL(nats.url).port));
  pgUrl.hostname = '127.0.0.1';
  pgUrl.port = String(pgProxy.port);
  store = createPgStore({ connectionString: pgUrl.toString() });
  await store.ping();
  nc = await connect({ servers: `127.0.0.1:${natsProxy.port}`, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
  health = createHealth({ store, nc, logger: createLogger(process.env.TEST_LOG_LEVEL ?? 'silent'), intervalMs: 500, timeoutMs: 2000 });
  await waitFor(() => health.readiness().ok, 'ready at start', 60_000);
});

afterAll(async () => {
  health?.stop();
  pgProxy?.restore();
  natsProxy?.restore();
  await nc?.close().catch(() => undefined);
  await store?.close().catch(() => undefined);
  await pgProxy?.close();
  await natsProxy?.close();
  await nats?.cleanup();
});

describe('readiness with a blackholed server', () => {
  it('Postgres blackholed: the store check turns false, NATS stays ready; back to ready when the route returns', async () => {
    pgProxy.blackhole();
    await waitFor(() => !health.readiness().checks.store, 'store not ready while blackholed', 90_000);
    expect(health.readiness()).toEqual({ ok: false, checks: { nats: true, store: false, migrations: true } });
    pgProxy.restore(); // the swallowed connections are reset; the pool opens new ones
    await waitFor(() => health.readiness().ok, 'ready again after the blackhole', 90_000);
  }, 240_000);

  it('NATS blackholed: the NATS check turns false, the store stays ready; back to ready after a reset and after a healed freeze', async () => {
    natsProxy.blackhole();
    await waitFor(() => !health.readiness().checks.nats, 'NATS not ready while blackholed', 90_000);
    expect(health.readiness()).toEqual({ ok: false, checks: { nats: false, store: true, migrations: true } });
    natsProxy.restore(); // reset: the client reconnects
    await waitFor(() => health.readiness().ok, 'ready again after the reconnect', 90_000);

    natsProxy.blackhole({ heal: true });
    await waitFor(() => !health.readiness().checks.nats, 'NATS not ready while frozen', 90_000);
    natsProxy.restore(); // the frozen connection resumes: the outstanding flush is answered
    await waitFor(() => health.readiness().ok, 'ready again after the freeze healed', 90_000);
  }, 400_000);
});
