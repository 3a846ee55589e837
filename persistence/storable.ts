/**
 * Owns the rule of what Postgres can store, so doors can refuse poison input before it is
 * accepted and dead letters of poison can themselves be stored.
 *
 * Postgres (15, and PGlite, which is 18) refuses, in `jsonb` and `text` alike:
 * - U+0000 anywhere in a string or a key (jsonb: 22P05 "unsupported Unicode escape sequence";
 *   text: 22021 "invalid byte sequence for encoding UTF8: 0x00");
 * - a lone UTF-16 surrogate (jsonb: 22P02 "invalid input syntax for type json"; a text column
 *   does not refuse it but silently stores U+FFFD, so the value would not round-trip);
 * - deep nesting: pg 15 fails with 54001 "stack depth limit exceeded" somewhere between 5,000
 *   and 20,000 levels, PGlite spins for minutes on 200,000 levels, and Node's own
 *   `JSON.stringify` / `structuredClone` overflow the stack at a few thousand. A small cap (64
 *   by default) keeps every layer far from all of them.
 *
 * Everything here is iterative with an explicit stack: deep input is what it must survive, so
 * no function may recurse over the value it judges. Cycles end at the depth cap.
 */

/** Default cap on nesting (containers inside containers) of a stored JSON value. */
export const DEFAULT_MAX_JSON_DEPTH = 64;

/** What makes a value unstorable. */
export type StorableProblemKind = 'nul' | 'lone-surrogate' | 'too-deep';

/** A precise account of why a value cannot be stored: what and where (a JSONPath such as `$.a[3]`). */
export interface StorableProblem {
  readonly kind: StorableProblemKind;
  /** JSONPath of the offending string, key's object or too-deep container (clipped to ~200 characters). */
  readonly path: string;
  /** For `nul` / `lone-surrogate`: UTF-16 index in the string; whether it is in a key. */
  readonly index?: number;
  readonly inKey?: boolean;
  /** One line for an error message or a dead letter's `error`; storable itself. */
  readonly message: string;
}

// Code units, not code points (no `u` flag): a NUL, a high surrogate not followed by a low one,
// or a low surrogate not preceded by a high one.
// eslint-disable-next-line no-control-regex -- finding NUL is the point
const BAD_CHAR = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const BAD_CHAR_G = new RegExp(BAD_CHAR.source, 'g');

/** `String.prototype.isWellFormed` (Node 20+, ES2024): no lone surrogates; a native scan, ~5x the regex's speed. */
const isWellFormed: (s: string) => boolean = typeof (String.prototype as { isWellFormed?: unknown }).isWellFormed === 'function'
  ? (s) => (s as unknown as { isWellFormed(): boolean }).isWellFormed()
  : (s) => !BAD_CHAR.test(s.replaceAll('\u0000', ' '));

/** True when `s` holds nothing Postgres cannot store (the fast path: no allocation, no regex). */
function storableString(s: string): boolean {
  return s.indexOf('\u0000') === -1 && isWellFormed(s);
}

/** The UTF-16 index of the first character Postgres cannot store in `s`, or -1. */
export function unstorableCharIndex(s: string): number {
  if (storableString(s)) return -1;
  const m = BAD_CHAR.exec(s);
  return m === null ? -1 : m.index;
}

/**
 * Why a text column cannot hold `s` (a NUL or a lone surrogate, with its index), or null.
 * For ids, names and header values on their way to a `text` column.
 */
export function storableTextProblem(s: string): string | null {
  const i = unstorableCharIndex(s);
  if (i < 0) return null;
  return `${describeChar(s, i)} at index ${i}`;
}

/**
 * `s` with every NUL and lone surrogate replaced by its JSON escape as plain text (`\u0000`,
 * `\ud800`), so any string can go into a `text` or `jsonb` column. Lossy only for those
 * characters; a string that was storable comes back unchanged (the same string).
 */
