/**
 * Pieces the fleet pages share: the Newer/Older pager under a paged list, and the filter form
 * whose fields are the page's URL query (submitting it moves to the new hash, so the filters are
 * in the address bar, the history and any link).
 */
import type { ComponentChildren, JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { Paged } from '../paged.js';
import { hashOf, type PageName } from '../route.js';

/** Newer / page n / Older, and the loading or error line of the list. */
export function Pager({ paged, label }: { paged: Paged<unknown>; label: string }): JSX.Element {
  return (
    <nav class="pager" aria-label={`${label} pages`}>
      <button type="button" class="small" disabled={!paged.hasNewer || paged.loading} onClick={paged.newer}>← Newer</button>
      <span class="muted" data-testid="page-number">page {paged.page}</span>
      <button type="button" class="small" disabled={!paged.hasOlder || paged.loading} onClick={paged.older}>Older →</button>
      {paged.loading && <span class="muted" role="status">loading…</span>}
    </nav>
  );
}

/** Draft filter values, edited in place and applied (to the URL) on submit. */
export function useDraft(params: Readonly<Record<string, string>>): [Record<string, string>, (k: string, v: string) => void] {
  const [draft, setDraft] = useState<Record<string, string>>({ ...params });
  const key = JSON.stringify(params);
  useEffect(() => { setDraft({ ...params }); }, [key]);
  return [draft, (k, v) => { setDraft((d) => ({ ...d, [k]: v })); }];
}

/** The filter form of `page`: Apply writes the draft into the hash; Clear empties it. */
export function FilterForm({ page, draft, label, children }: {
  page: Exclude<PageName, 'session'>; draft: Record<string, string>; label: string; children: ComponentChildren;
}): JSX.Element {
  return (
    <form class="filters fleet-filters" role="search" aria-label={label}
      onSubmit={(e) => { e.preventDefault(); location.hash = hashOf(page, draft); }}>
      {children}
      <div class="filter-actions">
        <button type="submit" class="primary">Apply</button>
        <button type="button" onClick={() => { location.hash = hashOf(page); }}>Clear</button>
      </div>
    </form>
  );
}

/** A labelled text field bound to `draft[name]`. */
export function TextFilter({ name, label, draft, set, placeholder, type = 'text' }: {
  name: string; label: string; draft: Record<string, string>; set(k: string, v: string): void; placeholder?: string; type?: 'text' | 'datetime-local';
}): JSX.Element {
  return (
    <label class="field">
      <span>{label}</span>
      <input type={type} name={name} value={draft[name] ?? ''} placeholder={placeholder} aria-label={label}
        onInput={(e) => { set(name, e.currentTarget.value); }} />
    </label>
  );
}
