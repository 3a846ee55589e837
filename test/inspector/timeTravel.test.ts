// Issue 18: time travel on the session page, in a real browser (Debian's Chromium through
// playwright-core) against a running runtime (real nats-server and Postgres). A session goes
// idle → active → sleeping → (woken) active → waiting on a waitpoint → idle with messages and
// replies. Scrubbing the timeline to each past step must show that step in EVERY panel (state
// pill, user state and context, mailbox, wake-up, waitpoint, history), labelled "as of step N",
// with a banner back to live, the context diff and event object, the controls disabled, and the
// slider's thumb over the strip's cursor. Then back to live, the sequence view (messages in →
// handler calls → outputs out), the stop warning's wording, and no page errors throughout.
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumAvailable } from './browser.js';
import { startInspectorStack, type InspectorStack } from './stack.js';
import { driveTraveler, traveler, type Drive } from './timeTravelAgent.js';

const haveChromium = chromiumAvailable();
let stack: InspectorStack;
let page: Page;
let drive: Drive;

const text = async (loc: Locator): Promise<string> => (await loc.first().textContent({ timeout: 30_000 })) ?? '';
const panel = (area: string): Locator => page.locator(`[data-panel="${area}"]`);

/** Moves the slider to the first entry whose readout matches, waits for the past step to load, returns its step number. */
async function scrubTo(match: RegExp, after = -1): Promise<number> {
  const slider = page.getByLabel('Scrub timeline');
  const max = Number(await slider.getAttribute('max'));
  for (let v = after + 1; v < max; v++) {
    await slider.fill(String(v));
    if (match.test(await text(page.getByTestId('timeline-readout')))) {
      await page.getByTestId('travel-banner').waitFor();
      // Loaded: the state panel shows the user state (a placeholder says "Loading" until then).
      await page.getByTestId('user-state').waitFor({ timeout: 30_000 });
      return v;
    }
  }
  throw new Error(`no timeline entry matches ${String(match)}`);
}

/** Every rewound panel says "as of step N"; the controls are disabled; the thumb is over the cursor. */
async function assertRewound(v: number): Promise<void> {
  for (const area of ['chart', 'wake', 'mailbox', 'state', 'history', 'dead']) {
    expect(await text(panel(area).getByTestId('as-of')), area).toContain(`as of step ${v + 1}`);
  }
  expect(await text(page.getByTestId('travel-banner'))).toContain(`as of step ${v + 1} of`);
  expect(await page.getByTestId('session-state').getAttribute('data-past')).toBe('true');
  expect(await page.getByTestId('controls').getAttribute('disabled')).not.toBeNull();
  expect(await page.getByRole('button', { name: 'Send message' }).isDisabled()).toBe(true);
  const input = await page.getByLabel('Scrub timeline').boundingBox();
  const cursor = await page.getByTestId('timeline-cursor').boundingBox();
  const max = Number(await page.getByLabel('Scrub timeline').getAttribute('max'));
  const thumb = 16;
  const thumbCentre = input!.x + thumb / 2 + ((input!.width - thumb) * v) / max;
  expect(Math.abs(cursor!.x + cursor!.width / 2 - thumbCentre), 'the cursor line is under the thumb').toBeLessThan(1.5);
}

