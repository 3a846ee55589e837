// A loopback TCP proxy a test can cut: `cut()` destroys every proxied connection and refuses
// new ones (accepts and closes them at once) until `restore()`. Used to take Postgres away from
// a runtime while the test itself still reaches Postgres directly.
import { createServer, connect, type Socket } from 'node:net';

export interface TcpProxy {
  readonly port: number;
  /** Connections accepted since start (including refused ones). */
  readonly accepted: () => number;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let isCut = false;
  let accepted = 0;
  const server = createServer((client) => {
    accepted++;
    if (isCut) { client.destroy(); return; }
    const upstream = connect(targetPort, targetHost);
    sockets.add(client);
    sockets.add(upstream);
    const close = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const s of [client, upstream]) { s.on('error', close); s.on('close', close); }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(0, '127.0.0.1', resolve); });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    port,
    accepted: () => accepted,
    cut() {
      isCut = true;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    restore() { isCut = false; },
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      sockets.clear();
      server.close(() => { resolve(); });
    }),
  };
}
