/**
 * Test support for "no card before the first message" (issue 22) in the widget's Chromium
 * suites (`widget.e2e`, `recovery.e2e`, `older-relay.e2e`): a visitor who only reads leaves no
 * account on the relay — not just at the instant the policy is shown, but over the whole time
 * the visitor is idle, so an eager registration landing later (a timer, a step of the start
 * that ends after the policy is shown) is caught too.
 */
import type { Page } from "playwright-core";
import { expect } from "vitest";
import { visitorOnRelay, widgetVisitor, type Visitor } from "../../client/test/chromium.js";

/**
 * How long an idle visitor is watched once the widget is done starting: the one wait on time
 * alone, a quiet period in a test that asserts that something does *not* happen
 * (CONTRIBUTING.md, "How to wait"). Long enough for what a start still has in flight once its
 * page is drawn; a registration put off longer than this by the page itself is not seen.
 */
export const IDLE_MS = 3_000;

/** How often the relay's directory is asked during the quiet period. */
const LOOK_EVERY_MS = 250;

/**
 * Waits until the widget in `page` is done starting for a visitor who has not begun — online,
 * the policy (or, on a relay that shows it to registered accounts only, the prompt to click in
 * the message box) drawn, and the page redrawn after it (the message box enabled: the widget's
 * `refresh` after the start's last event) — then asserts that the relay at `url` holds no card
 * of the visitor's at that point and at every look over `IDLE_MS`, the last at its end, right
 * before the test goes on (types the first message). Returns the visitor.
 */
export async function staysUnregistered(page: Page, url: string): Promise<Visitor> {
  await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 20_000 }).toBe("online");
  await expect.poll(() => page.locator("#summary").textContent(), { timeout: 20_000 }).toMatch(/end-to-end encrypted|Click in the message box/);
  await expect.poll(() => page.locator("#text").isEnabled()).toBe(true);
  const visitor = await widgetVisitor(page);
  expect(await visitorOnRelay(url, visitor), "a card of the visitor's once the widget is done starting").toBe(false);
  // The last look is at the period's end, right before the caller goes on.
  const until = Date.now() + IDLE_MS;
  do {
    await new Promise((r) => setTimeout(r, LOOK_EVERY_MS));
    expect(await visitorOnRelay(url, visitor), "a card of the visitor's while the visitor is idle").toBe(false);
  } while (Date.now() < until);
  return visitor;
}
