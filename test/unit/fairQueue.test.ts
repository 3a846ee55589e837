// The admission queue's fairness (issue 17 §3), alone: lanes per tenant served in turn, priority
// and arrival order inside a lane, and lanes of a tenant at its bound skipped.
import { describe, expect, it } from 'vitest';
import { FairQueue } from '../../runtime/host/fairQueue.js';

const entry = (n: number, rank = 1, at = n) => ({ rank, at, n, run: () => undefined });

describe('FairQueue', () => {
  it('serves a late small tenant within one round, whatever the big tenant queued before it', () => {
    const q = new FairQueue();
    for (let i = 0; i < 1000; i++) q.push('big', entry(i));
    q.push('small', entry(5000));
    const order: number[] = [];
    for (let i = 0; i < 4; i++) order.push(q.pop()!.n);
    expect(order).toEqual([0, 5000, 1, 2]); // FIFO would have served 5000 last
    expect(q.size).toBe(997);
  });

  it('keeps priority, then arrival, inside a tenant', () => {
    const q = new FairQueue();
    q.push('a', entry(1, 1, 10));
    q.push('a', entry(2, 3, 20)); // urgent
    q.push('a', entry(3, 1, 5));
    expect([q.pop()!.n, q.pop()!.n, q.pop()!.n]).toEqual([2, 3, 1]);
    expect(q.pop()).toBeUndefined();
  });

  it('skips a tenant that may not run now and comes back to it', () => {
    const q = new FairQueue();
    q.push('full', entry(1));
    q.push('free', entry(2));
    q.push('free', entry(3));
    expect(q.pop((t) => t !== 'full')!.n).toBe(2);
    expect(q.pop((t) => t !== 'full')!.n).toBe(3);
    expect(q.pop((t) => t !== 'full')).toBeUndefined();
    expect(q.pop()!.n).toBe(1);
    expect(q.depths().size).toBe(0);
  });
});
