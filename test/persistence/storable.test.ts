// Unit tests of the storable rule (persistence/storable.ts): what Postgres cannot store is found,
// with what and where, without recursion (a million levels deep), and anything can be turned
// into something storable. The companion suite storableDb.test.ts writes the results into real
// Postgres and PGlite.
import { describe, expect, it } from 'vitest';
import {
  findStorableProblem, jsonTextOf, storableProblem, storableText, storableTextProblem, toStorable, unstorableCharIndex,
} from '../../persistence/index.js';

/** `[[[…0…]]]` nested `n` levels, built without recursion (JSON.parse is iterative in V8). */
const deepArray = (n: number): unknown => JSON.parse(`${'['.repeat(n)}0${']'.repeat(n)}`);
const deepObject = (n: number): unknown => JSON.parse(`${'{"a":'.repeat(n)}0${'}'.repeat(n)}`);

describe('storableProblem', () => {
  it('accepts ordinary JSON, including paired surrogates (emoji) and other control characters', () => {
    for (const v of [null, 0, 'plain', '😀 pairs are fine', '\u0001\u001f\u007f', { a: [1, { b: 'x' }] }, [], {}, deepArray(64), true]) {
      expect(storableProblem(v, 64)).toBeNull();
    }
  });

  it('finds a NUL in a string, with the path and index', () => {
    expect(storableProblem({ message: { text: 'a\u0000b' } }, 64)).toBe('a NUL character (U+0000) in $.message.text at index 1');
    expect(findStorableProblem(['ok', ['x', '\u0000']], 64)).toMatchObject({ kind: 'nul', path: '$[1][1]', index: 0, inKey: false });
    expect(findStorableProblem('raw\u0000text', 64)).toMatchObject({ kind: 'nul', path: '$', index: 3 });
  });

  it('finds a NUL in a key', () => {
    const p = findStorableProblem({ outer: { ['k\u0000ey']: 1 } }, 64);
    expect(p).toMatchObject({ kind: 'nul', path: '$.outer', inKey: true, index: 1 });
    expect(p!.message).toContain('in a key of $.outer');
  });

  it('finds lone high and low surrogates, but not pairs', () => {
    expect(findStorableProblem({ a: 'x\ud800' }, 64)).toMatchObject({ kind: 'lone-surrogate', path: '$.a', index: 1 });
    expect(findStorableProblem({ a: '\udc00y' }, 64)).toMatchObject({ kind: 'lone-surrogate', index: 0 });
    expect(findStorableProblem({ a: '\ud83d\ude00\ud800' }, 64)).toMatchObject({ kind: 'lone-surrogate', index: 2 });
    expect(findStorableProblem({ a: '\ude00\ud83d' }, 64)).toMatchObject({ kind: 'lone-surrogate', index: 0 });
    expect(storableProblem({ a: 'x\ud800' }, 64)).toContain('U+D800');
  });

  it('counts depth in containers: [] is 1, a scalar 0', () => {
    expect(storableProblem(deepArray(3), 3)).toBeNull();
    expect(findStorableProblem(deepArray(4), 3)).toMatchObject({ kind: 'too-deep', path: '$[0][0][0]' });
    expect(storableProblem('scalar', 0)).toBeNull();
    expect(storableProblem([], 0)).not.toBeNull();
    expect(findStorableProblem(deepObject(10), 5)).toMatchObject({ kind: 'too-deep', path: '$.a.a.a.a.a' });
  });

  it('judges 500,000 levels without overflowing the stack, and clips the path', () => {
    const v = deepArray(500_000);
    const p = findStorableProblem(v, 64);
    expect(p).toMatchObject({ kind: 'too-deep' });
    expect(p!.path.length).toBeLessThan(300);
    expect(p!.message).toContain('deeper than 64 levels');
    expect(storableProblem(deepObject(200_000), 64)).toContain('deeper than 64');
  });

  it('ends on cycles (at the depth cap)', () => {
    const a: Record<string, unknown> = {};
    a.self = a;
    expect(findStorableProblem(a, 64)).toMatchObject({ kind: 'too-deep' });
  });

  it('reports the first problem in document order', () => {
    expect(findStorableProblem({ a: 'ok', b: 'x\u0000', c: '\ud800' }, 64)).toMatchObject({ kind: 'nul', path: '$.b' });
    expect(findStorableProblem(['\ud800', '\u0000'], 64)).toMatchObject({ kind: 'lone-surrogate', path: '$[0]' });
  });

  it('quotes odd keys in paths, storably', () => {
    expect(findStorableProblem({ 'a b': { 'c.d': '\u0000' } }, 64)!.path).toBe('$["a b"]["c.d"]');
    expect(findStorableProblem({ 'q"k': ['\u0000'] }, 64)!.path).toBe('$["q\\"k"][0]');
    // A bad key is reported at its object (the message never quotes the bad key itself).
    const p = findStorableProblem({ a: { ['\ud800']: 1 } }, 64)!;
    expect(p).toMatchObject({ kind: 'lone-surrogate', path: '$.a', inKey: true });
    expect(storableProblem(p.message, 64)).toBeNull();
  });
});

