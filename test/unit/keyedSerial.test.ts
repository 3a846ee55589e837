// One at a time per key (runtime/keyedSerial.ts), as a partition's lease acquisitions and
// releases run: same key strictly in order, each after the previous settled, even when it failed;
// other keys not held up; nothing kept once a key is idle. And a few at a time (`createLimiter`),
// as partition consumers are re-created after a reconnect.
import { describe, expect, it } from 'vitest';
import { createKeyedSerial, createLimiter } from '../../runtime/keyedSerial.js';

const gate = (): { promise: Promise<void>; open: () => void } => {
  let open: () => void = () => undefined;
  const promise = new Promise<void>((r) => { open = r; });
  return { promise, open };
};

describe('createKeyedSerial', () => {
  it('runs a key\'s operations one after the other, other keys meanwhile, and survives a failure', async () => {
    const serial = createKeyedSerial<number>();
    const log: string[] = [];
    const slow = gate();
    const release = serial(1, async () => { log.push('release 1 start'); await slow.promise; log.push('release 1 end'); });
    const failing = serial(1, () => { log.push('fail 1'); return Promise.reject(new Error('boom')); });
    const acquire = serial(1, () => { log.push('acquire 1'); return Promise.resolve(); });
    const other = serial(2, () => { log.push('acquire 2'); return Promise.resolve(); });
    await other;
    await new Promise((r) => setImmediate(r));
    expect(log).toEqual(['release 1 start', 'acquire 2']); // key 1 waits for its release; key 2 does not
    expect(serial.pending()).toBe(1);
    slow.open();
    await release;
    await expect(failing).rejects.toThrow('boom');
    await acquire;
    expect(log).toEqual(['release 1 start', 'acquire 2', 'release 1 end', 'fail 1', 'acquire 1']);
    await new Promise((r) => setImmediate(r));
    expect(serial.pending()).toBe(0);
  });
});

describe('createLimiter', () => {
  it('runs at most n at once, the rest in the order they came, and a failure frees its place', async () => {
    const limit = createLimiter(2);
    const gates = Array.from({ length: 5 }, gate);
    let running = 0;
    let most = 0;
    const started: number[] = [];
    const runs = gates.map((g, i) => limit(async () => {
      started.push(i);
      running++;
      most = Math.max(most, running);
      try {
        await g.promise;
        if (i === 1) throw new Error('refused');
        return i;
      } finally {
        running--;
      }
    }));
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([0, 1]);
    gates[1]!.open(); // fails: its place goes to the next in line
    await expect(runs[1]).rejects.toThrow('refused');
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([0, 1, 2]);
    for (const g of gates) g.open();
    expect(await Promise.all([runs[0], runs[2], runs[3], runs[4]])).toEqual([0, 2, 3, 4]);
    expect(started).toEqual([0, 1, 2, 3, 4]);
    expect(most).toBe(2);
    // Nothing held once idle: a new call runs at once.
    let ran = false;
    await limit(() => { ran = true; return Promise.resolve(); });
    expect(ran).toBe(true);
  });
});
