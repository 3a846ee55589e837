// The inbox door on its own (runtime/inbox.ts decodeInbox): what NATS producers send that
// Postgres could not store is refused with reason `unstorable`, a detail that says what and
// where, and a payload that is itself storable; everything else is delivered as before. The
// end-to-end proof against real servers is poison.test.ts.
import { headers as natsHeaders } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { storableProblem } from '../../persistence/index.js';
import { decodeInbox, decodePayload, type InboxWire } from '../../runtime/inbox.js';

function wire(data: Uint8Array | string, h: Record<string, string> = {}, seq = 7): InboxWire {
  const hdrs = natsHeaders();
  for (const [k, v] of Object.entries(h)) hdrs.set(k, v);
  return { data: typeof data === 'string' ? Buffer.from(data) : data, seq, headers: Object.keys(h).length > 0 ? hdrs : undefined };
}

const MiB = 1024 * 1024;
const decode = (w: InboxWire, depth?: number) => decodeInbox(w, 1000, MiB, depth);

function refused(w: InboxWire, depth?: number): { reason: string; detail: string; payload: unknown } {
  const r = decode(w, depth);
  if (r.ok) throw new Error(`expected a refusal, got ${JSON.stringify(r.message)}`);
  expect(storableProblem(r.payload, 64), 'the dead-letter payload is storable').toBeNull();
  expect(storableProblem(r.detail, 64), 'the detail is storable').toBeNull();
  return r;
}

describe('decodeInbox: delivered as before', () => {
  it('JSON, text, empty, emoji, headers', () => {
    const r = decode(wire('{"text":"hi 😀"}', { 'Agentry-Kind': 'mail', 'Agentry-Priority': 'high', 'Agentry-From': 'a', 'Nats-Msg-Id': 'm1' }));
    expect(r).toEqual({ ok: true, message: { seq: 7, kind: 'mail', body: { text: 'hi 😀' }, priority: 'high', at: 1000, from: 'a', msgId: 'm1' } });
    expect(decode(wire('plain text'))).toMatchObject({ ok: true, message: { body: 'plain text', kind: 'message', priority: 'normal' } });
    expect(decode(wire(''))).toMatchObject({ ok: true, message: { body: null } });
    expect(decode(wire('{not json'))).toMatchObject({ ok: true, message: { body: '{not json' } });
    expect(decode(wire(JSON.stringify(JSON.parse(`${'['.repeat(64)}${']'.repeat(64)}`))))).toMatchObject({ ok: true });
  });
});

describe('decodeInbox: refused as unstorable', () => {
  it('a NUL escaped in a JSON string', () => {
    const r = refused(wire('{"message":{"text":"a\\u0000b"}}'));
    expect(r.reason).toBe('unstorable');
    expect(r.detail).toBe('the payload cannot be stored: a NUL character (U+0000) in $.message.text at index 1');
    expect(r.payload).toEqual({ message: { text: 'a\\u0000b' } });
  });

  it('a raw NUL byte in a text payload', () => {
    const r = refused(wire(Buffer.from([0x61, 0x00, 0x62])));
    expect(r.detail).toContain('NUL character (U+0000) in $ at index 1');
    expect(r.payload).toBe('a\\u0000b');
  });

  it('a lone surrogate, and a NUL in a key', () => {
    expect(refused(wire('{"poison":"\\ud800x"}')).detail).toContain('lone UTF-16 surrogate (U+D800) in $.poison at index 0');
    expect(refused(wire('{"a":{"k\\u0000":1}}')).detail).toContain('in a key of $.a');
  });

  it('JSON nested deeper than the limit (10,000 and 150,000 levels), refused without parsing, configurable', () => {
    const text = '['.repeat(10_000) + ']'.repeat(10_000);
    const r = refused(wire(text));
    expect(r.detail).toBe('the payload cannot be stored: JSON nested deeper than 64 levels (at character 64)');
    expect(r.payload).toBe(text); // the text itself: never parsed
    const huge = refused(wire('{"a":'.repeat(150_000) + '1' + '}'.repeat(150_000)));
    expect(huge.detail).toContain('(at character 320)');
    // Brackets inside strings do not count.
    expect(decode(wire(JSON.stringify({ s: '['.repeat(1000) })))).toMatchObject({ ok: true });
    expect(decode(wire('[[[1]]]'), 2).ok).toBe(false);
    expect(decode(wire('[[1]]'), 2).ok).toBe(true);
  });

  it('bytes that are not UTF-8: the dead letter keeps them as base64', () => {
    const bytes = Buffer.concat([Buffer.from('{"text":"ok'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]);
    const r = refused(wire(bytes));
    expect(r.detail).toBe('the payload is not valid UTF-8 (first bad byte at offset 11)');
    expect(r.payload).toEqual({ encoding: 'base64', data: bytes.toString('base64') });
    // An encoded surrogate (CESU-8) and a truncated sequence are not UTF-8 either.
    expect(refused(wire(Buffer.from([0x61, 0xed, 0xa0, 0x80]))).detail).toContain('offset 1');
    expect(refused(wire(Buffer.from([0x61, 0x62, 0xe2, 0x82]))).detail).toContain('offset 2');
  });

  it('a NUL in a stored header (sender, event type, message id)', () => {
    for (const name of ['Agentry-From', 'Agentry-Event-Type', 'Nats-Msg-Id']) {
      const r = refused(wire('{"ok":1}', { [name]: 'x\u0000y' }));
      expect(r.reason).toBe('unstorable');
      expect(r.detail).toBe(`header ${name} cannot be stored: a NUL character (U+0000) at index 1`);
      expect(r.payload).toEqual({ ok: 1 });
    }
  });

  it('other refusals keep their reasons, with storable payloads', () => {
    expect(refused(wire('{"a":1}', { 'Agentry-Kind': 'nope\u0000' }))).toMatchObject({ reason: 'invalid-header' });
    expect(refused(wire('{"a":1}', { 'Agentry-Priority': 'asap' }))).toMatchObject({ reason: 'invalid-header', payload: { a: 1 } });
    const big = decodeInbox(wire('x'.repeat(100)), 0, 10);
    expect(big).toMatchObject({ ok: false, reason: 'payload-too-large', payload: null });
  });
});

describe('decodePayload', () => {
  it('is the same door for anything else producers publish (events)', () => {
    expect(decodePayload(Buffer.from('{"paid":true}'))).toEqual({ ok: true, body: { paid: true } });
    expect(decodePayload(Buffer.from('"\\u0000"'))).toMatchObject({ ok: false, reason: 'unstorable', payload: '\\u0000' });
  });
});