describe('storableText / storableTextProblem', () => {
  it('keeps storable strings as they are (the same string)', () => {
    const s = 'hello 😀';
    expect(storableText(s)).toBe(s);
    expect(storableTextProblem(s)).toBeNull();
    expect(unstorableCharIndex(s)).toBe(-1);
  });

  it('replaces NULs and lone surrogates by their escapes as text', () => {
    expect(storableText('a\u0000b\ud800c\udfff😀')).toBe('a\\u0000b\\ud800c\\udfff😀');
    expect(storableTextProblem('ab\u0000')).toBe('a NUL character (U+0000) at index 2');
    expect(storableTextProblem('\udc01')).toBe('a lone UTF-16 surrogate (U+DC01) at index 0');
  });
});

describe('toStorable', () => {
  it('leaves storable JSON equal', () => {
    const v = { a: [1, 'x', null, true, { b: '😀' }], c: {} };
    expect(toStorable(v)).toEqual(v);
  });

  it('escapes NULs and lone surrogates in strings and keys', () => {
    const out = toStorable({ ['k\u0000']: ['a\u0000b', '\ud800'], ok: 1 });
    expect(out).toEqual({ 'k\\u0000': ['a\\u0000b', '\\ud800'], ok: 1 });
    expect(storableProblem(out, 64)).toBeNull();
  });

  it('turns the part below the depth cap into its JSON text (iteratively: 200,000 levels)', () => {
    expect(toStorable(deepArray(4), 2)).toEqual([['[[0]]']]);
    const out = toStorable(deepArray(200_000));
    expect(storableProblem(out, 64)).toBeNull();
    let x: unknown = out;
    for (let i = 0; i < 63; i++) x = (x as unknown[])[0];
    expect(typeof (x as unknown[])[0]).toBe('string');
    expect(((x as unknown[])[0] as string).length).toBe(2 * (200_000 - 64) + 1);
  });

  it('follows JSON.stringify for non-JSON values, and survives cycles', () => {
    expect(toStorable(undefined)).toBeNull();
    expect(toStorable({ a: undefined, b: () => 1, c: 10n, d: Number.NaN, e: new Date(0) })).toEqual({ c: '10', d: null, e: '1970-01-01T00:00:00.000Z' });
    expect(toStorable([undefined, Symbol('s')])).toEqual([null, null]);
    const a: Record<string, unknown> = { n: 1 };
    a.self = a;
    const out = toStorable(a, 3);
    expect(storableProblem(out, 3)).toBeNull();
    expect(JSON.stringify(out)).toContain('[Circular]');
  });
});

describe('jsonTextOf', () => {
  it('equals JSON.stringify where that works, also on its iterative path', () => {
    const tail = deepArray(50_000); // forces the iterative writer: JSON.stringify overflows on it
    expect(() => JSON.stringify(tail)).toThrow(RangeError);
    const tailText = `${'['.repeat(50_000)}0${']'.repeat(50_000)}`;
    for (const v of [null, 1, -0.5, true, 'a"b\n', [], {}, [1, [2, { x: 'y', u: undefined, f: () => 1 }]], { 'k"': ['\u0000', '\ud800'] }, { d: new Date(5) }, [undefined]]) {
      expect(jsonTextOf(v)).toBe(JSON.stringify(v));
      expect(jsonTextOf([v, tail])).toBe(`[${JSON.stringify(v)},${tailText}]`);
      expect(jsonTextOf({ a: v, b: tail })).toBe(`{${v === undefined ? '' : `"a":${JSON.stringify(v)},`}"b":${tailText}}`);
    }
  });

  it('works where JSON.stringify overflows, and its output is storable text', () => {
    const v = deepArray(100_000);
    expect(() => JSON.stringify(v)).toThrow(RangeError);
    const text = jsonTextOf(v);
    expect(text.length).toBe(200_001);
    expect(storableTextProblem(jsonTextOf({ a: 'x\u0000\ud800' }))).toBeNull();
  });
});
