// The outbox publishes a session's stored outputs only while this node may act for its partition
// (`mayPublish`: it holds the lease, renewed recently). A node waking from a pause longer than
// its lease must not go on publishing rows its successor's takeover sweep already published: past
// the streams' 2-minute duplicate window each would be delivered twice. The rows stay stored: a
// renewal lets the retry sweep publish them, a lost lease leaves them to the next owner.
// Store and transport are recording stand-ins: what is checked is the outbox's decision.
import { describe, expect, it } from 'vitest';
import type { OutboxRecord, PendingOutboxQuery } from '../../persistence/types.js';
import { Outbox } from '../../runtime/host/outbox.js';
import type { Logger } from '../../runtime/logger.js';

const quiet = { warn() {}, error() {}, info() {}, debug() {} } as unknown as Logger;

function rig(mayPublish: () => boolean, now?: () => number) {
  const rows = new Map<string, OutboxRecord>();
  const sent: string[] = [];
  const store = {
    pendingOutbox: (limit: number, q: PendingOutboxQuery = {}) => Promise.resolve([...rows.values()].filter((r) => q.createdBefore === undefined || r.createdAt < q.createdBefore).slice(0, limit)),
    deleteOutbox: (ids: readonly string[]) => { for (const id of ids) rows.delete(id); return Promise.resolve(); },
    addDeadLetter: () => Promise.resolve(),
  };
  const transport = {
    publishCore: (subject: string) => { sent.push(subject); },
    publishInbox: (sid: string) => { sent.push(`agentry.in.${sid}`); return Promise.resolve({ seq: sent.length, duplicate: false }); },
    publishEvent: () => Promise.resolve({ seq: 0, duplicate: false }),
    flushCore: () => Promise.resolve(),
    isConnected: () => true,
  };
  const outbox = new Outbox({ store: store, transport: transport as never, logger: quiet, owned: () => null, mayPublish: () => mayPublish(), ...(now ? { now } : {}) });
  const row = (i: number, createdAt = 0): OutboxRecord => {
    const r: OutboxRecord = { id: `a:${i}:0`, sessionId: 'a', subject: `agentry.in.b${i}`, headers: {}, body: '{}', createdAt };
    rows.set(r.id, r);
    return r;
  };
  return { outbox, rows, sent, row };
}

describe('outbox and the partition lease', () => {
  it('publishes nothing while the lease is in doubt; the rows stay stored and go out once it is usable again', async () => {
    let usable = true;
    const r = rig(() => usable);
    expect(await r.outbox.publish([r.row(1)])).toBe(true);
    expect(r.sent).toEqual(['agentry.in.b1']);

    usable = false; // the node was paused past its lease: its successor may have swept these
    const held = [r.row(2), r.row(3)];
    expect(await r.outbox.publish(held)).toBe(false);
    expect(r.sent).toEqual(['agentry.in.b1']);
    expect(await r.outbox.sweep(null, 0)).toBeNull();
    expect(r.sent).toEqual(['agentry.in.b1']);

    usable = true; // renewed: the retry sweep publishes what is still stored
    expect(await r.outbox.sweep(null, 0)).toBe(2); // the first row went out already: not again
    expect(r.sent).toEqual(['agentry.in.b1', 'agentry.in.b2', 'agentry.in.b3']);
    expect([...r.rows.keys()]).toEqual([]); // published rows are deleted by the sweep
  });

  it('ages rows by the runtime\'s clock (their createdAt\'s), not by this node\'s wall clock', async () => {
    // The runtime's clock (the store's time, runtime/storeClock.ts) reads an hour ago; this
    // node's wall clock is far ahead of it. A row the runtime committed 5 s ago is young: a sweep
    // of rows older than 15 s leaves it (on the wall clock it looked an hour old).
    const storeNow = Date.now() - 3_600_000;
    const r = rig(() => true, () => storeNow);
    r.row(1, storeNow - 5_000);
    r.row(2, storeNow - 20_000);
    expect(await r.outbox.sweep(null, 15_000)).toBe(1);
    expect(r.sent).toEqual(['agentry.in.b2']);
  });
});
