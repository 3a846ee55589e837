// The verifier's pure parts on made-up data. Commit logs: a deposed owner's commit is counted as stale
// only when it was prepared after a newer epoch had committed the same partition, and a late
// report of a commit prepared before the takeover (a paused process reporting on resume) is not.
// Mail and cron firings: what is missing, doubled or a phantom, and what the catch-up rule explains.
import { describe, expect, it } from 'vitest';
import { checkFires, countMail, findStaleCommits, type CommitLine, type CronCounts, type MailCounts } from './verifier.js';

const line = (n: string, p: number, e: number, t: number, a: number | null = t): CommitLine => ({ t, a, n, p, e, s: `s-${p}`, v: 1, q: t, h: [t] });

describe('findStaleCommits', () => {
  it('counts a commit with an older epoch prepared after another node committed a newer one', () => {
    const notes: string[] = [];
    const commits = [line('a', 0, 5, 100), line('b', 0, 9, 200), line('a', 0, 5, 300)];
    expect(findStaleCommits(commits, (t) => { notes.push(t); })).toBe(1);
    expect(notes[0]).toContain('a committed s-0 (partition 0, epoch 5');
  });

  it('does not count a late report of a commit prepared before the takeover', () => {
    expect(findStaleCommits([line('a', 0, 5, 100), line('b', 0, 9, 200), line('a', 0, 5, 300, 150)], () => undefined)).toBe(0);
  });

  it('does not count handovers, re-acquisitions with a newer epoch, or other partitions', () => {
    const commits = [line('a', 0, 5, 100), line('b', 0, 9, 200), line('a', 0, 12, 300), line('a', 1, 3, 310), line('b', 1, 4, 100)];
    // partition 1: a's epoch 3 after b's epoch 4 → stale; partition 0: a came back with 12 → fine
    expect(findStaleCommits(commits, () => undefined)).toBe(1);
  });

  it('ignores the node\'s own older epochs (its in-flight commits under a lease it renewed)', () => {
    expect(findStaleCommits([line('a', 0, 9, 100), line('a', 0, 5, 200)], () => undefined)).toBe(0);
  });
});

describe('countMail', () => {
  const fresh = (): MailCounts => ({ mailers: 1, expected: 0, delivered: 0, missing: 0, doubled: 0, phantom: 0, reordered: 0 });

  it('counts mail of a committed turn missing or doubled, and mail of a turn that never committed', () => {
    const c = fresh();
    const notes: string[] = [];
    countMail('mx-0', 'mb-0', [1, 2, 3, 4], [1, 3, 3, 4, 5], c, (_k, t) => { notes.push(t); });
    expect(c).toMatchObject({ expected: 4, delivered: 3, missing: 1, doubled: 1, phantom: 1, reordered: 0 });
    expect(notes).toContain('mb-0 never got mail i=2 from mx-0 (its turn committed)');
  });

  it('counts mail out of the sender\'s order without calling it lost', () => {
    const c = fresh();
    countMail('mx-0', 'mb-0', [1, 2, 3], [1, 3, 2], c, () => undefined);
    expect(c).toMatchObject({ expected: 3, delivered: 3, missing: 0, doubled: 0, phantom: 0, reordered: 1 });
  });
});

describe('checkFires', () => {
  const fresh = (): CronCounts => ({ tasks: 1, fired: 0, twice: 0, early: 0, missing: 0, collapsed: 0, reordered: 0, stopped: 0 });
  const s = 1_000_000;

  it('passes firings every period, handled after their due time', () => {
    const c = fresh();
    checkFires('cr-0', [[s, s + 5], [s + 2000, s + 2003], [s + 4000, s + 4100]], 2000, s + 3000, c, () => undefined);
    expect(c).toMatchObject({ fired: 3, twice: 0, early: 0, missing: 0, collapsed: 0, stopped: 0 });
  });

  it('counts a firing handled twice or early', () => {
    const c = fresh();
    checkFires('cr-0', [[s, s + 5], [s, s + 900], [s + 2000, s + 1990]], 2000, null, c, () => undefined);
    expect(c).toMatchObject({ fired: 2, twice: 1, early: 1 });
  });

  it('takes a gap after a late firing for the catch-up, and a gap after a timely one for missing firings', () => {
    const late = fresh();
    // due s, fired 7 s late: s+2000..s+6000 collapse into it, the next is s+8000
    checkFires('cr-0', [[s, s + 7100], [s + 8000, s + 8002]], 2000, null, late, () => undefined);
    expect(late).toMatchObject({ missing: 0, collapsed: 3 });
    const lost = fresh();
    checkFires('cr-0', [[s, s + 10], [s + 8000, s + 8002]], 2000, null, lost, () => undefined);
    expect(lost).toMatchObject({ missing: 3, collapsed: 0 });
  });

  it('counts a task that stopped firing before the settle', () => {
    const c = fresh();
    checkFires('cr-0', [[s, s + 5]], 2000, s + 1, c, () => undefined);
    expect(c.stopped).toBe(1);
  });
});
