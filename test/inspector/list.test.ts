// Issue 18: the sessions list at fleet scale, in Chromium against a runtime on real NATS and
// Postgres. Sessions are seeded straight into Postgres (clones of real sessions' rows). Proves:
// 1. state and id-prefix filters run on the server, live in the URL and survive a reload;
// 2. scrolling reads pages as they come into view and keeps only the rows in view in the DOM;
// 3. opening a session and coming back restores the scroll position and the rows shown;
// 4. no console errors, page errors or failed requests meanwhile;
// 5. a filter the server refuses is shown as an error and not retried in a loop.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineAgent } from '../../actors/index.js';
import { echo } from '../../examples/echo.js';
import type { SessionSummary, Store } from '../../persistence/types.js';
import type { ControlPlane, Runtime } from '../../runtime/index.js';
import { PG_URL } from '../helpers.js';
import { chromiumAvailable, type BrowserSession } from './browser.js';
import { startInspectorStack, type InspectorStack } from './stack.js';

const BULK = 3000;
const support = defineAgent({ type: 'support', handle: () => undefined });

const haveChromium = chromiumAvailable();
let stack: InspectorStack;
let store: Store;
let rt: Runtime;
let cp: ControlPlane;
let browser: BrowserSession;
let page: Page;

/**
 * Inserts `n` sessions `<prefix>000001…` cloned from the template sessions' rows (a real
 * snapshot each, its session id and type rewritten), one a second older than the one before.
 */
async function seedSessions(url: string, inSchema: string, templates: readonly string[], prefix: string, n: number, newest: number): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(`SET search_path TO "${inSchema}"`);
    await c.query(
      `INSERT INTO sessions (id, type, status, snapshot, last_seq, version, partition, owner_epoch, wake_at, wake_events, wake_priority, created_at, updated_at, tenant)
       SELECT $2 || lpad(i::text, 6, '0'), t.type, t.status,
              jsonb_set(t.snapshot, '{context,sessionId}', to_jsonb($2 || lpad(i::text, 6, '0'))),
              t.last_seq, t.version, t.partition, t.owner_epoch, t.wake_at, t.wake_events, t.wake_priority,
              $4::bigint - i * 1000, $4::bigint - i * 1000, t.tenant
       FROM generate_series(1, $3::integer) AS i
       CROSS JOIN LATERAL (SELECT * FROM sessions WHERE id = ($1::text[])[1 + i % cardinality($1::text[])]) AS t`,
      [templates, prefix, n, newest],
    );
    await c.query('ANALYZE sessions');
  } finally {
    await c.end();
  }
}

/** The store's own order of the list page: newest activity first. */
async function newestFirst(): Promise<SessionSummary[]> {
  const out: SessionSummary[] = [];
  let from: SessionSummary | undefined;
  for (;;) {
    const page = await store.listSessions({ sort: 'updatedAt', desc: true, limit: 1000, ...(from ? { from } : {}) });
    out.push(...page);
    if (page.length < 1000) return out;
    from = page.at(-1);
  }
}

async function summary(): Promise<string> {
  return (await page.locator('[data-testid="sessions-summary"]').textContent()) ?? '';
}

async function gridScrollTop(): Promise<number> {
  return page.getByRole('grid', { name: 'Sessions' }).evaluate((el) => el.scrollTop);
}

