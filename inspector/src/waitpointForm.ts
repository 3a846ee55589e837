/**
 * Owns what the inspector's waitpoint form knows of a JSON Schema: a starting value to edit (each
 * required property filled with an empty value of its type) and a quick check before sending
 * (JSON syntax, required properties, property types, enums). The server validates fully
 * (INVALID_ARGUMENT with the schema's complaint); this only spares a round trip for common slips.
 */

interface Schema {
  readonly type?: string | readonly string[];
  readonly properties?: Readonly<Record<string, Schema>>;
  readonly required?: readonly string[];
  readonly enum?: readonly unknown[];
  readonly const?: unknown;
  readonly default?: unknown;
}

const asSchema = (s: unknown): Schema => (s !== null && typeof s === 'object' ? (s as Schema) : {});
const firstType = (s: Schema): string | undefined => (Array.isArray(s.type) ? (s.type[0] as string | undefined) : (s.type as string | undefined));

/** An empty value of a schema's type, to start editing from. */
export function skeletonOf(schema: unknown): unknown {
  const s = asSchema(schema);
  if (s.const !== undefined) return s.const;
  if (s.default !== undefined) return s.default;
  if (s.enum && s.enum.length > 0) return s.enum[0];
  switch (firstType(s)) {
    case 'object': {
      const out: Record<string, unknown> = {};
      for (const k of s.required ?? Object.keys(s.properties ?? {})) out[k] = skeletonOf(s.properties?.[k]);
      return out;
    }
    case 'array': return [];
    case 'string': return '';
    case 'number': case 'integer': return 0;
    case 'boolean': return false;
    default: return null;
  }
}

function typeOk(t: string, v: unknown): boolean {
  switch (t) {
    case 'object': return v !== null && typeof v === 'object' && !Array.isArray(v);
    case 'array': return Array.isArray(v);
    case 'integer': return Number.isInteger(v);
    case 'number': return typeof v === 'number';
    case 'null': return v === null;
    default: return typeof v === t;
  }
}

/** The first problem of `value` against `schema` that a quick look can find, or null. */
export function quickCheck(schema: unknown, value: unknown, path = ''): string | null {
  const s = asSchema(schema);
  const where = path || 'the value';
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? (s.type as readonly string[]) : [s.type as string];
    if (!types.some((t) => typeOk(t, value))) return `${where} must be ${types.join(' or ')}`;
  }
  if (s.enum && !s.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) return `${where} must be one of ${s.enum.map((e) => JSON.stringify(e)).join(', ')}`;
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const o = value as Record<string, unknown>;
    for (const k of s.required ?? []) if (!(k in o)) return `${path ? `${path}.` : ''}${k} is required`;
    for (const [k, sub] of Object.entries(s.properties ?? {})) {
      if (k in o) {
        const p = quickCheck(sub, o[k], path ? `${path}.${k}` : k);
        if (p) return p;
      }
    }
  }
  return null;
}

/** Parses the form's text and checks it: the value, or the problem to show. */
export function readAnswer(schema: unknown, text: string): { ok: true; value: unknown } | { ok: false; problem: string } {
  let value: unknown;
  try { value = JSON.parse(text) as unknown; } catch { return { ok: false, problem: 'not JSON (strings need quotes)' }; }
  const problem = quickCheck(schema, value);
  return problem ? { ok: false, problem } : { ok: true, value };
}
