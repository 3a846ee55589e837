// The verifier's pure parts on made-up commit logs: a deposed owner's commit is counted as stale
// only when it was prepared after a newer epoch had committed the same partition, and a late
// report of a commit prepared before the takeover (a paused process reporting on resume) is not.
import { describe, expect, it } from 'vitest';
import { findStaleCommits, type CommitLine } from './verifier.js';

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
