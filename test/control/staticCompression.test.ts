// Issue 18: the control plane serves the inspector's text files compressed (brotli, else gzip)
// when Accept-Encoding allows it, with Vary: Accept-Encoding and an ETag per encoding, over real
// HTTP (node:http, which neither adds Accept-Encoding nor decodes, unlike fetch). Small files,
// binary files and clients that refuse an encoding get the bytes as they are.
import { mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echo } from '../../examples/echo.js';
import { acceptedEncodings } from '../../runtime/http/staticFiles.js';
import { startControlPlane, type ControlPlane } from '../../runtime/index.js';
import { startStack, tempDir, type Stack } from '../helpers.js';

let stack: Stack;
let cp: ControlPlane;
let ui: ReturnType<typeof tempDir>;
const APP = `// the inspector bundle\n${Array.from({ length: 400 }, (_, i) => `export const value${i} = "state ${i % 7}";`).join('\n')}\n`;
const PNG = Buffer.alloc(4096, 7);

interface Reply { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }
function get(path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(`${cp.url}${path}`, { headers, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => { chunks.push(c); });
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }); });
      res.on('error', reject);
    });
    req.on('timeout', () => { req.destroy(new Error(`GET ${path} timed out`)); });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  stack = await startStack('static_gzip', { agents: [echo] });
  ui = tempDir('agentry-ui-');
  mkdirSync(join(ui.dir, 'assets'));
  writeFileSync(join(ui.dir, 'index.html'), '<!doctype html><title>inspector</title><script src="/assets/app.js"></script>');
  writeFileSync(join(ui.dir, 'assets', 'app.js'), APP);
  writeFileSync(join(ui.dir, 'assets', 'logo.png'), PNG);
  cp = await startControlPlane(stack.rt, { port: 0, staticDir: ui.dir });
}, 60_000);

afterAll(async () => {
  await cp?.close();
  await stack?.stop();
  ui?.cleanup();
});

describe('compressed static files', () => {
  it('sends brotli when accepted, else gzip, else identity; each with Vary and its own ETag', async () => {
    const br = await get('/assets/app.js', { 'Accept-Encoding': 'gzip, deflate, br' });
    expect(br.status).toBe(200);
    expect(br.headers['content-encoding']).toBe('br');
    expect(br.headers.vary).toBe('Accept-Encoding');
    expect(Number(br.headers['content-length'])).toBe(br.body.length);
    expect(br.body.length).toBeLessThan(APP.length / 4);
    expect(brotliDecompressSync(br.body).toString()).toBe(APP);

    const gz = await get('/assets/app.js', { 'Accept-Encoding': 'gzip' });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(gz.body).toString()).toBe(APP);

    const plain = await get('/assets/app.js');
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.headers.vary).toBe('Accept-Encoding');
    expect(plain.body.toString()).toBe(APP);

    const refused = await get('/assets/app.js', { 'Accept-Encoding': 'br;q=0, gzip;q=0.5' });
    expect(refused.headers['content-encoding']).toBe('gzip');

    const etags = new Set([br.headers.etag, gz.headers.etag, plain.headers.etag]);
    expect(etags.size).toBe(3);
    // A revalidation matches its own encoding's ETag only.
    expect((await get('/assets/app.js', { 'Accept-Encoding': 'br', 'If-None-Match': String(br.headers.etag) })).status).toBe(304);
    expect((await get('/assets/app.js', { 'Accept-Encoding': 'gzip', 'If-None-Match': String(br.headers.etag) })).status).toBe(200);
  });

  it('leaves small and binary files alone', async () => {
    const html = await get('/', { 'Accept-Encoding': 'br, gzip' });
    expect(html.headers['content-encoding']).toBeUndefined();
    expect(html.body.toString()).toContain('<title>inspector</title>');
    const png = await get('/assets/logo.png', { 'Accept-Encoding': 'br, gzip' });
    expect(png.headers['content-encoding']).toBeUndefined();
    expect(png.headers.vary).toBeUndefined();
    expect(png.body.equals(PNG)).toBe(true);
  });

  it('reads Accept-Encoding as RFC 9110 says', () => {
    expect(acceptedEncodings(undefined)).toEqual([]);
    expect(acceptedEncodings('gzip, br')).toEqual(['br', 'gzip']);
    expect(acceptedEncodings('*')).toEqual(['br', 'gzip']);
    expect(acceptedEncodings('*;q=0.1, br;q=0')).toEqual(['gzip']);
    expect(acceptedEncodings('identity')).toEqual([]);
    expect(acceptedEncodings('GZIP;Q=1')).toEqual(['gzip']);
  });
});
