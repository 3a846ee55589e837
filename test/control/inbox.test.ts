// Issue 13, item 6: `agentry inbox` finds and removes a stuck inbox message over the JetStream
// API (no `nats` CLI). Messages published while no node runs stay unacked in the work-queue
// stream: `inbox list` counts them per partition and names the oldest, `inbox show` prints one,
// `inbox purge <seq> --reason` removes it and announces it on agentry.dlq.<session>. When a node
// starts, the session gets every other message, in order, and never the purged one. Runs the
// compiled CLI (dist/), as a user would.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { defineAgent } from '../../actors/index.js';
import { openStore } from '../../persistence/index.js';
import type { Store } from '../../persistence/types.js';
import type { Runtime } from '../../runtime/index.js';
import { assertDistFresh } from '../builtFresh.js';
import { PG_URL, dropSchema, natsClient, publish, schemaName, startNats, startRuntime, tempDir, waitFor } from '../helpers.js';

const CLI = join(process.cwd(), 'dist', 'runtime', 'cli.js');
type Nats = Awaited<ReturnType<typeof startNats>>;
let nats: Nats;
let schema: string;
let store: Store;
let nc: NatsConnection;
let rt: Runtime | undefined;
const data = tempDir('agentry-inbox-');

const seen = new Map<string, unknown[]>();
const recorder = defineAgent({
  type: 'recorder',
  onMessage: 'queue',
  handle(batch, ctx) {
    for (const m of batch) seen.set(ctx.sessionId, [...(seen.get(ctx.sessionId) ?? []), m.body]);
    return undefined;
  },
});

/** Runs `agentry inbox …` against the suite's server. */
function inbox(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'inbox', ...args], { env: { ...process.env, NATS_URL: nats.url, AGENTRY_DATA_DIR: data.dir }, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const start = (): Promise<Runtime> => startRuntime(nats.url, { agents: [recorder], store, config: { defaultAgentType: 'recorder' } });

beforeAll(async () => {
  assertDistFresh('dist/runtime/cli.js', ['runtime/cli', 'runtime/cli.ts', 'runtime/natsUrl.ts']);
  nats = await startNats(8);
  schema = schemaName('inbox_cli');
  store = openStore({ databaseUrl: PG_URL, schema });
  nc = await natsClient(nats.url);
  // A node creates the streams, then goes away: what is published now waits in the inbox.
  rt = await start();
  await rt.stop();
  rt = undefined;
});

afterAll(async () => {
  await rt?.stop();
  await nc?.close();
  await store?.close();
  await nats?.cleanup();
  if (schema) await dropSchema(schema);
  data.cleanup();
});

describe('agentry inbox', () => {
  it('lists the unacked messages per partition, shows one, purges it; the next node never applies it', async () => {
    const seqs: number[] = [];
    for (let i = 1; i <= 3; i++) seqs.push(await publish(nc, 'stuck-1', { step: i }, { 'Agentry-Priority': 'high' }));
    const other = await publish(nc, 'other-1', 'plain text');

    const listed = await inbox('list', '--json');
    expect(listed, listed.stderr).toMatchObject({ code: 0 });
    const all = JSON.parse(listed.stdout) as { stream: string; partitions: { partition: number; unacked: number; sessions: number; oldest: { seq: number; sessionId: string } }[] };
    expect(all.stream).toBe('AGENTRY_INBOX');
    expect(all.partitions.reduce((n, p) => n + p.unacked, 0)).toBe(4);
    const mine = await inbox('list', '--session', 'stuck-1', '--json');
    const [part] = (JSON.parse(mine.stdout) as typeof all).partitions;
    expect(part).toMatchObject({ unacked: 3, sessions: 1, oldest: { seq: seqs[0], sessionId: 'stuck-1' } });
    const human = await inbox('list');
    expect(human.stdout).toMatch(/partition\s+unacked\s+sessions\s+oldest seq/);
    expect(human.stdout).toContain('stuck-1');

    const shown = await inbox('show', String(seqs[1]), '--json');
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({ seq: seqs[1], sessionId: 'stuck-1', partition: part!.partition, payload: { step: 2 }, headers: { 'Agentry-Priority': 'high' } });
    const text = await inbox('show', String(other));
    expect(text.stdout).toContain('session other-1');
    expect(text.stdout).toContain('plain text');

    const notices: unknown[] = [];
    const sub = nc.subscribe('agentry.dlq.stuck-1');
    void (async () => { for await (const m of sub) notices.push(m.json()); })();
    await nc.flush();
    const purged = await inbox('purge', String(seqs[1]), '--reason', 'poison: crashes the model');
    expect(purged, purged.stderr).toMatchObject({ code: 0 });
    expect(purged.stdout).toContain(`purged message ${seqs[1]} of stuck-1`);
    await waitFor(() => notices.length === 1, 'the purge notice on agentry.dlq.stuck-1');
    expect(notices[0]).toMatchObject({ id: `stuck-1:${seqs[1]}`, sessionId: 'stuck-1', reason: 'purged', error: 'poison: crashes the model', payload: { step: 2 } });
    sub.unsubscribe();
    const after = JSON.parse((await inbox('list', '--session', 'stuck-1', '--json')).stdout) as typeof all;
    expect(after.partitions[0]).toMatchObject({ unacked: 2, oldest: { seq: seqs[0] } });

    // Gone for good: show and purge say so (exit 2); bad arguments are usage errors (exit 1).
    expect(await inbox('show', String(seqs[1]))).toMatchObject({ code: 2, stderr: expect.stringContaining('NOT_FOUND') });
    expect((await inbox('purge', String(seqs[1]), '--reason', 'again')).code).toBe(2);
    expect((await inbox('show', 'abc')).code).toBe(1);
    expect((await inbox('purge', String(seqs[2]))).code).toBe(1); // --reason is required

    // A node starts: every other message is applied, in order; the purged one never is.
    rt = await start();
    await waitFor(() => (seen.get('stuck-1')?.length ?? 0) >= 2 && seen.has('other-1'), 'the remaining messages handled', 60_000);
    await waitFor(async () => (await inbox('list', '--json')).stdout.includes('"partitions":[]'), 'the inbox to drain', 60_000);
    expect(seen.get('stuck-1')).toEqual([{ step: 1 }, { step: 3 }]);
    expect(seen.get('other-1')).toEqual(['plain text']);
  }, 180_000);

  it('says so when NATS cannot be reached (exit 3)', async () => {
    const r = await inbox('list', '--nats', 'nats://127.0.0.1:1');
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('cannot reach NATS');
  });
});
