// Issue 16 §4: "fork from here" on the inspector's timeline, in a real browser (Debian's
// Chromium through playwright-core) against a running runtime (real nats-server and Postgres,
// the control plane serving the built inspector). A session handles three messages; scrubbing
// the timeline back to the second and forking creates a new session with the state as of then,
// which the page opens; the original keeps all three.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Page } from 'playwright-core';
import { defineAgent } from '../../actors/index.js';
import type { Store } from '../../persistence/types.js';
import type { ControlPlane, Runtime } from '../../runtime/index.js';
import { publish, waitFor } from '../helpers.js';
import { chromiumAvailable, type BrowserSession } from './browser.js';
import { startInspectorStack, type InspectorStack } from './stack.js';

const counter = defineAgent<{ words: string[] }>({
  type: 'counter',
  onMessage: 'queue',
  checkpoints: true,
  initialState: () => ({ words: [] }),
  handle(batch, ctx) {
    for (const m of batch) if (m.kind !== 'wake') ctx.state.words.push(String((m.body as { w?: string } | null)?.w));
    return undefined;
  },
});

const haveChromium = chromiumAvailable();
let stack: InspectorStack;
let store: Store;
let rt: Runtime;
let cp: ControlPlane;
let nc: NatsConnection;
let browser: BrowserSession;
let page: Page;

const wordsOf = async (sid: string): Promise<string[] | undefined> =>
  ((await store.loadSession(sid))?.snapshot as { context: { userState: { words: string[] } } } | undefined)?.context.userState.words;

describe.skipIf(!haveChromium)('fork from the inspector', () => {
  beforeAll(async () => {
    stack = await startInspectorStack('inspfork', [counter], { width: 1280, height: 900 });
    ({ store, rt, cp, nc, browser, page } = stack);
  }, 120_000);

  afterAll(async () => {
    await stack?.close();
  });

  it('forks from a message picked on the timeline and opens the fork', async () => {
    await rt.createAgent('tl-1', 'counter');
    for (const w of ['alpha', 'beta', 'gamma']) {
      await publish(nc, 'tl-1', { w });
      await waitFor(async () => (await wordsOf('tl-1'))?.includes(w), `${w} applied`);
    }
    const seqs = (await store.getHistory('tl-1', { limit: 10 })).map((h) => h.seq).reverse();
    await page.goto(`${cp.url}#/s/tl-1`);
    await page.locator('[data-connection="open"]').waitFor();
    // Pick the second message on the timeline: scrub until the readout names it.
    const slider = page.getByLabel('Scrub timeline');
    await slider.waitFor();
    const max = Number(await slider.getAttribute('max'));
    let found = false;
    for (let v = max; v >= 0 && !found; v--) {
      await slider.fill(String(v));
      found = ((await page.getByTestId('timeline-readout').textContent()) ?? '').includes(`message #${seqs[1]}`);
    }
    expect(found).toBe(true);
    await page.getByTestId('fork-here').click();
    const link = page.getByTestId('fork-link');
    await link.waitFor({ timeout: 30_000 });
    const forkId = ((await link.textContent()) ?? '').replace(/^Open /, '');
    expect(forkId).toMatch(/^tl-1-fork-[0-9a-f]{8}$/);
    expect(await wordsOf(forkId)).toEqual(['alpha', 'beta']);
    expect(await wordsOf('tl-1')).toEqual(['alpha', 'beta', 'gamma']);
    await link.click();
    await page.waitForURL(new RegExp(`#/s/${forkId}$`));
    await expect.poll(() => page.getByTestId('session-state').getAttribute('data-state'), { timeout: 30_000 }).toBe('idle');
  }, 120_000);
});
