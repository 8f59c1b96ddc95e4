/**
 * Test support for "no card before the first message" (issue 22) in the widget's Chromium
 * suites (`widget.e2e`, `recovery.e2e`, `older-relay.e2e`): a visitor who only reads leaves no
 * account on the relay — not just at the instant the policy is shown, but over the whole time
 * the visitor is idle, however long: an eager registration put off by the page (a timer of any
 * length, a step of the start that ends after the policy is shown) is caught too.
 *
 * The page runs under Playwright's clock (`idleClock`, installed before the page is opened, so
 * every timer the page ever sets is the clock's). The clock flows in real time while the widget
 * starts — the relay connection, its handshake and request timeouts and its reconnect back-off
 * run as they do without it — and `staysUnregistered` then runs `IDLE_PAGE_MS` of page time at
 * once: every timeout and interval the page set or sets meanwhile fires, in order, as often as
 * it would in that time.
 */
import type { Page } from "playwright-core";
import { expect } from "vitest";
import { visitorOnRelay, widgetVisitor, type Visitor } from "../../client/test/chromium.js";

/**
 * How much page time an idle visitor is watched for: two hours, run on the page's clock (every
 * timer of the page that falls in it fires), not waited for.
 */
export const IDLE_PAGE_MS = 2 * 60 * 60 * 1000;

/**
 * How long the relay's directory is still watched, in real time, once the page's idle time has
 * run: what the last timers started (a request on its way to the relay) lands within it. The one
 * wait on time alone, a quiet period in a test that asserts that something does *not* happen
 * (CONTRIBUTING.md, "How to wait").
 */
export const QUIET_MS = 3_000;

/** How often the relay's directory is asked during the quiet period. */
const LOOK_EVERY_MS = 250;

/**
 * Puts `page` (and the other pages of its browser context) under Playwright's clock, flowing in
 * real time until `staysUnregistered` runs it forward. Call it before the page is opened: a
 * timer set before would be the browser's own, and not run by the clock.
 */
export async function idleClock(page: Page): Promise<void> {
  await page.clock.install();
}

/**
 * Waits until the widget in `page` is done starting for a visitor who has not begun — online,
 * the policy (or, on a relay that shows it to registered accounts only, the prompt to click in
 * the message box) drawn, and the page redrawn after it (the message box enabled: the widget's
 * `refresh` after the start's last event) — then asserts that the relay at `url` holds no card
 * of the visitor's at that point, runs `IDLE_PAGE_MS` of the page's time (`idleClock` must have
 * been installed before the page was opened), and asserts that the relay holds none still, and
 * at every look over `QUIET_MS` of real time after, the last right before the test goes on
 * (types the first message). The widget is still online then, its clock set back to the relay's
 * (the relay's clock did not move: a page two hours ahead would date what it signs in the
 * relay's future). Returns the visitor.
 */
export async function staysUnregistered(page: Page, url: string): Promise<Visitor> {
  await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 20_000 }).toBe("online");
  await expect.poll(() => page.locator("#summary").textContent(), { timeout: 20_000 }).toMatch(/end-to-end encrypted|Click in the message box/);
  await expect.poll(() => page.locator("#text").isEnabled()).toBe(true);
  // The page's timers are the clock's only if it was installed before the page was opened; run
  // forward now, it would install itself and run none of the timers set already.
  expect(await page.evaluate(() => (Date as unknown as { isFake?: boolean }).isFake === true), "the page clock installed before the page was opened (`idleClock`)").toBe(true);
  const visitor = await widgetVisitor(page);
  expect(await visitorOnRelay(url, visitor), "a card of the visitor's once the widget is done starting").toBe(false);

  await page.clock.runFor(IDLE_PAGE_MS);
  await page.clock.setSystemTime(Date.now());
  expect(await visitorOnRelay(url, visitor), "a card of the visitor's after two idle hours of page time").toBe(false);
  expect(await page.locator("#conn").getAttribute("data-state"), "the widget online after two idle hours").toBe("online");
  expect(await page.locator("#text").isEnabled()).toBe(true);

  // The last look is at the period's end, right before the caller goes on.
  const until = Date.now() + QUIET_MS;
  do {
    await new Promise((r) => setTimeout(r, LOOK_EVERY_MS));
    expect(await visitorOnRelay(url, visitor), "a card of the visitor's while the visitor is idle").toBe(false);
  } while (Date.now() < until);
  return visitor;
}
