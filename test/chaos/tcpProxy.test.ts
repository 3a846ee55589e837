// The fault proxy's three modes against a loopback echo server: pass forwards, refuse resets
// old and new connections, blackhole accepts and reads but never answers (and resets or, with
// `heal`, resumes what it held when the blackhole ends).
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTcpProxy, type TcpProxy } from '../durability/tcpProxy.js';

let echo: Server;
let echoPort = 0;
let proxy: TcpProxy;

/** A client on the proxy that collects what it reads and whether it was closed. */
function client(port: number): Promise<{ sock: Socket; got: () => string; closed: () => boolean }> {
  return new Promise((resolve, reject) => {
    let data = '';
    let closed = false;
    const sock = connect(port, '127.0.0.1', () => { resolve({ sock, got: () => data, closed: () => closed }); });
    sock.on('data', (d: Buffer) => { data += d.toString(); });
    sock.on('close', () => { closed = true; });
    sock.on('error', () => { closed = true; });
    sock.once('error', reject);
  });
}

const until = async (cond: () => boolean, ms = 2000): Promise<boolean> => {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  return cond();
};

beforeAll(async () => {
  echo = createServer((s) => { s.pipe(s); });
  await new Promise<void>((r) => { echo.listen(0, '127.0.0.1', r); });
  echoPort = (echo.address() as { port: number }).port;
  proxy = await startTcpProxy(echoPort);
});

afterAll(async () => {
  await proxy.close();
  await new Promise<void>((r) => { echo.close(() => { r(); }); });
});

describe('tcpProxy modes', () => {
  it('pass forwards, refuse resets old and new connections, pass again forwards', async () => {
    const a = await client(proxy.port);
    a.sock.write('hello');
    expect(await until(() => a.got() === 'hello')).toBe(true);
    proxy.setMode('refuse');
    expect(proxy.mode()).toBe('refuse');
    expect(await until(() => a.closed())).toBe(true);
    const b = await client(proxy.port);
    expect(await until(() => b.closed())).toBe(true);
    proxy.setMode('pass');
    const c = await client(proxy.port);
    c.sock.write('again');
    expect(await until(() => c.got() === 'again')).toBe(true);
    c.sock.destroy();
  });

  it('blackhole: nothing answered on old or new connections; both are reset when it ends', async () => {
    const a = await client(proxy.port);
    proxy.blackhole();
    a.sock.write('lost');
    const b = await client(proxy.port); // accepted
    b.sock.write('ping');
    await new Promise((r) => setTimeout(r, 200));
    expect(a.got()).toBe('');
    expect(b.got()).toBe('');
    expect(a.closed() || b.closed()).toBe(false);
    proxy.restore();
    expect(await until(() => a.closed() && b.closed())).toBe(true);
    const c = await client(proxy.port);
    c.sock.write('back');
    expect(await until(() => c.got() === 'back')).toBe(true);
    c.sock.destroy();
  });

  it('blackhole with heal: held connections resume and deliver what was written meanwhile', async () => {
    const a = await client(proxy.port);
    a.sock.write('x');
    expect(await until(() => a.got() === 'x')).toBe(true);
    proxy.blackhole({ heal: true });
    a.sock.write('y');
    await new Promise((r) => setTimeout(r, 200));
    expect(a.got()).toBe('x');
    proxy.restore();
    expect(await until(() => a.got() === 'xy')).toBe(true);
    expect(a.closed()).toBe(false);
    a.sock.destroy();
  });
});
