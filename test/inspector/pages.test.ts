// Issue 18 (and 17's tenants in the inspector): the fleet pages in Chromium against a runtime on
// real NATS and Postgres, each reached from the top navigation with its own hash route. Events:
// newest first, a type filter kept in the URL (and across a reload), paged by cursor. Dead
// letters across sessions: filtered by agent type, paged, bulk replay after a confirmation (the
// messages are then handled by their sessions, checked through the API) with one outcome per
// item, bulk discard (gone from the API). Schedules: next run in the task's own time zone,
// paged, cancel after a confirmation (gone from listTasks). Nodes: the partitions with owner and
// epoch as the lease holder has them, narrowed to one owner from the URL. Tenants: sessions by
// tenant with budget limits and usage, paged. No console errors, page errors or failed requests.
// With UPDATE_DOCS_SCREENSHOT set, the screenshots are copied to docs/inspector-<page>.png.
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineAgent } from '../../actors/index.js';
import { chromiumAvailable } from './browser.js';
import { startInspectorStack, type InspectorStack } from './stack.js';
import { switchableFailure } from '../fixtures/switchableFailure.js';

const ARTIFACTS = 'test-artifacts';

/** While `sw.failing`, every `flaky` turn fails terminally (its batch is dead-lettered at once). */
const sw = switchableFailure();
const flaky = sw.flaky;
const steady = defineAgent<{ n: number }>({ type: 'steady', initialState: () => ({ n: 0 }), handle(_b, ctx) { ctx.state.n++; return undefined; } });

const haveChromium = chromiumAvailable();
let s: InspectorStack;
let page: Page;

async function shot(name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `inspector-${name}.png`);
  await page.screenshot({ path, fullPage: true });
  if (process.env.UPDATE_DOCS_SCREENSHOT) copyFileSync(path, join('docs', `inspector-${name}.png`));
}

/** The `data-*` attribute of each row of a table, in order, once the table stopped loading. */
async function rowKeys(testId: string, attr: string): Promise<string[]> {
  return page.$$eval(`[data-testid="${testId}"] tbody tr`, (els, a) => els.map((el) => el.getAttribute(a) ?? ''), attr);
}

/** Waits until `read` returns `expected` (deep equality). */
async function until<T>(read: () => Promise<T>, expected: T, timeout = 30_000): Promise<void> {
  await expect.poll(read, { timeout, interval: 50 }).toEqual(expected);
}

async function nav(name: string): Promise<void> {
  await page.getByRole('navigation', { name: 'Views' }).getByRole('link', { name, exact: true }).click();
  await page.getByRole('heading', { level: 1, name }).waitFor();
  await expect.poll(() => page.title(), { timeout: 10_000 }).toBe(`${name} · Agentry inspector`);
}

function hashParams(): Promise<Record<string, string>> {
  return page.evaluate(() => Object.fromEntries(new URLSearchParams(location.hash.split('?')[1] ?? '')));
}

function field(label: string): Locator {
  return page.getByRole('search').getByLabel(label, { exact: true });
}