export function storableText(s: string): string {
  if (unstorableCharIndex(s) < 0) return s;
  return s.replace(BAD_CHAR_G, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A path step: an object key or an array index, linked to its parent (built into a string only on failure). */
interface Step {
  readonly parent: Step | null;
  readonly key: string | number;
}

const MAX_PATH = 200;
const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** `$.a[3]["odd key"]` for a step chain; the deepest part is clipped when it is long (deep values). */
function pathOf(step: Step | null): string {
  const parts: string[] = [];
  let length = 0;
  let skipped = 0;
  for (let s = step; s !== null; s = s.parent) {
    if (length > MAX_PATH) { skipped++; continue; }
    const k = s.key;
    const part = typeof k === 'number' ? `[${k}]` : IDENT.test(k) ? `.${k}` : `[${JSON.stringify(storableText(k))}]`;
    parts.push(part);
    length += part.length;
  }
  parts.reverse();
  return `$${parts.join('')}${skipped > 0 ? `…(${skipped} more levels)` : ''}`;
}

function describeChar(s: string, i: number): string {
  const code = s.charCodeAt(i);
  return code === 0 ? 'a NUL character (U+0000)' : `a lone UTF-16 surrogate (U+${code.toString(16).toUpperCase()})`;
}

function charProblem(s: string, i: number, step: Step | null, inKey: boolean): StorableProblem {
  const path = pathOf(step);
  const kind: StorableProblemKind = s.charCodeAt(i) === 0 ? 'nul' : 'lone-surrogate';
  return { kind, path, index: i, inKey, message: `${describeChar(s, i)} in ${inKey ? 'a key of ' : ''}${path} at index ${i}` };
}

/**
 * Says why Postgres cannot store `value` as JSON (what and where, one line), or null when it
 * can: a NUL or a lone surrogate in any string or key, or containers nested deeper than
 * `maxDepth` (`[]` is depth 1, `[[1]]` depth 2, a scalar 0). Iterative, so a value nested a
 * million levels deep is judged without overflowing the stack.
 *
 * @example
 * storableProblem({ text: 'a\u0000b' }, 64) // 'a NUL character (U+0000) in $.text at index 1'
 */
export function storableProblem(value: unknown, maxDepth: number = DEFAULT_MAX_JSON_DEPTH): string | null {
  return findStorableProblem(value, maxDepth)?.message ?? null;
}

/** `storableProblem` with the facts apart (kind, path, index), for callers that report them as fields. */
export function findStorableProblem(value: unknown, maxDepth: number = DEFAULT_MAX_JSON_DEPTH): StorableProblem | null {
  // Almost every value is fine: a first pass without paths allocates nothing per node; only a
  // value with a problem is walked again to say where.
  if (isStorable(value, maxDepth)) return null;
  return locateProblem(value, maxDepth);
}

/** The fast pass: true when nothing in `value` is unstorable. Two parallel stacks, no objects. */
function isStorable(value: unknown, maxDepth: number): boolean {
  const values: unknown[] = [value];
  const depths: number[] = [0];
  while (values.length > 0) {
    const v = values.pop();
    const depth = depths.pop()!;
    if (typeof v === 'string') {
      if (!storableString(v)) return false;
      continue;
    }
    if (v === null || typeof v !== 'object') continue;
    if (depth >= maxDepth) return false;
    if (Array.isArray(v)) {
      for (const c of v) {
        if (typeof c === 'string') { if (!storableString(c)) return false; } else if (c !== null && typeof c === 'object') { values.push(c); depths.push(depth + 1); }
      }
      continue;
    }
    for (const k in v) {
      if (!Object.prototype.hasOwnProperty.call(v, k)) continue;
      if (!storableString(k)) return false;
      const c: unknown = (v as Record<string, unknown>)[k];
      if (typeof c === 'string') { if (!storableString(c)) return false; } else if (c !== null && typeof c === 'object') { values.push(c); depths.push(depth + 1); }
    }
  }
  return true;
}

/** The slow pass, for a value known to hold a problem: the first one in document order, with its path. */
function locateProblem(value: unknown, maxDepth: number): StorableProblem | null {
  const stack: { v: unknown; depth: number; step: Step | null }[] = [{ v: value, depth: 0, step: null }];
  while (stack.length > 0) {
    const { v, depth, step } = stack.pop()!;
    if (typeof v === 'string') {
      const i = unstorableCharIndex(v);
      if (i >= 0) return charProblem(v, i, step, false);
      continue;
    }
    if (v === null || typeof v !== 'object') continue;
    if (depth + 1 > maxDepth) {
      const path = pathOf(step);
      return { kind: 'too-deep', path, message: `JSON nested deeper than ${maxDepth} levels at ${path}` };
    }
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) {
        const c: unknown = v[i];
        if (typeof c === 'string' || (c !== null && typeof c === 'object')) stack.push({ v: c, depth: depth + 1, step: { parent: step, key: i } });
      }
      continue;
    }
    const keys = Object.keys(v);
    for (let i = keys.length - 1; i >= 0; i--) {
      const k = keys[i]!;
      const ki = unstorableCharIndex(k);
      if (ki >= 0) return charProblem(k, ki, step, true);
      const c: unknown = (v as Record<string, unknown>)[k];
      if (typeof c === 'string' || (c !== null && typeof c === 'object')) stack.push({ v: c, depth: depth + 1, step: { parent: step, key: k } });
    }
  }
  return null;
}

