// The statechart's side of waitpoints: a waiting session resumes only with the `waitpoint`
// message naming its own waitpoint; another waitpoint's settlement (a resend after the wait
// ended, a stale id) and ordinary messages are deferred, never taken as the awaited value.
import { describe, expect, it } from 'vitest';
import { endsWait } from '../../actors/sessionMachine.js';
import type { InboxMessage, WaitCondition } from '../../actors/types.js';
import { isWaitpointId, newWaitpointId } from '../../runtime/waitpoints.js';

const wait: WaitCondition = {
  event: null, replyFrom: null, timeoutAt: 1000,
  waitpoint: { id: 'AAAAAAAAAAAAAAAAAAAAAA', schema: {}, hasDefault: false, default: null, tags: [] },
};
const msg = (kind: InboxMessage['kind'], body: unknown): InboxMessage => ({ seq: 1, kind, body, priority: 'normal', at: 0 });

describe('endsWait with a waitpoint', () => {
  it('only the settlement of its own waitpoint ends the wait', () => {
    expect(endsWait(wait, msg('waitpoint', { id: 'AAAAAAAAAAAAAAAAAAAAAA', status: 'completed', value: 1 }))).toBe(true);
    expect(endsWait(wait, msg('waitpoint', { id: 'BBBBBBBBBBBBBBBBBBBBBB', status: 'completed', value: 1 }))).toBe(false);
    expect(endsWait(wait, msg('message', { id: 'AAAAAAAAAAAAAAAAAAAAAA' }))).toBe(false);
    expect(endsWait(wait, msg('waitpoint', null))).toBe(false);
  });
  it('a wait without a waitpoint is not ended by a waitpoint message', () => {
    expect(endsWait({ event: 'x', replyFrom: null, timeoutAt: null }, msg('waitpoint', { id: 'AAAAAAAAAAAAAAAAAAAAAA' }))).toBe(false);
  });
});

describe('waitpoint ids', () => {
  it('never start with a dash (a command line would read the id as an option)', () => {
    const ids = Array.from({ length: 5_000 }, () => newWaitpointId());
    expect(ids.filter((id) => id.startsWith('-'))).toEqual([]);
    expect(ids.every((id) => isWaitpointId(id))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
