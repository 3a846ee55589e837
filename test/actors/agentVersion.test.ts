// Snapshot migration decided in one pure function (actors/agentVersion.ts): what the new code
// "cannot take", reason by reason, and what it can. Snapshots come from the real statechart.
import { createActor } from 'xstate';
import { describe, expect, it } from 'vitest';
import { defineAgent, durableSnapshotOf, MACHINE_HASH, migrateSnapshot, sessionMachine, stamped, stampOf } from '../../actors/index.js';

const handle = (): undefined => undefined;
/** A durable snapshot of a fresh idle session holding `userState`. */
function snapshotWith(userState: unknown, version?: number, machine = MACHINE_HASH): unknown {
  const a = createActor(sessionMachine, { input: { sessionId: 's', agentType: 't', userState, at: 1, limits: { policy: 'queue', maxMerge: 1, maxMergeDelayMs: 0, maxAttempts: 1, retryBaseMs: 0, retryCapMs: 0 } } });
  a.start();
  const d = durableSnapshotOf(a.getSnapshot());
  a.stop();
  if (version === undefined) return d;
  return { ...(stamped(d, 't', version) as object), agentry: { type: 't', version, machine } };
}

describe('migrateSnapshot', () => {
  const v3 = defineAgent({ type: 't', version: 3, handle, migrate: { 1: (s: { a: number }) => ({ b: s.a + 1 }), 2: (s: { b: number }) => ({ c: s.b * 10 }) } });

  it('runs every step from the stored version (an unstamped snapshot is version 1)', () => {
    const out = migrateSnapshot('s', v3, snapshotWith({ a: 1 }));
    expect(out).toMatchObject({ ok: true, from: 1, to: 3, changed: true });
    expect((out as { snapshot: { context: { userState: unknown } } }).snapshot.context.userState).toEqual({ c: 20 });
    const from2 = migrateSnapshot('s', v3, snapshotWith({ b: 4 }, 2));
    expect((from2 as { snapshot: { context: { userState: unknown } } }).snapshot.context.userState).toEqual({ c: 40 });
  });

  it('leaves a current snapshot as it is, and never changes the input', () => {
    const snap = snapshotWith({ c: 1 }, 3);
    const copy = JSON.stringify(snap);
    expect(migrateSnapshot('s', v3, snap)).toEqual({ ok: true, snapshot: snap, from: 3, to: 3, changed: false });
    migrateSnapshot('s', v3, snapshotWith({ a: 1 }));
    expect(JSON.stringify(snap)).toBe(copy);
  });

  it('newer-version: a snapshot written by a newer version', () => {
    const out = migrateSnapshot('s', v3, snapshotWith({}, 4));
    expect(out.ok).toBe(false);
    expect(!out.ok && out.error.toJSON()).toMatchObject({ code: 'MIGRATION_FAILED', reason: 'newer-version', fromVersion: 4, toVersion: 3 });
  });

  it('no-path: a missing step', () => {
    const gap = defineAgent({ type: 't', version: 3, handle, migrate: { 2: (s: unknown) => s } });
    const out = migrateSnapshot('s', gap, snapshotWith({ a: 1 }));
    expect(!out.ok && out.error.reason).toBe('no-path');
    expect(!out.ok && out.error.message).toMatch(/no migrate\[1\] step/);
    // A stored version 2 has its path.
    expect(migrateSnapshot('s', gap, snapshotWith({ a: 1 }, 2)).ok).toBe(true);
  });

  it('migrate-threw: a step that throws keeps its message', () => {
    const bad = defineAgent({ type: 't', version: 2, handle, migrate: { 1: () => { throw new Error('boom'); } } });
    const out = migrateSnapshot('s', bad, snapshotWith({}));
    expect(!out.ok && out.error).toMatchObject({ code: 'MIGRATION_FAILED', reason: 'migrate-threw' });
    expect(!out.ok && out.error.message).toMatch(/migrate\[1\] threw: boom/);
  });

  it('invalid-state: undefined, not JSON, or a state value this statechart does not have', () => {
    const undef = defineAgent({ type: 't', version: 2, handle, migrate: { 1: () => undefined } });
    expect((migrateSnapshot('s', undef, snapshotWith({})) as { error: { reason: string } }).error.reason).toBe('invalid-state');
    const cyclic = defineAgent({ type: 't', version: 2, handle, migrate: { 1: () => { const o: Record<string, unknown> = {}; o.o = o; return o; } } });
    expect((migrateSnapshot('s', cyclic, snapshotWith({})) as { error: { reason: string; message: string } }).error.message).toMatch(/not JSON/);
    // Written by another statechart (another hash) in a state this one lacks.
    const foreign = { ...(snapshotWith({}, 2, 'deadbeef') as object), value: 'hibernating' };
    const out = migrateSnapshot('s', undef, foreign);
    expect(!out.ok && out.error.reason).toBe('invalid-state');
    expect(!out.ok && out.error.message).toMatch(/not a state of this statechart/);
    // Same other hash, a state this statechart has: taken.
    expect(migrateSnapshot('s', defineAgent({ type: 't', version: 2, handle }), snapshotWith({}, 2, 'deadbeef')).ok).toBe(true);
  });

  it('stamps: type, version and the statechart hash', () => {
    expect(stampOf(stamped({ value: 'idle' }, 't', 7))).toEqual({ type: 't', version: 7, machine: MACHINE_HASH });
    expect(stampOf({ value: 'idle' })).toEqual({ type: null, version: 1, machine: null });
    expect(MACHINE_HASH).toMatch(/^[0-9a-f]{8}$/);
  });
});

describe('defineAgent version options', () => {
  it('refuses a bad version, migrate keys outside 1..version-1, non-functions, bad TTL and mailbox bounds', () => {
    expect(defineAgent({ type: 'a', handle })).toMatchObject({ version: 1, migrate: {} });
    expect(() => defineAgent({ type: 'a', handle, version: 0 })).toThrow(/version must be a positive integer/);
    expect(() => defineAgent({ type: 'a', handle, version: 1.5 })).toThrow(/version must be a positive integer/);
    expect(() => defineAgent({ type: 'a', handle, version: 2, migrate: { 2: (s: unknown) => s } })).toThrow(/migrate\[2\] must be keyed by a version from 1 to 1/);
    expect(() => defineAgent({ type: 'a', handle, version: 2, migrate: { 1: 'x' as never } })).toThrow(/must be a function/);
    expect(() => defineAgent({ type: 'a', handle, sessionTtl: { idleMs: 0 } })).toThrow(/sessionTtl.idleMs must be a positive integer/);
    expect(() => defineAgent({ type: 'a', handle, sessionTtl: { idleMs: 5, keep: 1 } as never })).toThrow(/no option keep/);
    expect(defineAgent({ type: 'a', handle, sessionTtl: { idleMs: 5 } }).sessionTtl).toEqual({ idleMs: 5, purge: false });
    expect(() => defineAgent({ type: 'a', handle, maxMailbox: 0 })).toThrow(/maxMailbox must be a positive integer/);
    expect(defineAgent({ type: 'a', handle, maxMailbox: 3 }).maxMailbox).toBe(3);
  });
});