/** The JSON-visible form of one value, as `JSON.stringify` sees it (toJSON, dropped kinds); undefined = dropped. */
function jsonView(v: unknown): unknown {
  if (v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function') {
    try { v = (v as { toJSON: () => unknown }).toJSON(); } catch { return null; }
  }
  switch (typeof v) {
    case 'undefined': case 'function': case 'symbol': return undefined;
    case 'bigint': return v.toString();
    case 'number': return Number.isFinite(v) ? v : null;
    default: return v;
  }
}

/**
 * Where JSON text nests deeper than `maxDepth`: the index of the first `[` or `{` beyond it, or
 * -1. A linear scan that skips strings, without parsing: doors call it before `JSON.parse`,
 * because V8 parses deep text slowly (a 1 MB text 500,000 levels deep takes ~1 s, blocking the
 * event loop; this scan ~1 ms). For text that is not JSON the answer has no meaning beyond
 * "brackets nest this deep outside quotes", which doors treat as too deep as well.
 */
export function jsonNestingExceeds(text: string, maxDepth: number): number {
  let depth = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 34) { // '"': jump to its closing quote (the next one after an even run of backslashes)
      let j = i;
      for (;;) {
        j = text.indexOf('"', j + 1);
        if (j < 0) return -1; // unterminated: no bracket after it counts
        let backslashes = 0;
        while (text.charCodeAt(j - 1 - backslashes) === 92) backslashes++;
        if ((backslashes & 1) === 0) break;
      }
      i = j;
    } else if (c === 91 || c === 123) {
      if (++depth > maxDepth) return i;
    } else if (c === 93 || c === 125) {
      depth--;
    }
  }
  return -1;
}

/** A container being written by `jsonTextOf`: its entries and the next one to write. */
interface OpenContainer {
  readonly obj: object;
  /** Object keys (null for an array). */
  readonly keys: string[] | null;
  readonly items: readonly unknown[] | null;
  i: number;
  wrote: boolean;
}

/**
 * JSON text of `value`, built without recursion (what `JSON.stringify` does, but safe on any
 * depth; a cycle becomes the string `"[Circular]"`). Its output is always storable: string
 * escaping turns NULs and lone surrogates into `\u` escapes.
 */
export function jsonTextOf(value: unknown): string {
  try {
    // The native writer is an order of magnitude faster and right for everything but the cases
    // below; it recurses, so a deep value throws RangeError (a cycle or a bigint, TypeError).
    return JSON.stringify(value) ?? 'null';
  } catch {
    return writeJsonIteratively(value);
  }
}

