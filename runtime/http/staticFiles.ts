/**
 * Owns the inspector UI's files as served by the control plane: read once from `inspector/dist`
 * into memory (no file system access per request, no path traversal), or a placeholder page
 * when the inspector has not been built.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One file ready to send. */
export interface StaticFile {
  readonly body: Buffer;
  readonly type: string;
  readonly etag: string;
}

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

function fileOf(body: Buffer, type: string): StaticFile {
  return { body, type, etag: `"${createHash('sha1').update(body).digest('base64url')}"` };
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
