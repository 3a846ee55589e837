// Browser plumbing for the inspector tests: Debian's Chromium driven by playwright-core (which
// cannot download browsers here), headless with background networking off and a fresh profile,
// and a recorder of everything that counts as a page failure: console errors, uncaught
// exceptions and failed requests.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { assertInspectorFresh } from '../builtFresh.js';

/** The Chromium binary: CHROMIUM_PATH, else Debian's. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** True when the browser tests can run; CI must have Chromium (ops/ensure-chromium.sh installs it). */
export function chromiumAvailable(): boolean {
  if (existsSync(CHROMIUM_PATH)) return true;
  if (process.env.CI) throw new Error(`${CHROMIUM_PATH} is missing: run ops/ensure-chromium.sh (CI must run the browser tests)`);
  console.warn(`[inspector] ${CHROMIUM_PATH} not found: browser tests skipped (install Debian's chromium or set CHROMIUM_PATH)`);
  return false;
}

/** Fails early and clearly when inspector/dist is missing or older than the inspector or client sources. */
export function assertInspectorBuilt(): void {
  assertInspectorFresh();
}

/** A launched browser with one page and the failures seen on it. */
export interface BrowserSession {
  readonly context: BrowserContext;
  readonly page: Page;
  /** Console errors, page errors and failed requests, in order, as readable lines. */
  readonly failures: string[];
  close(): Promise<void>;
}

/** Launches Chromium with a fresh profile and a page of `width` × `height`. */
export async function launch(width = 1280, height = 800): Promise<BrowserSession> {
  const profile = mkdtempSync(join(tmpdir(), 'agentry-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    viewport: { width, height },
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-quic', '--disable-dev-shm-usage',
    ],
  });
  const page = context.pages()[0] ?? await context.newPage();
  const failures: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') failures.push(`console error: ${m.text()} (${m.location().url})`); });
  page.on('pageerror', (e) => { failures.push(`page error: ${e.message}`); });
  page.on('requestfailed', (r) => { failures.push(`request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText ?? ''}`); });
  return {
    context, page, failures,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
