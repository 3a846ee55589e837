// Handlers that never await (CPU-bound work, synchronous code) must not starve the event loop:
// before the run pacer, a node with many such runs queued ran them back to back in microtasks for
// 6–35 s, and every lease, NATS ping and Postgres answer waited (all partitions moved away from
// a node that was merely busy). Here 50 sessions each hold 4 queued messages whose handler spins
// 5 ms without awaiting; a setImmediate loop counts event-loop turns, and each run records the
// turn it ran in. The runs must be spread over many turns, and every message applied once, in
// order. Real nats-server and Postgres.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineAgent } from '../../actors/index.js';
import { natsClient, publish, startStack, waitFor, type Stack } from '../helpers.js';

let turns = 0;
let ticking = true;
const tick = (): void => { turns++; if (ticking) setImmediate(tick); };
let openGate: () => void = () => undefined;
const gate = new Promise<void>((r) => { openGate = r; });
const turnOfRun: number[] = [];

const spinner = defineAgent({
  type: 'spinner',
  onMessage: 'queue',
  initialState: () => ({ seen: [] as number[] }),
  async handle(batch, ctx) {
    for (const m of batch) {
      const body = m.body as { i: number; gate?: boolean };
      if (body.gate) { await gate; } else {
        const end = performance.now() + 5;
        while (performance.now() < end) { /* CPU-bound, no await */ }
        turnOfRun.push(turns);
      }
      ctx.state.seen.push(body.i);
    }
  },
});

let stack: Stack;
beforeAll(async () => {
  stack = await startStack('cpu_bound', { agents: [spinner], config: { defaultAgentType: 'spinner', maxActiveSessions: 100 } });
  setImmediate(tick);
});
afterAll(async () => { ticking = false; await stack?.stop(); });

describe('handlers that never await', () => {
  it('run spread over event-loop turns, each message applied once and in order', async () => {
    const ids = Array.from({ length: 50 }, (_, k) => `spin-${k}`);
    const nc = await natsClient(stack.nats.url);
    try {
      for (const id of ids) await publish(nc, id, { i: 0, gate: true });
      for (let i = 1; i <= 4; i++) for (const id of ids) await publish(nc, id, { i });
    } finally { await nc.close(); }
    // Every session is in its gated first run with its 4 other messages queued behind it.
    await waitFor(async () => {
      for (const id of ids) {
        const v = await stack.rt.getAgent(id).catch(() => null);
        if (!v || v.mailbox.pending !== 4) return false;
      }
      return true;
    }, 'every session holding 4 queued messages', 60_000, 50);
    openGate();
    await waitFor(async () => {
      for (const id of ids) if ((await stack.rt.getAgent(id)).lastSeq === 0 || (await stack.store.loadSession(id))?.snapshot === undefined) return false;
      const rows = await Promise.all(ids.map((id) => stack.store.loadSession(id)));
      return rows.every((r) => ((r?.snapshot as { context: { userState: { seen: number[] } } } | undefined)?.context.userState.seen.length ?? 0) === 5);
    }, 'every message committed', 60_000, 50);
    for (const id of ids) {
      const r = await stack.store.loadSession(id);
      expect((r!.snapshot as { context: { userState: { seen: number[] } } }).context.userState.seen).toEqual([0, 1, 2, 3, 4]);
    }
    expect(turnOfRun).toHaveLength(200);
    // 200 runs of 5 ms = 1 s of synchronous work. Back to back they would all see one turn; with
    // a 20 ms budget per turn they see dozens.
    expect(new Set(turnOfRun).size).toBeGreaterThanOrEqual(10);
  });
});
