/**
 * Owns the inspector UI's files as served by the control plane: read once from `inspector/dist`
 * into memory (no file system access per request, no path traversal), or a placeholder page
 * when the inspector has not been built.
 *
 * Compression: a text file (HTML, JS, CSS, JSON, SVG, source maps) of 1 KiB or more is sent
 * brotli- or gzip-encoded when the request's Accept-Encoding allows it (brotli preferred), with
 * `Vary: Accept-Encoding` and an ETag per encoding. Each encoding is made once, on the first
 * request that asks for it, and kept in memory beside the file (a control plane that nobody
 * browses pays nothing; one that is browsed compresses each file at most twice).
 */
import { createHash } from 'node:crypto';
import { brotliCompressSync, constants as zlibConstants, gzipSync } from 'node:zlib';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One file ready to send. */
export interface StaticFile {
  readonly body: Buffer;
  readonly type: string;
  readonly etag: string;
  /** True when it is worth compressing (text of at least `COMPRESS_MIN_BYTES`). */
  readonly compressible?: boolean;
  /** Encoded bodies made so far (filled by `variantOf`). */
  readonly encoded?: Map<ContentEncoding, Buffer | null>;
}

/** A content coding the server can send. */
export type ContentEncoding = 'br' | 'gzip';

/** What to send for one request: the body, its encoding (absent: none) and its ETag. */
export interface StaticVariant {
  readonly body: Buffer;
  readonly encoding?: ContentEncoding;
  readonly etag: string;
  /** True when the response depends on Accept-Encoding (send `Vary`). */
  readonly varies: boolean;
}

/** Smaller files are sent as they are (the headers would eat the gain). */
export const COMPRESS_MIN_BYTES = 1024;

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.map': 'application/json', '.svg': 'image/svg+xml',
  '.png': 'image/png', '.jpg': 'image/jpeg', '.ico': 'image/x-icon', '.woff2': 'font/woff2', '.woff': 'font/woff', '.txt': 'text/plain; charset=utf-8',
};

const MAX_TOTAL_BYTES = 64 * 1024 * 1024;

/** The directory holding package.json, found from this module (works from sources and from dist/). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  return process.cwd();
}

const isText = (type: string): boolean => type.startsWith('text/') || type.startsWith('application/json') || type === 'image/svg+xml';

function fileOf(body: Buffer, type: string): StaticFile {
  const compressible = isText(type) && body.length >= COMPRESS_MIN_BYTES;
  return { body, type, etag: `"${createHash('sha1').update(body).digest('base64url')}"`, ...(compressible ? { compressible, encoded: new Map() } : {}) };
}

/**
 * The codings a request accepts, best first (`br`, then `gzip`), from its Accept-Encoding
 * (RFC 9110 §12.5.3: `q=0` refuses a coding; `*` stands for those not named).
 */
export function acceptedEncodings(header: string | undefined): ContentEncoding[] {
  if (!header) return [];
  const q = new Map<string, number>();
  for (const part of header.split(',')) {
    const [name, ...params] = part.trim().toLowerCase().split(';');
    if (!name) continue;
    const qp = params.map((x) => x.trim()).find((x) => x.startsWith('q='));
    const v = qp ? Number(qp.slice(2)) : 1;
    q.set(name, Number.isFinite(v) ? v : 0);
  }
  const star = q.get('*');
  return (['br', 'gzip'] as const).filter((e) => (q.get(e) ?? star ?? 0) > 0);
}

function encode(body: Buffer, enc: ContentEncoding): Buffer {
  return enc === 'br'
    ? brotliCompressSync(body, { params: { [zlibConstants.BROTLI_PARAM_QUALITY]: 10, [zlibConstants.BROTLI_PARAM_SIZE_HINT]: body.length } })
    : gzipSync(body, { level: 9 });
}

/** The body to send for a request whose Accept-Encoding is `acceptEncoding`. */
export function variantOf(file: StaticFile, acceptEncoding: string | undefined): StaticVariant {
  if (!file.compressible || !file.encoded) return { body: file.body, etag: file.etag, varies: false };
  for (const enc of acceptedEncodings(acceptEncoding)) {
    let body = file.encoded.get(enc);
    if (body === undefined) {
      const made = encode(file.body, enc);
      body = made.length < file.body.length * 0.95 ? made : null; // not worth it: keep sending the original
      file.encoded.set(enc, body);
    }
    if (body) return { body, encoding: enc, etag: `${file.etag.slice(0, -1)}-${enc}"`, varies: true };
  }
  return { body: file.body, etag: file.etag, varies: true };
}

/** The page served at `/` while `inspector/dist` does not exist. */
export function placeholderFiles(): Map<string, StaticFile> {
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Agentry</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; line-height: 1.5">
<h1>Agentry</h1>
<p>The runtime is running, but the inspector UI is not built, so there is nothing to show here yet.</p>
<p>The control API is at <code>/rpc</code> (WebSocket JSON-RPC 2.0, described by <a href="/openrpc.json">/openrpc.json</a>);
health at <a href="/healthz">/healthz</a> and <a href="/readyz">/readyz</a>; metrics at <a href="/metrics">/metrics</a>.</p>
</body></html>
`;
  return new Map([['/index.html', fileOf(Buffer.from(html), TYPES['.html']!)]]);
}

/**
 * Reads every file under `dir` into a map keyed by URL path (`/assets/app.js`). Returns the
 * placeholder when the directory is missing or empty.
 */
export function loadStaticFiles(dir: string | undefined = join(packageRoot(), 'inspector', 'dist')): Map<string, StaticFile> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return placeholderFiles();
  const files = new Map<string, StaticFile>();
  let total = 0;
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const full = join(d, entry.name);
      if (entry.isDirectory()) { walk(full); continue; }
      if (!entry.isFile()) continue;
      const body = readFileSync(full);
      total += body.length;
      if (total > MAX_TOTAL_BYTES) throw new Error(`inspector files in ${dir} exceed ${MAX_TOTAL_BYTES} bytes`);
      const urlPath = '/' + relative(dir, full).split(sep).join('/');
      files.set(urlPath, fileOf(body, TYPES[extname(full).toLowerCase()] ?? 'application/octet-stream'));
    }
  };
  walk(dir);
  return files.has('/index.html') ? files : placeholderFiles();
}

/** The file for a request path: exact match, else `index.html` (client-side routes of a single-page app). */
export function lookupStatic(files: ReadonlyMap<string, StaticFile>, pathname: string): StaticFile | undefined {
  const p = pathname === '/' ? '/index.html' : pathname;
  const hit = files.get(p);
  if (hit) return hit;
  return extname(p) === '' ? files.get('/index.html') : undefined;
}
