/**
 * Owns who may talk to the control plane: the bearer token (header, `?token=` query parameter
 * for browsers' WebSockets, or the cookie the UI sets after a `?token=` visit), the Origin
 * allowlist that stops other web sites from driving the API through a visitor's browser, and
 * the Host check that stops DNS-rebinding attacks on a token-less loopback server.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { AgentryError } from '../../actors/errors.js';

/** Name of the cookie the UI gets after a successful `?token=` visit. */
export const TOKEN_COOKIE = 'agentry_token';

/**
 * Refuses (CONFIG_INVALID) a control plane that would be reachable from other machines without a
 * token. Called by `startControlPlane`, and by the CLI before it starts a node, to fail fast.
 */
export function assertTokenBeyondLoopback(host: string, token: string | undefined): void {
  if (!isLoopbackHost(host) && !token) {
    throw new AgentryError('CONFIG_INVALID', `AGENTRY_TOKEN is required when the control plane binds to ${host} (not loopback): set a token of at least 16 characters`);
  }
}

/** True for names and addresses that only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (h === '::1') return true;
  if (h.startsWith('::ffff:')) return h.slice(7).startsWith('127.');
  return false;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Constant-time token comparison (hashing first makes the lengths equal). */
export function tokenMatches(expected: string, presented: string | undefined): boolean {
  if (presented === undefined) return false;
  return timingSafeEqual(digest(expected), digest(presented));
}

/** Where a request carries a token, if anywhere. */
export function presentedToken(req: IncomingMessage, url: URL): { token: string; via: 'header' | 'query' | 'cookie' } | undefined {
  const auth = req.headers.authorization;
  if (auth) {
    const m = /^Bearer\s+(.+)$/i.exec(auth.trim());
    if (m) return { token: m[1]!, via: 'header' };
  }
  const q = url.searchParams.get('token');
  if (q !== null) return { token: q, via: 'query' };
  const cookie = req.headers.cookie;
  if (cookie) {
    for (const part of cookie.split(';')) {
      const eq = part.indexOf('=');
      if (eq > 0 && part.slice(0, eq).trim() === TOKEN_COOKIE) {
        try { return { token: decodeURIComponent(part.slice(eq + 1).trim()), via: 'cookie' }; } catch { return undefined; }
      }
    }
  }
  return undefined;
}

/** The origins a browser page served by this server has: loopback names for a loopback bind, else the host. */
export function defaultOrigins(host: string, port: number): string[] {
  const names = isLoopbackHost(host) ? ['127.0.0.1', 'localhost', '[::1]'] : [host.includes(':') && !host.startsWith('[') ? `[${host}]` : host];
  return names.flatMap((n) => [`http://${n}:${port}`, `https://${n}:${port}`]);
}

/**
 * Decides whether a request's Origin may use the API. Clients that send no Origin (CLI, SDKs,
 * servers) are not browsers and are let through; the token guards them.
 */
export function originAllowed(origin: string | undefined, allowed: ReadonlySet<string>): boolean {
  if (origin === undefined) return true;
  return allowed.has(origin.toLowerCase().replace(/\/$/, ''));
}

/**
 * Host header check: a token-less server (loopback only) answers only requests addressed to a
 * loopback name or an allowed origin's host, so a DNS-rebound page on a foreign name is refused.
 */
export function hostAllowed(hostHeader: string | undefined, allowedOrigins: ReadonlySet<string>): boolean {
  if (!hostHeader) return true; // HTTP/1.0 clients; not a browser
  let hostname: string;
  try { hostname = new URL(`http://${hostHeader}`).hostname; } catch { return false; }
  if (isLoopbackHost(hostname)) return true;
  for (const o of allowedOrigins) {
    try { if (new URL(o).host === hostHeader.toLowerCase()) return true; } catch { /* skip */ }
  }
  return false;
}