describe.skipIf(!haveChromium)('time travel in the inspector', () => {
  beforeAll(async () => {
    stack = await startInspectorStack('timetravel', [traveler], { width: 1280, height: 900 });
    page = stack.browser.page;
    drive = await driveTraveler(stack.rt, stack.nc, 'tt-ui');
  }, 120_000);

  afterAll(async () => {
    await stack?.close();
  });

  it('scrubs to each past step and every panel shows that step, then back to live', async () => {
    const { a, nap, b } = drive.seqs;
    await page.goto(`${stack.cp.url}#/s/tt-ui`);
    await page.locator('[data-connection="open"]').waitFor();
    await expect.poll(() => page.getByTestId('session-state').getAttribute('data-state'), { timeout: 30_000 }).toBe('idle');
    // Live: the handler calls are numbered 1, 2, 3, … in order, never by their (skipping) run ids.
    const calls = (await panel('history').locator('.call__head strong').allTextContents()).map(Number);
    expect(calls.length).toBeGreaterThanOrEqual(4);
    expect([...calls].reverse()).toEqual(calls.map((_, i) => i + 1));

    // Created: idle, nothing in the user state, no wake condition, no history.
    let v = await scrubTo(/created → idle/);
    await assertRewound(v);
    expect(await page.getByTestId('session-state').getAttribute('data-state')).toBe('idle');
    expect(await text(page.getByTestId('user-state'))).toContain('notes: []');
    expect(await text(panel('wake'))).toContain('Not sleeping or waiting');
    expect(await text(panel('history'))).toContain('No messages received by then');
    expect(await text(page.getByTestId('step-event'))).toContain('"create"');

    // The first run: active, message a running, lastSeq not yet moved, the MESSAGE event with its body.
    v = await scrubTo(/idle → active/, v);
    await assertRewound(v);
    expect(await page.getByTestId('session-state').getAttribute('data-state')).toBe('active');
    expect(await text(page.getByTestId('mailbox-running'))).toBe('1');
    expect(await text(page.getByTestId('mailbox-entries'))).toContain(`Running #${a}`);
    expect(await text(page.getByTestId('session-meta'))).toContain('first turn running, nothing applied yet');
    const event = await text(page.getByTestId('step-event'));
    expect(event).toContain('"MESSAGE"');
    expect(event).toContain('"note"');
    expect(await text(page.getByTestId('context-diff'))).toContain('stateValue');

    // Asleep: the nap's wake condition, notes up to the nap, history up to the nap (not b, sent later).
    v = await scrubTo(/→ sleeping/, v);
    await assertRewound(v);
    expect(await page.getByTestId('session-state').getAttribute('data-state')).toBe('sleeping');
    const sleepingContext = await text(page.getByTestId('context'));
    expect(sleepingContext).toContain('stateValue: "sleeping"');
    expect(sleepingContext).toContain(`lastSeq: ${nap}`);
    const wake = await text(panel('wake').getByTestId('wake-conditions'));
    expect(wake).toContain('bell');
    expect(wake).toContain('high');
    const sleepingState = await text(page.getByTestId('user-state'));
    expect(sleepingState).toContain('"nap"');
    expect(sleepingState).not.toContain('"woke"');
    const sleepingHistory = await text(panel('history'));
    expect(sleepingHistory).toContain(`#${nap}`);
    expect(sleepingHistory).not.toContain(`#${b}`);
    expect(await text(page.getByTestId('context-diff'))).toContain('userState.notes.1');
    expect(await page.getByTestId('past-waitpoint').count()).toBe(0);

    // Woken: the WAKE event; b (deferred while asleep) is in the mailbox.
    v = await scrubTo(/sleeping → active/, v);
    await assertRewound(v);
    expect(await text(page.getByTestId('step-event'))).toContain('"WAKE"');
    expect(await text(panel('mailbox'))).toContain(String(b));
    expect(await text(panel('wake'))).toContain('Not sleeping or waiting');

    // Waiting on the waitpoint: its id and tags, the wait, notes up to the question.
    v = await scrubTo(/→ waiting/, v);
    await assertRewound(v);
    expect(await page.getByTestId('session-state').getAttribute('data-state')).toBe('waiting');
    expect(await text(page.getByTestId('context'))).toContain('stateValue: "waiting"');
    expect(await text(page.getByTestId('past-waitpoint'))).toContain(drive.waitpointId);
    expect(await text(page.getByTestId('past-waitpoint'))).toContain('travel');
    expect(await text(panel('wake').getByTestId('wake-conditions'))).toContain('Waiting for');
    const waitingState = await text(page.getByTestId('user-state'));
    expect(waitingState).toContain('"ask"');
    expect(waitingState).not.toContain('answer:');
    // The picture in docs/ (UPDATE_DOCS_SCREENSHOT=1 refreshes it, as inspector.test.ts does docs/inspector.png).
    mkdirSync('test-artifacts', { recursive: true });
    const shot = join('test-artifacts', 'inspector-time-travel.png');
    await page.screenshot({ path: shot, fullPage: true });
    if (process.env.UPDATE_DOCS_SCREENSHOT) copyFileSync(shot, join('docs', 'inspector-time-travel.png'));

    // Back to live: no banner, the live state everywhere, controls usable again.
    await page.getByTestId('back-to-live').click();
    await page.getByTestId('travel-banner').waitFor({ state: 'detached' });
    expect(await page.getByTestId('session-state').getAttribute('data-past')).toBeNull();
    expect(await page.getByTestId('session-state').getAttribute('data-state')).toBe('idle');
    expect(await text(page.getByTestId('user-state'))).toContain('answer:');
    expect(await page.getByTestId('controls').getAttribute('disabled')).toBeNull();
    expect(await panel('state').getByTestId('as-of').count()).toBe(0);

    // The sequence view: in → call → out for the first note, in order.
    await page.getByTestId('tab-sequence').click();
    const seq = page.getByTestId('sequence');
    await expect.poll(async () => text(seq), { timeout: 30_000 }).toContain('noted a');
    const kinds = await seq.locator('li').evaluateAll((els) => els.map((e) => `${e.getAttribute('data-kind')}:${e.textContent ?? ''}`));
    const inA = kinds.findIndex((k) => k.startsWith('in:') && k.includes(`#${a}`));
    const call1 = kinds.findIndex((k) => k.startsWith('call:') && k.includes('handler call 1'));
    const outA = kinds.findIndex((k) => k.startsWith('out:') && k.includes('noted a'));
    expect(inA).toBeGreaterThanOrEqual(0);
    expect(call1).toBeGreaterThan(inA);
    expect(outA).toBeGreaterThan(call1);
    expect(kinds.some((k) => k.startsWith('state:') && k.includes('sleeping'))).toBe(true);
    expect(kinds.some((k) => k.startsWith('out:') && k.includes('thanks'))).toBe(true);

    // The stop warning says what happens to later messages: refused through the API.
    await page.getByRole('button', { name: 'Stop', exact: true }).click();
    expect(await text(page.locator('.hint', { hasText: 'Stopping is final' }))).toContain('refused (SESSION_STOPPED)');

    expect(stack.browser.failures).toEqual([]);
  }, 180_000);
});
