/**
 * A collapsible JSON tree built on <details>/<summary>, so it opens and closes with the keyboard
 * and screen readers announce it without extra ARIA. Large arrays and objects show their first
 * entries and a count of the rest.
 */
import type { JSX } from 'preact';

const MAX_CHILDREN = 200;

/** Props of `JsonTree`. */
export interface JsonTreeProps {
  readonly value: unknown;
  /** Name shown for the root (e.g. `userState`). */
  readonly name?: string;
  /** Levels open at first. */
  readonly openDepth?: number;
}

function Leaf({ value }: { value: unknown }): JSX.Element {
  if (value === null) return <span class="json-null">null</span>;
  if (value === undefined) return <span class="json-null">undefined</span>;
  if (typeof value === 'string') return <span class="json-string">{JSON.stringify(value)}</span>;
  if (typeof value === 'number') return <span class="json-number">{String(value)}</span>;
  if (typeof value === 'boolean') return <span class="json-bool">{String(value)}</span>;
  return <span>{String(value)}</span>;
}

function Node({ name, value, depth, openDepth }: { name: string | null; value: unknown; depth: number; openDepth: number }): JSX.Element {
  const key = name === null ? null : <span class="json-key">{name}: </span>;
  if (value === null || typeof value !== 'object') return <li>{key}<Leaf value={value} /></li>;
  const isArray = Array.isArray(value);
  const entries: [string, unknown][] = isArray ? (value as unknown[]).map((v, i) => [String(i), v]) : Object.entries(value as Record<string, unknown>);
  const summary = isArray ? `[${entries.length}]` : `{${entries.length}}`;
  if (entries.length === 0) return <li>{key}<span class="json-punct">{isArray ? '[]' : '{}'}</span></li>;
  return (
    <li>
      <details open={depth < openDepth}>
        <summary>{key}<span class="json-punct">{summary}</span></summary>
        <ul>
          {entries.slice(0, MAX_CHILDREN).map(([k, v]) => <Node key={k} name={k} value={v} depth={depth + 1} openDepth={openDepth} />)}
          {entries.length > MAX_CHILDREN && <li class="muted">… {entries.length - MAX_CHILDREN} more</li>}
        </ul>
      </details>
    </li>
  );
}

/** Renders `value` as a tree whose first `openDepth` levels are expanded. */
export function JsonTree({ value, name, openDepth = 2 }: JsonTreeProps): JSX.Element {
  return <ul class="json-tree"><Node name={name ?? null} value={value} depth={0} openDepth={openDepth} /></ul>;
}
