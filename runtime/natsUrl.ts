/**
 * Credentials in NATS_URL. The Go and CLI clients accept `nats://user:password@host:4222`
 * (and `nats://token@host`); the nats.js v3 client does not read them from the URL, so the
 * runtime and the CLI split them out here into connect options.
 */

/** Connect options for `@nats-io/transport-node`'s `connect` from a URL or a comma-separated list. */
export interface NatsUrlOptions {
  readonly servers: string[];
  readonly user?: string;
  readonly pass?: string;
  readonly token?: string;
  /** `_INBOX_<user>` for a named user: ops/nats-auth.conf lets each user read only its own replies. */
  readonly inboxPrefix?: string;
}

/** Strips credentials from every server URL and returns them as options (first URL with credentials wins). */
export function natsConnectOptions(url: string): NatsUrlOptions {
  let user: string | undefined;
  let pass: string | undefined;
  const servers = url.split(',').map((s) => s.trim()).filter(Boolean).map((s) => {
    const m = /^([a-z]+:\/\/)?([^@/]*)@(.+)$/i.exec(s);
    if (!m) return s;
    const [, scheme = '', userinfo = '', rest = ''] = m;
    if (user === undefined && userinfo !== '') {
      const colon = userinfo.indexOf(':');
      user = decodeURIComponent(colon < 0 ? userinfo : userinfo.slice(0, colon));
      pass = colon < 0 ? undefined : decodeURIComponent(userinfo.slice(colon + 1));
    }
    return `${scheme}${rest}`;
  });
  if (user === undefined) return { servers };
  if (pass === undefined) return { servers, token: user };
  return /^[A-Za-z0-9_-]+$/.test(user) ? { servers, user, pass, inboxPrefix: `_INBOX_${user}` } : { servers, user, pass };
}