/** `jsonTextOf` for what `JSON.stringify` cannot write: any depth, cycles, bigints. */
function writeJsonIteratively(value: unknown): string {
  const out: string[] = [];
  const stack: OpenContainer[] = [];
  const open = new Set<object>();
  /** Writes a scalar, or opens a container (returns it); `v` is already a JSON view. */
  const enter = (v: unknown): void => {
    if (v === undefined || v === null || typeof v !== 'object') { out.push(v === undefined ? 'null' : JSON.stringify(v)); return; }
    if (open.has(v)) { out.push('"[Circular]"'); return; }
    open.add(v);
    if (Array.isArray(v)) {
      out.push('[');
      stack.push({ obj: v, keys: null, items: v, i: 0, wrote: false });
    } else {
      out.push('{');
      stack.push({ obj: v, keys: Object.keys(v), items: null, i: 0, wrote: false });
    }
  };
  enter(jsonView(value));
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.items !== null) {
      if (top.i < top.items.length) {
        if (top.i > 0) out.push(',');
        const v = jsonView(top.items[top.i++]);
        enter(v === undefined ? null : v);
        continue;
      }
      out.push(']');
    } else {
      const keys = top.keys!;
      let advanced = false;
      while (top.i < keys.length) {
        const k = keys[top.i++]!;
        const v = jsonView((top.obj as Record<string, unknown>)[k]);
        if (v === undefined) continue;
        out.push(top.wrote ? `,${JSON.stringify(k)}:` : `${JSON.stringify(k)}:`);
        top.wrote = true;
        enter(v);
        advanced = true;
        break;
      }
      if (advanced) continue;
      out.push('}');
    }
    stack.pop();
    open.delete(top.obj);
  }
  return out.join('');
}

/**
 * Turns any value into one Postgres can store as jsonb, keeping as much as it can: NULs and
 * lone surrogates in strings and keys become their escapes as text (`storableText`), and a
 * container that would sit deeper than `maxDepth` becomes the string of its JSON text
 * (`jsonTextOf`). Non-JSON values follow `JSON.stringify` (undefined → dropped or null,
 * bigint → string). For dead letters and ids of poison messages, which must be stored to be
 * inspected and replayed; not for data that is meant to be delivered (refuse that instead).
 *
 * @example
 * toStorable({ 'k\u0000': 'a\ud800' }) // { 'k\\u0000': 'a\\ud800' }
 */
export function toStorable(value: unknown, maxDepth: number = DEFAULT_MAX_JSON_DEPTH): unknown {
  const root: { value: unknown } = { value: null };
  // Each frame writes its converted value into `into[key]`.
  const stack: { v: unknown; depth: number; into: Record<string | number, unknown>; key: string | number }[] = [
    { v: value, depth: 0, into: root, key: 'value' },
  ];
  while (stack.length > 0) {
    const { v: raw, depth, into, key } = stack.pop()!;
    const v = jsonView(raw);
    if (v === undefined) { into[key] = null; continue; }
    if (typeof v === 'string') { into[key] = storableText(v); continue; }
    if (v === null || typeof v !== 'object') { into[key] = v; continue; }
    if (depth + 1 > maxDepth) { into[key] = jsonTextOf(v); continue; }
    if (Array.isArray(v)) {
      const arr: unknown[] = new Array<unknown>(v.length).fill(null);
      into[key] = arr;
      for (let i = v.length - 1; i >= 0; i--) stack.push({ v: v[i], depth: depth + 1, into: arr as unknown as Record<number, unknown>, key: i });
      continue;
    }
    const obj: Record<string, unknown> = {};
    into[key] = obj;
    for (const [k, c] of Object.entries(v)) {
      if (jsonView(c) === undefined) continue;
      stack.push({ v: c, depth: depth + 1, into: obj, key: storableText(k) });
    }
  }
  return root.value;
}
