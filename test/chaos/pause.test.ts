// Scenario (c): a node is paused (SIGSTOP) under load for 2.5 × its lease — at a moment when it
// holds an open commit transaction, where that can be caught — then resumed (SIGCONT). Meanwhile the other two nodes take its partitions. After it resumes it must not
// commit in partitions it no longer owns: no session's state or history may show a message
// applied twice or out of order, none may be lost, and the commit logs may show no commit it
// prepared after another node had committed the same partition with a newer epoch. Its commits
// are counted and printed.
//
// On the code this suite was written against, a paused node's open transaction committed after
// it resumed (the epoch was checked when the UPDATE ran, not at commit) (issue 11, item 3).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Scenario } from './scenario.js';
import { allCommits } from './verifier.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('a node paused past its lease under load', () => {
  let sc: Scenario | undefined;

  beforeAll(async () => { sc = await Scenario.start({ tag: 'pause', nodes: 3, messages: 80 }); }, 120_000);
  afterAll(async () => { await sc?.destroy(); }, 60_000);

  it('after SIGCONT it commits nothing in partitions it lost; nothing lost, doubled or reordered', async () => {
    const s = sc!;
    const victim = 2;
    const pauseMs = Math.round(2.5 * s.cluster.opts.leaseTtlMs);
    await s.progress(0.3);
    s.timersAt(Date.now() + 1500, pauseMs - 1000); // due while it is paused
    await sleep(1000);
    // Paused while one of its commit transactions is open, when that can be caught (see pauseInTransaction).
    const f = s.fault('pause', victim);
    const { caught, attempts } = await s.cluster.pauseInTransaction(victim);
    console.log(`[pause] ${s.cluster.nodes[victim]!.id} stopped ${caught ? 'holding an open transaction' : 'without an open transaction (none caught)'} after ${attempts} attempt(s)`);
    await sleep(pauseMs);
    s.cluster.resumeNode(victim);
    const resumedAt = Date.now();
    f.endNow();
    const report = await s.finish('pause');

    // Its commits after it resumed, in partitions another node committed in while it was paused.
    const id = s.cluster.nodes[victim]!.id;
    const commits = allCommits(s.cluster);
    const takenOver = new Set(commits.filter((c) => c.n !== id && c.t >= f.start && c.t < resumedAt).map((c) => c.p));
    const heldBefore = new Set(commits.filter((c) => c.n === id && c.t < f.start).map((c) => c.p));
    const lost = [...heldBefore].filter((p) => takenOver.has(p));
    const after = commits.filter((c) => c.n === id && c.t >= resumedAt && lost.includes(c.p));
    const preparedAfter = after.filter((c) => (c.a ?? c.t) >= resumedAt);
    console.log(`[pause] ${id} paused ${pauseMs} ms; partitions it held: ${JSON.stringify([...heldBefore].sort())}, taken over meanwhile: ${JSON.stringify(lost.sort())}; ` +
      `its commits there reported after SIGCONT: ${after.length} (${preparedAfter.length} prepared after it), with epochs ${JSON.stringify([...new Set(after.map((c) => `${c.p}:${c.e}`))])}; ` +
      `stale commits (older epoch after a newer one): ${report.counts.staleCommits}; commits by node: ${JSON.stringify(report.counts.commitsByNode)}`);
    expect(report.problems).toEqual([]);
  }, 240_000);
});

// The same pause on a lone node: every lease expires while it is stopped and nobody else takes
// them, so after SIGCONT it loses them all and its next balance round takes them back at once:
// a release and the next acquisition of the same partitions on one node, back to back. That is
// where a release still closing its consumer dropped the sessions the new feed had just filled,
// and their messages were later acked as duplicates (lost; found by the scale-out bench).
describe('a lone node paused past its lease under load', () => {
  let sc: Scenario | undefined;

  beforeAll(async () => { sc = await Scenario.start({ tag: 'pause1', nodes: 1, messages: 80 }); }, 120_000);
  afterAll(async () => { await sc?.destroy(); }, 60_000);

  it('after SIGCONT it re-takes its own partitions; nothing lost, doubled or reordered', async () => {
    const s = sc!;
    const pauseMs = Math.round(2.5 * s.cluster.opts.leaseTtlMs);
    await s.progress(0.3);
    s.timersAt(Date.now() + 1500, pauseMs - 1000); // due while it is paused
    await sleep(1000);
    const f = s.fault('pause', 0);
    s.cluster.pauseNode(0);
    await sleep(pauseMs);
    s.cluster.resumeNode(0);
    f.endNow();
    const report = await s.finish('pause1');
    expect(report.problems).toEqual([]);
  }, 240_000);
});
