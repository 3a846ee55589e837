// Inspector list suite (issue 18): the sessions list with 100,000 stored sessions.
//
// A runtime on Postgres with the control plane; sessions seeded straight into Postgres (one
// INSERT … SELECT generate_series cloning real sessions' rows: idle, sleeping and stopped, four
// agent types, a tenant on a third), then:
//  - listAgents latency over a WebSocket for each filter and sort (first page and a deep page);
//  - in Chromium (Debian's, through playwright-core): the list's first page (navigation → first
//    row drawn), a filter (the last key of an id prefix → only matching rows drawn, the 100 ms
//    typing debounce included), a state filter (click → rows drawn);
//  - the tab's JS heap (CDP Performance.getMetrics JSHeapUsedSize after a forced GC) and DOM
//    size while scrolling through BENCH_LIST_SCROLL_PAGES pages of 200 rows;
//  - a screenshot of the list page at 100,000 sessions into docs/inspector-list.png.
// Knobs: BENCH_LIST_SESSIONS (100000), BENCH_LIST_REPS (7), BENCH_LIST_SCROLL_PAGES (100).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';
import { createClient } from '../dist/client/index.js';
import { createRuntime, defineAgent, startControlPlane } from '../dist/runtime/index.js';
import { PARTITIONS, PG_URL, ROOT, dropSchema, log, median, percentiles, pgClient, quietLogger, round, schemaName, sleep, startNats } from './lib.mjs';

const outPath = process.argv[2];
const N = Number(process.env.BENCH_LIST_SESSIONS ?? 100_000);
const REPS = Number(process.env.BENCH_LIST_REPS ?? 7);
const SCROLL_PAGES = Number(process.env.BENCH_LIST_SCROLL_PAGES ?? 100);
const ROW_H = 36;
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const TYPES = ['echo', 'support', 'billing', 'research'];

/** Seeds `n` sessions `sess-000001…` from the template rows; the newest is a minute old, one second apart. */
async function seed(schema, templates, n) {
  const c = await pgClient(schema);
  try {
    const t0 = performance.now();
    await c.query(
      `INSERT INTO sessions (id, type, status, snapshot, last_seq, version, partition, owner_epoch, wake_at, wake_events, wake_priority, created_at, updated_at, tenant)
       SELECT 'sess-' || lpad(i::text, 6, '0'), t.type, t.status,
              jsonb_set(t.snapshot, '{context,sessionId}', to_jsonb('sess-' || lpad(i::text, 6, '0'))),
              t.last_seq, t.version, t.partition, t.owner_epoch, t.wake_at, t.wake_events, t.wake_priority,
              $3::bigint - i * 1000, $3::bigint - i * 1000, t.tenant
       FROM generate_series(1, $2::integer) AS i
       CROSS JOIN LATERAL (SELECT * FROM sessions WHERE id = ($1::text[])[1 + i % cardinality($1::text[])]) AS t`,
      [templates, n, Date.now() - 60_000],
    );
    // The templates were active just now: make them a month old, so the list opens on the fleet.
    await c.query(`UPDATE sessions SET updated_at = updated_at - 30 * 86400000::bigint WHERE id = ANY($1::text[])`, [templates]);
    await c.query('ANALYZE sessions');
    return round(performance.now() - t0, 0);
  } finally {
    await c.end();
  }
}

async function timed(fn) {
  const t0 = performance.now();
  const r = await fn();
  return [performance.now() - t0, r];
}