describe.skipIf(!haveChromium)('inspector fleet pages in Chromium', () => {
  beforeAll(async () => {
    s = await startInspectorStack('inspector_pages', [flaky, steady], { config: { nodeId: 'node-a' } });
    page = s.page;
    await page.goto(s.cp.url);
    await page.locator('[data-connection="open"]').waitFor();
  }, 120_000);

  afterAll(async () => {
    await s?.close();
  });

  it('Events: newest first, a type filter in the URL (kept across a reload), paged by cursor', async () => {
    const seqs: { seq: number; type: string }[] = [];
    for (let i = 0; i < 30; i++) {
      const type = i % 3 === 0 ? 'order.placed' : 'invoice.paid';
      seqs.push({ seq: (await s.rt.publishEvent(type, { i, amount: 10 * i }, { from: i % 2 ? 'billing-1' : 'shop-2', ...(i === 29 ? { priority: 'urgent' as const } : {}) })).seq, type });
    }
    const newest = [...seqs].reverse();
    await nav('Events');
    await until(() => rowKeys('events-table', 'data-seq'), newest.slice(0, 25).map((e) => String(e.seq)));

    await field('Type or pattern').fill('invoice.*');
    await page.getByRole('search').getByRole('button', { name: 'Apply' }).click();
    const invoices = newest.filter((e) => e.type === 'invoice.paid').map((e) => String(e.seq));
    await until(hashParams, { type: 'invoice.*' });
    await until(() => rowKeys('events-table', 'data-seq'), invoices); // 20 fit on one page
    await page.goto(`${s.cp.url}#/events?limit=8&type=invoice.*`);
    await until(() => rowKeys('events-table', 'data-seq'), invoices.slice(0, 8));
    await page.reload();
    await until(() => rowKeys('events-table', 'data-seq'), invoices.slice(0, 8));
    await expect(field('Type or pattern').inputValue()).resolves.toBe('invoice.*');
    const pager = page.getByRole('navigation', { name: 'Events pages' });
    await pager.getByRole('button', { name: 'Older →' }).click();
    await until(() => rowKeys('events-table', 'data-seq'), invoices.slice(8, 16));
    await pager.getByRole('button', { name: 'Older →' }).click();
    await until(() => rowKeys('events-table', 'data-seq'), invoices.slice(16));
    await expect(pager.getByRole('button', { name: 'Older →' }).isDisabled()).resolves.toBe(true);
    await pager.getByRole('button', { name: '← Newer' }).click();
    await until(() => rowKeys('events-table', 'data-seq'), invoices.slice(8, 16));
    await page.goto(`${s.cp.url}#/events?limit=12`);
    await until(() => rowKeys('events-table', 'data-seq'), newest.slice(0, 12).map((e) => String(e.seq)));
    await shot('events');
  }, 120_000);

  it('Dead letters: filter, page through, bulk replay (handled by their sessions) and bulk discard, each confirmed', async () => {
    sw.failing = true;
    for (let i = 0; i < 3; i++) await s.rt.createAgent(`pay-${i}`, 'flaky');
    for (let i = 0; i < 3; i++) for (let k = 0; k < 2; k++) await s.rt.sendMessage(`pay-${i}`, { text: `charge ${i}.${k}` });
    await s.rt.createAgent('stuck-1', 'flaky');
    await s.rt.stopAgent('stuck-1');
    await s.rt.sendMessage('stuck-1', 'to a stopped session');
    await expect.poll(async () => (await s.rt.listDeadLetters({ agentType: 'flaky' })).length, { timeout: 60_000, interval: 100 }).toBe(7);
    const flakyAll = (await s.rt.listDeadLetters({ agentType: 'flaky', limit: 100 })).map((d) => d.id);

    // The events the previous test published with no recipient are dead-lettered by the router,
    // late on a loaded machine: wait until no new dead letter lands for a second, so the page
    // loaded next shows them all (seen in CI: `event:21` stored after the page had loaded).
    let seen = -1;
    await expect.poll(async () => {
      const n = (await s.rt.listDeadLetters({ limit: 100 })).length;
      const stable = n === seen;
      seen = n;
      return stable;
    }, { timeout: 60_000, interval: 1_000 }).toBe(true);
    await nav('Dead letters');
    // Unfiltered: every dead letter, newest first (the events nobody received included).
    await until(() => rowKeys('dead-letters-table', 'data-id'), (await s.rt.listDeadLetters({ limit: 50 })).map((d) => d.id));
    await page.goto(`${s.cp.url}#/dead-letters?limit=4`);
    await field('Agent type').fill('flaky');
    await page.getByRole('search').getByRole('button', { name: 'Apply' }).click();
    await until(hashParams, { agentType: 'flaky', limit: '4' });
    await until(() => rowKeys('dead-letters-table', 'data-id'), flakyAll.slice(0, 4));
    await page.goto(`${s.cp.url}#/dead-letters?agentType=flaky&limit=4&replayed=no`);
    await until(() => rowKeys('dead-letters-table', 'data-id'), flakyAll.slice(0, 4));
    const pager = page.getByRole('navigation', { name: 'Dead letters pages' });
    await pager.getByRole('button', { name: 'Older →' }).click();
    await until(() => rowKeys('dead-letters-table', 'data-id'), flakyAll.slice(4));
    await pager.getByRole('button', { name: '← Newer' }).click();
    await until(() => rowKeys('dead-letters-table', 'data-id'), flakyAll.slice(0, 4));

    // Replay the pay-* ones on this page (select each by its checkbox): confirmed, one outcome each.
    sw.failing = false;
    const payIds = (await s.rt.listDeadLetters({ agentType: 'flaky', limit: 100 })).filter((d) => d.sessionId.startsWith('pay-')).map((d) => d.id);
    const onPage = flakyAll.slice(0, 4).filter((id) => payIds.includes(id));
    for (const id of onPage) await page.getByRole('checkbox', { name: `Select ${id}` }).check();
    await page.getByRole('button', { name: `Replay selected (${onPage.length})` }).click();
    const confirm = page.getByRole('alertdialog');
    await expect(confirm.textContent()).resolves.toContain(`Replay ${onPage.length} dead letter`);
    await confirm.getByRole('button', { name: 'Yes, replay' }).click();
    const outcome = page.locator('[data-testid="bulk-outcome"]');
    await outcome.waitFor();
    await until(async () => outcome.locator('li').evaluateAll((els) => els.map((el) => [el.getAttribute('data-id'), el.textContent?.replace(/^.*— /, '')])),
      onPage.map((id) => [id, 'replayed: 1 message sent']));
    // The sessions handle the replayed messages (through the API), and the rows drop out of the not-replayed filter.
    for (const id of onPage) {
      const d = await s.rt.listDeadLetters({ limit: 100 }).then((l) => l.find((x) => x.id === id)!);
      expect(d.replayedAt).not.toBeNull();
      const body = (d.payload as { body: { text: string } }[])[0]!.body.text;
      await expect.poll(async () => ((await s.rt.getAgent(d.sessionId)).userState as { seen: string[] }).seen, { timeout: 30_000, interval: 50 }).toContain(body);
    }
    await until(async () => (await rowKeys('dead-letters-table', 'data-id')).some((id) => onPage.includes(id)), false);
    await shot('dead-letters');

    // Discard the rest shown (select all on the page): confirmed; gone from the API.
    await page.goto(`${s.cp.url}#/dead-letters?agentType=flaky&limit=4&replayed=no`);
    const rest = (await s.rt.listDeadLetters({ agentType: 'flaky', replayed: false, limit: 4 })).map((d) => d.id);
    await until(() => rowKeys('dead-letters-table', 'data-id'), rest);
    await page.getByRole('checkbox', { name: 'Select all on this page' }).check();
    await page.getByRole('button', { name: `Discard selected (${rest.length})` }).click();
    await page.getByRole('alertdialog').getByRole('button', { name: 'Yes, discard' }).click();
    await until(async () => outcome.locator('li').evaluateAll((els) => els.map((el) => el.textContent?.replace(/^.*— /, ''))), rest.map(() => 'discarded'));
    const left = (await s.rt.listDeadLetters({ limit: 100 })).map((d) => d.id);
    for (const id of rest) expect(left).not.toContain(id);
    await until(() => rowKeys('dead-letters-table', 'data-id'), (await s.rt.listDeadLetters({ agentType: 'flaky', replayed: false, limit: 4 })).map((d) => d.id));
  }, 120_000);

  it('Schedules: next run in its time zone, paged, cancel after a confirmation', async () => {
    await s.rt.createAgent('cron-1', 'steady', undefined, { tenant: 'acme' });
    await s.rt.createAgent('cron-2', 'steady', undefined, { tenant: 'globex' });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await s.rt.scheduleTask(i < 3 ? 'cron-1' : 'cron-2', { report: i }, '30 9 * * *', { timezone: i % 2 ? 'America/New_York' : 'Asia/Tokyo', taskId: `report-${i}` });
      ids.push(r.taskId);
    }
    await nav('Schedules');
    await until(() => rowKeys('schedules-table', 'data-task'), ids);
    const zoned = await page.locator('[data-testid="schedules-table"] tr[data-task="report-1"] [data-testid="next-run-zoned"]').textContent();
    expect(zoned).toMatch(/09:30 America\/New_York$/);
    await page.goto(`${s.cp.url}#/schedules?limit=2`);
    await until(() => rowKeys('schedules-table', 'data-task'), ids.slice(0, 2));
    const pager = page.getByRole('navigation', { name: 'Schedules pages' });
    await pager.getByRole('button', { name: 'Older →' }).click();
    await until(() => rowKeys('schedules-table', 'data-task'), ids.slice(2, 4));
    await field('Tenant').fill('globex');
    await page.getByRole('search').getByRole('button', { name: 'Apply' }).click();
    await until(() => rowKeys('schedules-table', 'data-task'), ['report-3', 'report-4']);
    await expect(page.locator('[data-testid="page-number"]').textContent()).resolves.toBe('page 1');

    await page.getByRole('button', { name: 'Cancel task report-3' }).click();
    const group = page.getByRole('group', { name: 'Confirm cancelling report-3' });
    await group.getByRole('button', { name: 'Keep' }).click();
    expect((await s.rt.listTasks()).map((t) => t.taskId)).toContain('report-3');
    await page.getByRole('button', { name: 'Cancel task report-3' }).click();
    await page.getByRole('group', { name: 'Confirm cancelling report-3' }).getByRole('button', { name: 'Yes, cancel it' }).click();
    await until(() => rowKeys('schedules-table', 'data-task'), ['report-4']);
    expect((await s.rt.listTasks()).map((t) => t.taskId)).toEqual(['report-0', 'report-1', 'report-2', 'report-4']);
    await page.goto(`${s.cp.url}#/schedules`);
    await until(() => rowKeys('schedules-table', 'data-task'), ['report-0', 'report-1', 'report-2', 'report-4']);
    await shot('schedules');
  }, 120_000);

  it('Nodes: partitions with owner and lease epoch, narrowed to one owner from the URL', async () => {
    await nav('Nodes');
    await until(() => rowKeys('partition-table', 'data-partition'), ['0', '1', '2', '3', '4', '5', '6', '7']);
    const cells = await page.$$eval('[data-testid="partition-table"] tbody tr', (els) => els.map((el) => [...el.querySelectorAll('td')].map((td) => td.textContent ?? '')));
    const self = s.rt.config.nodeId;
    for (const [p, owner, epoch] of cells) {
      expect(owner).toBe(self);
      expect(Number(epoch)).toBe(s.rt.leases.epochOf(Number(p)));
    }
    await page.getByLabel('Filter partitions by owner').selectOption('free');
    await until(hashParams, { node: 'free' });
    await until(() => rowKeys('partition-table', 'data-partition'), []);
    await page.getByLabel('Filter partitions by owner').selectOption(self);
    await until(() => rowKeys('partition-table', 'data-partition'), ['0', '1', '2', '3', '4', '5', '6', '7']);
    await page.goto(`${s.cp.url}#/cluster`);
    await shot('nodes');
  }, 60_000);

  it('Tenants: sessions by tenant with budget limits and usage, paged', async () => {
    await s.rt.createAgent('acme-2', 'steady', undefined, { tenant: 'acme' });
    await s.rt.setBudget({ tenant: 'acme' }, [{ metric: 'turns', max: 100, window: 'day', policy: 'pause' }]);
    await s.rt.setBudget({ tenant: 'zeta' }, [{ metric: 'cost', max: '2.50' }]);
    await s.rt.sendMessage('acme-2', 'hello');
    await expect.poll(async () => ((await s.rt.getAgent('acme-2')).userState as { n: number }).n, { timeout: 30_000 }).toBe(1);
    await nav('Tenants');
    await until(() => rowKeys('tenants-table', 'data-tenant'), ['acme', 'globex', 'zeta']);
    const acme = page.locator('[data-testid="tenants-table"] tr[data-tenant="acme"]');
    await expect(acme.locator('[data-testid="tenant-sessions"]').textContent()).resolves.toBe('2');
    await until(async () => acme.locator('[data-testid="tenant-limits"]').textContent(), 'turns 1 / 100 (day, pause)');
    await until(async () => page.locator('tr[data-tenant="zeta"] [data-testid="tenant-limits"]').textContent(), 'cost 0 / 2.5 (lifetime, abort)');
    await expect(page.locator('tr[data-tenant="zeta"] [data-testid="tenant-sessions"]').textContent()).resolves.toBe('0');
    await shot('tenants');
    await page.goto(`${s.cp.url}#/tenants?limit=2`);
    await until(() => rowKeys('tenants-table', 'data-tenant'), ['acme', 'globex']);
    await page.getByRole('navigation', { name: 'Tenants pages' }).getByRole('button', { name: 'Older →' }).click();
    await until(() => rowKeys('tenants-table', 'data-tenant'), ['zeta']);
    // From a tenant to its cron tasks: the link carries the filter.
    await page.locator('tr[data-tenant="zeta"]').getByRole('link', { name: 'schedules' }).click();
    await until(hashParams, { tenant: 'zeta' });
    await page.getByRole('heading', { level: 1, name: 'Schedules' }).waitFor();

    // Narrow screen: no page-wide horizontal scroll on a fleet page.
    await page.setViewportSize({ width: 390, height: 800 });
    await page.goto(`${s.cp.url}#/dead-letters`);
    await page.getByRole('heading', { level: 1, name: 'Dead letters' }).waitFor();
    expect(await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)).toBe(0);
    await page.setViewportSize({ width: 1280, height: 800 });
    expect(s.browser.failures).toEqual([]);
  }, 120_000);
});
