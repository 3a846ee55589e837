// One at a time per key (runtime/keyedSerial.ts), as a partition's lease acquisitions and
// releases run: same key strictly in order, each after the previous settled, even when it failed;
// other keys not held up; nothing kept once a key is idle.
import { describe, expect, it } from 'vitest';
import { createKeyedSerial } from '../../runtime/keyedSerial.js';

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
