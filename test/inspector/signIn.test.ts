// The sign-in page in a real browser (Debian's Chromium): a runtime started with a token serves
// the inspector only to a browser that signed in. Opening it without the token shows the form
// (not a bare 401); a wrong token says so; the right one sets the HttpOnly cookie and opens the
// sessions list, and a reload keeps it. With UPDATE_DOCS_SCREENSHOT set, the form is copied to
// docs/inspector-sign-in.png.
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echo } from '../../examples/echo.js';
import { chromiumAvailable } from './browser.js';
import { startInspectorStack, type InspectorStack } from './stack.js';

const TOKEN = 'sign-in-test-token-4711';
const haveChromium = chromiumAvailable();
let s: InspectorStack;
let page: Page;

describe.skipIf(!haveChromium)('inspector sign-in in Chromium', () => {
  beforeAll(async () => {
    s = await startInspectorStack('inspector_signin', [echo], { token: TOKEN, width: 1000, height: 640 });
    page = s.page;
  }, 120_000);
  afterAll(async () => { await s?.close(); });

  it('shows a sign-in form without the token, refuses a wrong one, and keeps the right one across a reload', async () => {
    await s.rt.createAgent('signed-in-1', 'echo');
    await page.goto(`${s.cp.url}/`);
    await page.getByRole('heading', { name: 'Agentry inspector' }).waitFor();
    const field = page.getByLabel('API token');
    await field.waitFor();
    mkdirSync('test-artifacts', { recursive: true });
    await page.screenshot({ path: join('test-artifacts', 'inspector-sign-in.png') });
    if (process.env.UPDATE_DOCS_SCREENSHOT) copyFileSync(join('test-artifacts', 'inspector-sign-in.png'), join('docs', 'inspector-sign-in.png'));

    await field.fill('not-the-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('That token is not the one this server was started with.').waitFor();

    await page.getByLabel('API token').fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('[data-connection="open"]').waitFor();
    await page.getByText('signed-in-1').waitFor();
    const failuresBefore = s.browser.failures.length;

    await page.reload();
    await page.locator('[data-connection="open"]').waitFor();
    await page.getByText('signed-in-1').waitFor();
    expect(s.browser.failures.slice(failuresBefore)).toEqual([]);
    // The token never sits in the page's URL or storage: only in the HttpOnly cookie.
    expect(page.url()).not.toContain(TOKEN);
    expect(await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie)).not.toContain(TOKEN);
  });
});
