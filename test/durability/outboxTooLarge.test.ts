// An output NATS can never carry must cost one dead letter and nothing else. A handler's reply
// larger than the server's max_payload (1 MB in nats.conf), or mail larger than the inbox
// stream's largest message, is committed to the outbox like any
// output; its publish then fails every time. Until 2026-11-28 the outbox stopped at that row on
// every sweep (oldest first, "stop at the first failure"), so it stayed forever and every row
// stored after it — outputs left by a crash, a NATS outage or an ambiguous commit, of any session
// of the node's partitions — was never published. Real nats-server and Postgres.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { defineAgent } from '../../actors/index.js';
import { PG_URL, natsClient, publish, startStack, waitFor, type Stack } from '../helpers.js';

const big = defineAgent({
  type: 'big-reply',
  onMessage: 'queue',
  handle(batch, ctx) {
    for (const m of batch) {
      const b = m.body as { size?: number; mailSize?: number };
      if (b.mailSize !== undefined) ctx.mail('ob-3', { text: 'y'.repeat(b.mailSize) }); // over the inbox stream's largest message
      else ctx.reply({ text: 'x'.repeat(b.size ?? 10) });
    }
  },
});

describe('an output too large for NATS', () => {
  let stack: Stack;
  beforeAll(async () => { stack = await startStack('outboxbig', { agents: [big], config: { defaultAgentType: 'big-reply' } }); }, 60_000);
  afterAll(async () => { await stack?.stop(); });

  it('becomes one dead letter; outputs stored after it are still published', async () => {
    const db = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${stack.schema}` });
    await db.connect();
    const nc = await natsClient(stack.nats.url);
    try {
      const got: string[] = [];
      const sub = nc.subscribe('agentry.out.ob-2', { callback: (_e, m) => { got.push(m.headers?.get('Nats-Msg-Id') ?? ''); } });
      await publish(nc, 'ob-1', { size: 2 * 1024 * 1024 }); // 2 MB reply: over max_payload
      await publish(nc, 'ob-4', { mailSize: 2 * 1024 * 1024 }); // 2 MB mail
      const row = await waitFor(async () => (await db.query<{ created_at: string }>(`SELECT created_at::text FROM outbox WHERE session_id = 'ob-1'`)).rows[0], 'the large reply committed to the outbox', 30_000, 50)
        .catch(() => null); // a fixed runtime may have dead-lettered it already
      // An output stored after it and left unpublished (as a crash between commit and publish leaves one).
      const at = row ? Number(row.created_at) + 1 : Date.now();
      await db.query(`INSERT INTO outbox (id, session_id, subject, headers, body, created_at) VALUES ('stranded-1', 'ob-2', 'agentry.out.ob-2', '{"Agentry-Kind":"reply"}', '{"text":"left behind"}', $1)`, [at]);
      await waitFor(() => got.includes('stranded-1') || null, 'the output stored after the large one to be published', 45_000, 100);
      await waitFor(async () => Number((await db.query<{ n: string }>('SELECT count(*)::text AS n FROM outbox')).rows[0]!.n) === 0 || null, 'the outbox to be empty', 30_000, 100);
      const dls = await stack.store.listDeadLetters();
      // The client refuses the reply (core NATS: over max_payload); the mail is over the stream's limit.
      expect(dls.filter((d) => d.sessionId === 'ob-1').map((d) => d.reason)).toEqual(['output-unpublishable']);
      expect(dls.filter((d) => d.sessionId === 'ob-4').map((d) => d.reason)).toEqual(['output-too-large']);
      // The session goes on.
      await publish(nc, 'ob-1', { size: 5 });
      await waitFor(async () => ((await stack.rt.getAgent('ob-1')).lastSeq ?? 0) > 0 && (await stack.store.getHistory('ob-1', { limit: 10 })).length >= 2 || null, 'a later message of the session handled', 30_000, 100);
      sub.unsubscribe();
    } finally {
      await nc.close();
      await db.end();
    }
  }, 180_000);
});
