// The operator and API documentation cannot silently fall behind the code: every method, every
// error code and every configuration variable must be documented.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { codes } from '../../actors/errors.js';
import { METHOD_NAMES } from '../../client/index.js';

const api = readFileSync('docs/api.md', 'utf8');
const ops = readFileSync('docs/operations.md', 'utf8');

describe('documentation', () => {
  it('docs/api.md documents every method and every error code', () => {
    const headings = api.split('\n').filter((l) => l.startsWith('### ')).join(' ');
    for (const m of METHOD_NAMES) expect(headings, `document ${m} under a ### heading in docs/api.md`).toContain(m);
    for (const [type, code] of Object.entries(codes)) {
      expect(api, `document ${type} in docs/api.md's error table`).toContain(`\`${type}\``);
      expect(api, `document code ${code} in docs/api.md`).toContain(String(code).slice(0, 3));
    }
  });

  it("docs/api.md describes the typed client's subscribe handle with the fields the client has", () => {
    const src = readFileSync('client/createClient.ts', 'utf8');
    const body = /export interface Subscription \{([^}]*)\}/.exec(src)?.[1] ?? '';
    const fields = [...body.matchAll(/^\s*(?:readonly\s+)?(\w+)(\()?/gm)].map((m) => `${m[1]!}${m[2] ? '()' : ''}`);
    expect(fields).toEqual(['id', 'unsubscribe()']);
    expect(api).toContain(`\`{ ${fields.join(', ')} }\``);
  });

  it('docs/operations.md documents every environment variable the configuration reads', () => {
    const source = readFileSync('runtime/config.ts', 'utf8');
    const vars = [...source.matchAll(/^\s+([A-Z][A-Z0-9_]+): \{ key:/gm)].map((m) => m[1]!);
    expect(vars.length).toBeGreaterThan(10);
    for (const v of vars) expect(ops, `document ${v} in docs/operations.md's configuration table`).toContain(`\`${v}\``);
  });
});