describe.skipIf(!haveChromium)('sessions list at scale in Chromium', () => {
  beforeAll(async () => {
    stack = await startInspectorStack('inspector_list', [echo, support], { config: { defaultAgentType: 'echo' } });
    ({ store, rt, cp, browser, page } = stack);
    await rt.createAgent('tpl-idle', 'echo');
    await rt.createAgent('tpl-support', 'support');
    await rt.createAgent('tpl-sleeping', 'echo');
    await rt.sleepAgent('tpl-sleeping', { durationMs: 86_400_000 });
    await rt.createAgent('tpl-stopped', 'support');
    await rt.stopAgent('tpl-stopped');
    await seedSessions(PG_URL, stack.schema, ['tpl-idle', 'tpl-support', 'tpl-sleeping', 'tpl-stopped'], 'ls-', BULK, Date.now() - 60_000);
  }, 120_000);

  afterAll(async () => {
    await stack?.close();
  });

  it('filters by state and by id prefix on the server, keeps the filters in the URL, and restores them on reload', async () => {
    const total = BULK + 4;
    await page.goto(`${cp.url}/#/`);
    await expect.poll(summary, { timeout: 30_000 }).toBe(`${total.toLocaleString('en-US')} sessions`);
    // Newest activity first: the templates, then ls-000001, ls-000002, …
    const order = await newestFirst();
    await expect.poll(() => page.locator('#srow-0').getAttribute('data-session'), { timeout: 30_000 }).toBe(order[0]!.id);

    await page.locator('[data-count-state="stopped"]').click();
    const stopped = order.filter((s) => s.status === 'stopped');
    await expect.poll(summary, { timeout: 30_000 }).toBe(`${stopped.length.toLocaleString('en-US')} of ${total.toLocaleString('en-US')} sessions`);
    expect(page.url()).toMatch(/#\/\?state=stopped$/);
    await expect.poll(() => page.locator('#srow-0').getAttribute('data-session'), { timeout: 30_000 }).toBe(stopped[0]!.id);
    const states = await page.locator('.grid-spacer [role="row"][data-state]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-state')));
    expect(states.length).toBeGreaterThan(5);
    expect(new Set(states)).toEqual(new Set(['stopped']));

    await page.getByLabel('Filter by session id').fill('ls-00120');
    const wanted = stopped.filter((s) => s.id.startsWith('ls-00120')).map((s) => s.id);
    expect(wanted.length).toBeGreaterThan(1);
    await expect.poll(() => page.locator('.grid-spacer [role="row"][data-session]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-session'))), { timeout: 30_000 })
      .toEqual(wanted);
    await expect.poll(() => page.url()).toMatch(/#\/\?state=stopped&q=ls-00120$/);
    // The count is its own request: it may still show "…" when the rows are in.
    await expect.poll(summary, { timeout: 30_000 }).toBe(`${wanted.length} of ${total.toLocaleString('en-US')} sessions`);

    await page.reload();
    await expect.poll(() => page.locator('.grid-spacer [role="row"][data-session]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-session'))), { timeout: 30_000 })
      .toEqual(wanted);
    expect(await page.getByLabel('Filter by session id').inputValue()).toBe('ls-00120');
    expect(await page.locator('[data-count-state="stopped"]').getAttribute('aria-pressed')).toBe('true');

    // A prefix is literal and case-sensitive; no match says so.
    await page.getByLabel('Filter by session id').fill('LS-');
    await page.getByText('No sessions match.').waitFor({ timeout: 30_000 });
    expect(browser.failures).toEqual([]);
  }, 120_000);

  it('reads pages as they scroll into view with only the visible rows in the DOM, and comes back from a session to the same place', async () => {
    await page.goto(`${cp.url}/#/`);
    await page.reload();
    const order = await newestFirst();
    const grid = page.getByRole('grid', { name: 'Sessions' });
    await expect.poll(() => page.locator('#srow-0').getAttribute('data-session'), { timeout: 30_000 }).toBe(order[0]!.id);
    // Scroll down in steps, as a user would: each step brings unread rows into view.
    const target = 1234;
    for (let top = 0; top <= target * 36; top += 4000) {
      await grid.evaluate((el, t) => { el.scrollTop = t; }, top);
      await page.waitForTimeout(30);
    }
    await grid.evaluate((el, t) => { el.scrollTop = t; }, target * 36);
    await expect.poll(() => page.locator(`#srow-${target}`).getAttribute('data-session'), { timeout: 30_000 }).toBe(order[target]!.id);
    expect(await page.locator('.grid-spacer [role="row"]').count()).toBeLessThan(80);
    const before = await gridScrollTop();
    expect(before).toBeGreaterThan(target * 36 - 800);

    // Open the session in view, then come back.
    const row = page.locator(`#srow-${target + 3}`);
    const id = await row.getAttribute('data-session');
    await row.click();
    await page.waitForURL(/#\/s\//);
    await page.goBack();
    await page.locator(`#srow-${target + 3}[data-session="${id}"]`).waitFor({ timeout: 30_000 });
    expect(await gridScrollTop()).toBe(before);

    mkdirSync('test-artifacts', { recursive: true });
    await page.screenshot({ path: join('test-artifacts', 'inspector-list-scrolled.png') });
    expect(browser.failures).toEqual([]);
  }, 120_000);

  it('shows the server\'s refusal of a filter, does not ask again in a loop, and recovers when the filter is fixed', async () => {
    await page.goto(`${cp.url}/#/`);
    await page.reload();
    await page.locator('#srow-0[data-session]').waitFor({ timeout: 30_000 });
    let listCalls = 0;
    const ws = await new Promise<import('playwright-core').WebSocket>((resolve) => { page.once('websocket', resolve); void page.reload(); });
    ws.on('framesent', (f) => { if (typeof f.payload === 'string' && f.payload.includes('"listAgents"')) listCalls++; });
    await page.locator('#srow-0[data-session]').waitFor({ timeout: 30_000 });
    await page.getByLabel('Filter by tenant').fill('no spaces allowed');
    await expect.poll(() => page.getByRole('alert').first().textContent(), { timeout: 30_000 }).toMatch(/cannot (list|count) sessions: .*tenant/);
    const after = listCalls;
    await page.waitForTimeout(2000);
    expect(listCalls - after).toBeLessThanOrEqual(2); // at most one retry of the page and of the count
    await page.getByLabel('Filter by tenant').fill('');
    await page.locator('#srow-0[data-session]').waitFor({ timeout: 30_000 });
    await expect.poll(() => page.getByRole('alert').count(), { timeout: 30_000 }).toBe(0);
  }, 120_000);

  it('filters by tag from the URL (#/?tag=vip), keeps it on reload, and shows a session\'s tags in its header', async () => {
    await rt.createAgent('tag-vip-1', 'echo', undefined, { tags: ['vip', 'team:eu'] });
    await rt.createAgent('tag-vip-2', 'support', undefined, { tags: ['vip'] });
    await rt.createAgent('tag-other', 'echo', undefined, { tags: ['team:eu'] });
    const rows = (): Promise<(string | null)[]> => page.locator('.grid-spacer [role="row"][data-session]').evaluateAll((r) => r.map((x) => x.getAttribute('data-session')));
    await page.goto(`${cp.url}/#/?tag=vip`);
    await page.reload();
    await expect.poll(rows, { timeout: 30_000 }).toEqual(['tag-vip-2', 'tag-vip-1']); // newest activity first
    expect(await page.getByLabel('Filter by tag').inputValue()).toBe('vip');
    await page.getByLabel('Filter by tag').fill('team:eu');
    await expect.poll(() => page.url()).toMatch(/#\/\?tag=team%3Aeu$/);
    await page.reload();
    await expect.poll(rows, { timeout: 30_000 }).toEqual(['tag-other', 'tag-vip-1']);
    expect(await page.getByLabel('Filter by tag').inputValue()).toBe('team:eu');
    await page.goto(`${cp.url}/#/s/tag-vip-1`);
    await expect.poll(() => page.locator('[data-testid="session-tag"]').allTextContents(), { timeout: 30_000 }).toEqual(['#vip', '#team:eu']);
    expect(browser.failures).toEqual([]);
  }, 120_000);
});
