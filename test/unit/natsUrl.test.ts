// Credentials in NATS_URL become connect options; a named user gets its own reply-inbox prefix,
// which is all ops/nats-auth.conf lets it read (the `publisher` user may not read `_INBOX.>`).
import { describe, expect, it } from 'vitest';
import { natsConnectOptions } from '../../runtime/natsUrl.js';

describe('natsConnectOptions', () => {
  it('splits user and password out of the URLs and gives the user its own inbox prefix', () => {
    expect(natsConnectOptions('nats://publisher:s%40cret@127.0.0.1:4222,nats://127.0.0.1:4223')).toEqual({
      servers: ['nats://127.0.0.1:4222', 'nats://127.0.0.1:4223'], user: 'publisher', pass: 's@cret', inboxPrefix: '_INBOX_publisher',
    });
  });
  it('keeps a token as a token and plain URLs as they are', () => {
    expect(natsConnectOptions('nats://tok123@127.0.0.1:4222')).toEqual({ servers: ['nats://127.0.0.1:4222'], token: 'tok123' });
    expect(natsConnectOptions('nats://127.0.0.1:4222')).toEqual({ servers: ['nats://127.0.0.1:4222'] });
  });
  it('gives no prefix to a user name that is no subject token', () => {
    expect(natsConnectOptions('nats://a.b:pw@127.0.0.1:4222').inboxPrefix).toBeUndefined();
  });
});
