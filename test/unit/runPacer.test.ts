// The run pacer (runtime/host/runPacer.ts): handler runs start in microtasks until the current
// event-loop turn has spent its budget, then in later turns, in order, with I/O polled between.
// Time is a fake `now` advanced by the runs themselves, so nothing here depends on machine speed.
import { describe, expect, it } from 'vitest';
import { RunPacer } from '../../runtime/host/runPacer.js';

const macrotask = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('RunPacer', () => {
  it('starts runs in microtasks while the turn is under budget', async () => {
    let t = 0;
    const pacer = new RunPacer(20, () => t);
    const ran: number[] = [];
    for (let i = 0; i < 5; i++) pacer.start(() => { t += 1; ran.push(i); });
    expect(ran).toEqual([]); // never synchronously inside the caller (XState's step)
    await Promise.resolve();
    expect(ran).toEqual([0, 1, 2, 3, 4]);
    expect(pacer.deferred).toBe(0);
  });

  it('a chain of runs that never await yields to the event loop between budgets, in order', async () => {
    let t = 0;
    const pacer = new RunPacer(20, () => t);
    const ran: number[] = [];
    const turnOf: number[] = [];
    let turns = 0;
    let ticking = true;
    const tick = (): void => { turns++; if (ticking) setImmediate(tick); };
    setImmediate(tick);
    // Each run "spins" 5 ms and, like RUN_DONE, starts the next one from a microtask.
    const run = (i: number): void => {
      t += 5;
      ran.push(i);
      turnOf.push(turns);
      if (i < 99) void Promise.resolve().then(() => { pacer.start(() => { run(i + 1); }); });
    };
    pacer.start(() => { run(0); });
    for (let k = 0; k < 1000 && ran.length < 100; k++) await macrotask();
    ticking = false;
    expect(ran).toEqual(Array.from({ length: 100 }, (_, i) => i));
    // 100 runs of 5 ms with a 20 ms budget: at most 4-5 per turn, so at least 20 distinct turns.
    expect(new Set(turnOf).size).toBeGreaterThanOrEqual(20);
    expect(pacer.deferred).toBeGreaterThan(0);
    expect(pacer.waiting()).toBe(0);
  });

  it('keeps FIFO order between runs queued for a later turn and runs started meanwhile', async () => {
    let t = 0;
    const pacer = new RunPacer(10, () => t);
    const ran: string[] = [];
    pacer.start(() => { t += 10; ran.push('a'); }); // spends the budget
    await Promise.resolve();
    pacer.start(() => { ran.push('b'); });
    pacer.start(() => { ran.push('c'); });
    expect(pacer.waiting()).toBe(2);
    for (let k = 0; k < 10 && ran.length < 3; k++) await macrotask();
    expect(ran).toEqual(['a', 'b', 'c']);
  });
});
