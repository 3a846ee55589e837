// Cross-node commands (runtime/ctl.ts) against a real nats-server: what a caller gets when no
// node owns the session's partition (no responders: NOT_READY, after a few retries) and when the
// owner does not answer (TIMEOUT, at once). These are told apart by the NATS client's error
// classes, not by the wording of its messages.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { requestCtl } from '../../runtime/ctl.js';
import { natsClient, startNats } from '../helpers.js';

let nats: Awaited<ReturnType<typeof startNats>>;
let nc: NatsConnection;

beforeAll(async () => {
  nats = await startNats(8);
  nc = await natsClient(nats.url);
});

afterAll(async () => {
  await nc?.close();
  await nats?.cleanup();
});

describe('requestCtl errors', () => {
  it('no node owns the partition: NOT_READY, retryable, once the retries are spent', async () => {
    const err = await requestCtl(nc, 'nobody-owns-me', 'getAgent', [], 500).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'NOT_READY', retryable: true, message: expect.stringContaining('no node owns the partition of session nobody-owns-me') });
  });

  it('the owner does not answer: TIMEOUT, retryable, without retrying', async () => {
    let asked = 0;
    const silent = nc.subscribe('agentry.ctlpart.*.silent-owner', { callback: () => { asked++; } });
    await nc.flush();
    try {
      const err = await requestCtl(nc, 'silent-owner', 'getAgent', [], 300).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'TIMEOUT', retryable: true, message: expect.stringContaining('did not answer within 300 ms') });
      expect(asked).toBe(1); // a command may have been applied: it is not sent again
    } finally {
      silent.unsubscribe();
    }
  });

  it('an answer with an error keeps its code', async () => {
    const owner = nc.subscribe('agentry.ctlpart.*.refusing-owner', { callback: (_e, m) => { m.respond(JSON.stringify({ ok: false, error: { code: 'UNKNOWN_SESSION', message: 'no session refusing-owner', retryable: false } })); } });
    await nc.flush();
    try {
      await expect(requestCtl(nc, 'refusing-owner', 'getAgent', [], 2_000)).rejects.toMatchObject({ code: 'UNKNOWN_SESSION', message: 'no session refusing-owner' });
    } finally {
      owner.unsubscribe();
    }
  });
});