const nats = await startNats();
const schema = schemaName('inspector_list');
let result;
let rt;
let cp;
let rpcCp;
let browser;
const profile = mkdtempSync(join(tmpdir(), 'agentry-bench-chromium-'));
try {
  const agents = TYPES.map((type) => defineAgent({ type, handle: () => undefined }));
  rt = await createRuntime({
    agents, logger: quietLogger(),
    config: { natsUrl: nats.url, partitions: PARTITIONS, defaultAgentType: 'echo', logLevel: 'error', store: 'auto', databaseUrl: PG_URL, databaseSchema: schema },
  });
  const templates = [];
  for (const type of TYPES) {
    for (const state of ['idle', 'sleeping', 'stopped']) {
      for (const tenant of [undefined, 'acme']) {
        const id = `tpl-${type}-${state}${tenant ? '-t' : ''}`;
        await rt.createAgent(id, type, undefined, tenant ? { tenant } : undefined);
        if (state === 'sleeping') await rt.sleepAgent(id, { durationMs: 7 * 86_400_000 });
        if (state === 'stopped') await rt.stopAgent(id);
        templates.push(id, ...(tenant ? [] : [id])); // tenants on a third of the sessions
      }
    }
  }
  log(`inspectorList: seeding ${N} sessions`);
  const seedMs = await seed(schema, templates, N);
  log(`inspectorList: seeded in ${seedMs} ms`);
  cp = await startControlPlane(rt, { port: 0 }); // what the browser uses: default limits
  // The RPC walk below sends a few thousand calls back to back: above the default per-connection
  // rate limit, so it gets a control plane of its own with the limit raised.
  rpcCp = await startControlPlane(rt, { port: 0, ratePerSec: 100_000, burst: 100_000 });

  // ---- listAgents over a WebSocket ------------------------------------------------------------
  const client = createClient(rpcCp.rpcUrl, { WebSocket });
  await client.connect();
  const queries = {
    'counts: capped total and counts by state (the list reads them beside its first page, on load and refresh)': { sort: 'updatedAt', limit: 1, count: true, countByState: true },
    'first page, newest first': { sort: 'updatedAt', limit: 200 },
    'state sleeping, newest first': { state: 'sleeping', sort: 'updatedAt', limit: 200 },
    'states sleeping + stopped, newest first': { state: ['sleeping', 'stopped'], sort: 'updatedAt', limit: 200 },
    'type billing, newest first': { type: 'billing', sort: 'updatedAt', limit: 200 },
    'tenant acme, newest first': { tenant: 'acme', sort: 'updatedAt', limit: 200 },
    'id prefix sess-0421, newest first': { idPrefix: 'sess-0421', sort: 'updatedAt', limit: 200 },
    'id prefix sess-0421 with count': { idPrefix: 'sess-0421', sort: 'updatedAt', limit: 200, count: true },
    'last activity in the last hour': { updatedAfter: Date.now() - 3_600_000, sort: 'updatedAt', limit: 200 },
    'sorted by id': { sort: 'agentId', limit: 200 },
    'sorted by type': { sort: 'type', limit: 200 },
    'sorted by state, descending': { sort: 'state', order: 'desc', limit: 200 },
    'id contains 4242 (not indexed: a scan)': { idContains: '4242', limit: 200 },
  };
  const rpc = {};
  for (const [name, params] of Object.entries(queries)) {
    await client.listAgents(params); // warm
    const ms = [];
    for (let i = 0; i < REPS * 3; i++) ms.push((await timed(() => client.listAgents(params)))[0]);
    rpc[name] = percentiles(ms);
  }
  // Deep pages: the cursor of page 250 (50,000 rows in), by sort.
  const deep = {};
  for (const [name, params] of Object.entries({ 'newest first': { sort: 'updatedAt' }, 'by type': { sort: 'type' }, 'by state': { sort: 'state' } })) {
    let after;
    for (let p = 0; p < 250; p++) after = (await client.listAgents({ ...params, limit: 200, ...(after ? { after } : {}) })).next;
    const ms = [];
    for (let i = 0; i < REPS * 3; i++) ms.push((await timed(() => client.listAgents({ ...params, limit: 200, after })))[0]);
    deep[name] = percentiles(ms);
  }
  await client.close();
  log(`inspectorList: listAgents first page p50 ${rpc['first page, newest first'].p50} ms`);

  // ---- Chromium --------------------------------------------------------------------------------
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, viewport: { width: 1280, height: 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
  });
  browser = context;
  const page = context.pages()[0] ?? await context.newPage();
  const failures = [];
  page.on('pageerror', (e) => failures.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') failures.push(m.text()); });
  const cdp = await context.newCDPSession(page);
  await cdp.send('Performance.enable');
  const heap = async () => {
    await cdp.send('HeapProfiler.collectGarbage');
    const { metrics } = await cdp.send('Performance.getMetrics');
    const m = Object.fromEntries(metrics.map((x) => [x.name, x.value]));
    return { jsHeapUsedMiB: round(m.JSHeapUsedSize / 2 ** 20, 2), domNodes: m.Nodes };
  };
  const firstRow = () => page.waitForFunction(() => {
    const r = document.querySelector('#srow-0[data-session]');
    const s = document.querySelector('[data-testid="sessions-summary"]')?.textContent ?? '';
    return r !== null && !s.includes('loading');
  }, undefined, { polling: 'raf', timeout: 60_000 });

  const firstPage = [];
  for (let i = 0; i < REPS; i++) {
    await page.goto('about:blank');
    const [ms] = await timed(async () => { await page.goto(`${cp.url}/#/`); await firstRow(); });
    firstPage.push(ms);
  }
  await page.waitForFunction(() => !(document.querySelector('[data-testid="sessions-summary"]')?.textContent ?? '…').includes('…'), undefined, { polling: 'raf', timeout: 60_000 });
  const summaryText = await page.locator('[data-testid="sessions-summary"]').textContent();

  // Typing an id prefix: from the last key to the list showing only matching rows.
  const search = page.getByLabel('Filter by session id');
  const prefixFilter = [];
  for (let i = 0; i < REPS; i++) {
    const prefix = `sess-${String(1 + Math.floor(((i + 0.5) * N) / REPS)).padStart(6, '0').slice(0, 4)}`; // ~100 sessions each
    await search.fill('');
    await firstRow();
    await page.waitForFunction(() => !(document.querySelector('[data-testid="sessions-summary"]')?.textContent ?? '').includes(' of '), undefined, { polling: 'raf' });
    await search.pressSequentially(prefix.slice(0, -1), { delay: 20 }); // keys within the debounce: no query yet
    const [ms] = await timed(async () => {
      await search.press(prefix.at(-1));
      await page.waitForFunction((p) => {
        const rows = [...document.querySelectorAll('.grid-spacer [role="row"][data-session]')];
        return rows.length > 0 && rows.every((r) => (r.getAttribute('data-session') ?? '').startsWith(p));
      }, prefix, { polling: 'raf', timeout: 60_000 });
    });
    prefixFilter.push(ms); // from the last key: the time the user waits
  }
  await search.fill('');
  await page.waitForFunction(() => !(document.querySelector('[data-testid="sessions-summary"]')?.textContent ?? '').includes(' of '), undefined, { polling: 'raf' });
  await firstRow();

  // A state chip: click → only that state's rows drawn.
  const stateFilter = [];
  for (let i = 0; i < REPS; i++) {
    const state = i % 2 ? 'stopped' : 'sleeping';
    const [ms] = await timed(async () => {
      await page.locator(`[data-count-state="${state}"]`).click();
      await page.waitForFunction((s) => {
        const rows = [...document.querySelectorAll('.grid-spacer [role="row"][data-state]')];
        return rows.length > 10 && rows.every((r) => r.getAttribute('data-state') === s);
      }, state, { polling: 'raf', timeout: 60_000 });
    });
    stateFilter.push(ms);
    await page.locator(`[data-count-state="${state}"]`).click(); // off again
    await firstRow();
  }

  // Scrolling: through SCROLL_PAGES pages, heap sampled after a GC every tenth of the way.
  await page.goto('about:blank');
  await page.goto(`${cp.url}/#/`);
  await firstRow();
  await sleep(500);
  const grid = page.getByRole('grid', { name: 'Sessions' });
  const series = [{ rows: 0, ...(await heap()) }];
  const rowsTotal = SCROLL_PAGES * 200;
  const step = 20 * ROW_H * 10; // ten screens a step
  const scrollStart = performance.now();
  for (let top = step, k = 1; top <= rowsTotal * ROW_H; top += step, k++) {
    await grid.evaluate((el, t) => { el.scrollTop = t; }, top);
    const row = Math.floor(top / ROW_H) + 5;
    await page.locator(`#srow-${row}[data-session]`).waitFor({ timeout: 60_000 });
    if (k % Math.max(1, Math.round(rowsTotal * ROW_H / step / 10)) === 0) series.push({ rows: row, ...(await heap()) });
  }
  const scrollMs = performance.now() - scrollStart;
  const end = series.at(-1);
  await page.goto('about:blank');
  await page.goto(`${cp.url}/#/`);
  await firstRow();
  await sleep(1500); // mailbox details of the rows on screen
  await page.screenshot({ path: join(ROOT, 'docs', 'inspector-list.png') });

  result = {
    sessions: N + new Set(templates).size, seedMs, reps: REPS,
    rpc, deepPage: deep,
    browser: {
      firstPageMs: percentiles(firstPage), firstPageMedianMs: round(median(firstPage), 0), summary: summaryText,
      prefixFilterMs: percentiles(prefixFilter), prefixFilterMedianMs: round(median(prefixFilter), 0),
      stateFilterMs: percentiles(stateFilter), stateFilterMedianMs: round(median(stateFilter), 0),
      scroll: { pages: SCROLL_PAGES, rows: rowsTotal, seconds: round(scrollMs / 1000, 1), series, heapGrowthMiB: round(end.jsHeapUsedMiB - series[0].jsHeapUsedMiB, 2) },
      failures,
    },
  };
  log(`inspectorList: first page ${result.browser.firstPageMedianMs} ms, prefix filter ${result.browser.prefixFilterMedianMs} ms, state filter ${result.browser.stateFilterMedianMs} ms, heap ${series[0].jsHeapUsedMiB} → ${end.jsHeapUsedMiB} MiB over ${rowsTotal} rows`);
} finally {
  await browser?.close().catch(() => undefined);
  rmSync(profile, { recursive: true, force: true });
  await cp?.close().catch(() => undefined);
  await rpcCp?.close().catch(() => undefined);
  await rt?.stop().catch(() => undefined);
  await dropSchema(schema).catch(() => undefined);
  await nats.cleanup();
}
writeFileSync(outPath, JSON.stringify(result, null, 2));
process.exit(0);
