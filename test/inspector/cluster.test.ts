// Issue 14: the inspector's Cluster page (the Nodes page since issue 18) in Chromium against two runtimes on one nats-server and
// one Postgres schema (the page served by node-a). Reached by its link in the top bar, it lists
// both nodes (node-a as "this node") with their partitions, and the partition grid colours each
// cell by owner with the owner's fencing epoch in its tooltip, as the owners hold them. When
// node-b stops, the page shows node-a alone with every partition without a reload (it refreshes
// on its own). No console errors, page errors or failed requests meanwhile.
import { mkdirSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineAgent } from '../../actors/index.js';
import { openStore } from '../../persistence/index.js';
import type { Store } from '../../persistence/types.js';
import { packageVersion } from '../../runtime/cluster.js';
import { startControlPlane, type ControlPlane, type Runtime } from '../../runtime/index.js';
import { PG_URL, dropSchema, schemaName, startNats, startRuntime } from '../helpers.js';
import { assertInspectorBuilt, chromiumAvailable, launch, type BrowserSession } from './browser.js';

const PARTS = 8;
const idle = defineAgent({ type: 'idle', initialState: () => ({}), handle: () => undefined });
const haveChromium = chromiumAvailable();

let nats: Awaited<ReturnType<typeof startNats>>;
let schema: string;
let store: Store;
let a: Runtime;
let b: Runtime | undefined;
let cp: ControlPlane;
let browser: BrowserSession;
let page: Page;

/** What the grid shows: per cell, its partition, owner (data-owner) and tooltip. */
function gridCells(): Promise<{ partition: number; owner: string; title: string; colour: string }[]> {
  return page.$$eval('[data-testid="partition-grid"] li', (els) => els.map((el) => ({
    partition: Number(el.getAttribute('data-partition')),
    owner: el.getAttribute('data-owner') ?? '',
    title: el.getAttribute('title') ?? '',
    colour: getComputedStyle(el).backgroundColor,
  })));
}

/** Node ids in the nodes table, in order. */
function nodeRows(): Promise<string[]> {
  return page.$$eval('[data-testid="cluster-nodes"] tbody tr', (els) => els.map((el) => el.getAttribute('data-node') ?? ''));
}

describe.skipIf(!haveChromium)('inspector Cluster page in Chromium', () => {
  beforeAll(async () => {
    assertInspectorBuilt();
    nats = await startNats(PARTS);
    schema = schemaName('inspector_cluster');
    store = openStore({ databaseUrl: PG_URL, schema });
    const config = { leaseTtlMs: 4000, defaultAgentType: 'idle', store: 'auto' as const };
    a = await startRuntime(nats.url, { agents: [idle], store, partitions: PARTS, config: { ...config, nodeId: 'node-a' } });
    b = await startRuntime(nats.url, { agents: [idle], store, partitions: PARTS, config: { ...config, nodeId: 'node-b' } });
    cp = await startControlPlane(a, { port: 0 });
    browser = await launch(1280, 800);
    page = browser.page;
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await cp?.close();
    await b?.stop();
    await a?.stop();
    await store?.close();
    await nats?.cleanup();
    if (schema) await dropSchema(schema);
  });

  it('lists the nodes with their partitions and colours the partition grid by owner, epochs on hover; follows a node leaving', async () => {
    await page.goto(cp.url);
    await page.locator('[data-connection="open"]').waitFor();
    await page.getByRole('navigation', { name: 'Views' }).getByRole('link', { name: 'Nodes' }).click();
    await page.getByRole('heading', { level: 1, name: 'Nodes' }).waitFor();
    await expect.poll(() => page.title()).toBe('Nodes · Agentry inspector');

    // The page refreshes by itself until the two have split the partitions 4/4.
    await expect.poll(async () => {
      const cells = await gridCells();
      return cells.filter((c) => c.owner === 'node-a').length === PARTS / 2 && cells.filter((c) => c.owner === 'node-b').length === PARTS / 2;
    }, { timeout: 60_000, interval: 200 }).toBe(true);
    await expect.poll(nodeRows, { timeout: 30_000, interval: 100 }).toEqual(['node-a', 'node-b']);

    const rowA = page.locator('[data-testid="cluster-nodes"] tr[data-node="node-a"]');
    const rowB = page.locator('[data-testid="cluster-nodes"] tr[data-node="node-b"]');
    await expect(rowA.locator('.self-tag').textContent()).resolves.toBe('this node');
    await expect(rowB.locator('.self-tag').count()).resolves.toBe(0);
    await expect(rowA.textContent()).resolves.toContain(packageVersion()!);
    // Each node's partitions as the owners hold them (count and list).
    for (const [row, rt] of [[rowA, a], [rowB, b!]] as const) {
      const owned = rt.leases.owned();
      await expect.poll(async () => (await row.locator('[data-testid="node-partitions"]').textContent())?.split(' ')[0], { timeout: 30_000 }).toBe(String(owned.length));
    }

    // Grid: every partition once, in order; colour by owner; tooltip names owner and epoch.
    const cells = await gridCells();
    expect(cells.map((c) => c.partition)).toEqual([...Array(PARTS).keys()]);
    for (const c of cells) {
      const owner = c.owner === 'node-a' ? a : b!;
      expect(owner.leases.owns(c.partition)).toBe(true);
      expect(c.title).toContain(`partition ${c.partition}: ${c.owner}, epoch ${owner.leases.epochOf(c.partition)},`);
    }
    const colourOf = (node: string): Set<string> => new Set(cells.filter((c) => c.owner === node).map((c) => c.colour));
    expect(colourOf('node-a').size).toBe(1);
    expect(colourOf('node-b').size).toBe(1);
    expect([...colourOf('node-a')][0]).not.toBe([...colourOf('node-b')][0]);
    await page.locator('[data-testid="partition-grid"] li').first().hover();
    mkdirSync('test-artifacts', { recursive: true });
    await page.screenshot({ path: 'test-artifacts/inspector-cluster.png', fullPage: true });

    // node-b leaves: without a reload, node-a alone with every partition.
    await b!.stop();
    b = undefined;
    await expect.poll(nodeRows, { timeout: 60_000, interval: 200 }).toEqual(['node-a']);
    await expect.poll(async () => (await gridCells()).every((c) => c.owner === 'node-a'), { timeout: 60_000, interval: 200 }).toBe(true);
    await expect(page.locator('[data-testid="cluster-summary"]').textContent()).resolves.toMatch(/^1 node · 8 partitions, 0 free · lease TTL 4 s · updated /);

    expect(browser.failures).toEqual([]);
  }, 180_000);
});
