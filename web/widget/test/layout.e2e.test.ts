/**
 * The widget's layout at its default size (the frame `embed.js` makes: 24rem × 36rem, 384 × 576
 * px), in Chromium against the real relay: with each side panel open ("Who can read this chat",
 * "Let the business read this chat", "Your data"), and with all three, the message log keeps a
 * usable height (geometry, read once the page has laid out: no timing), the composer stays in
 * the frame, and the panel opened is in view in its strip. The same page with the old layout
 * (each open panel up to 45vh, unbounded together) is measured in the same run as the baseline,
 * and leaves the log far below the minimum. Screenshots `widget-layout-*.png`.
 */
import { join } from "node:path";
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { SHOTS as shots, chromiumSuite, watchPage } from "../../client/test/chromium.js";

/** The embed's default frame (`src/embed.ts`: 24rem × 36rem). */
const FRAME = { width: 384, height: 576 };
/** The least height of the message log with a panel open: a few lines of the conversation. */
const MIN_LOG = 180;
const PANELS = ["policy", "consent", "your-data"] as const;

/** Opens exactly the panels `open` (by their summaries, as the customer does). */
async function only(page: Page, open: readonly string[]): Promise<void> {
  await page.evaluate(() => {
    for (const d of Array.from(document.querySelectorAll<HTMLDetailsElement>("#panels > details"))) d.open = false;
  });
  for (const id of open) await page.locator(`#${id} > summary`).click();
}

/** The heights that matter, in CSS pixels. */
async function geometry(page: Page): Promise<{ log: number; composerBottom: number; strip: number }> {
  return page.evaluate(() => {
    const h = (id: string): DOMRect => (document.getElementById(id) ?? document.body).getBoundingClientRect();
    return { log: h("log").height, composerBottom: h("composer").bottom, strip: h("panels").height };
  });
}

describe("the widget's side panels leave the conversation its room (Chromium)", () => {
  const s = chromiumSuite("widget-layout", { viewport: FRAME });

  it("keeps the message log above its minimum height with each panel open", async () => {
    const page = await s.browser.newPage();
    watchPage(page, s.problems, false);
    await page.goto(`${s.relay.origin}/?org=${s.org.org}&fp=${encodeURIComponent(s.org.fingerprint)}`);
    await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 20_000 }).toBe("online");
    await page.locator("#text").fill("hello, a question about my order");
    await page.locator("#text").press("Enter");
    await expect.poll(() => page.locator("#log li.line .text").allTextContents()).toEqual(["hello, a question about my order"]);
    // Every panel is offered once the conversation exists.
    for (const id of PANELS) await expect.poll(() => page.locator(`#${id}`).isVisible()).toBe(true);

    const seen: Record<string, number> = {};
    for (const open of [...PANELS.map((p) => [p]), [...PANELS]]) {
      await only(page, open);
      const g = await geometry(page);
      const name = open.length === 1 ? (open[0] ?? "") : "all";
      seen[name] = g.log;
      await page.screenshot({ path: join(shots, `widget-layout-${name}.png`) });
      expect(g.log, `the log with ${name} open`).toBeGreaterThanOrEqual(MIN_LOG);
      expect(g.composerBottom, `the composer with ${name} open`).toBeLessThanOrEqual(FRAME.height + 0.5);
      expect(g.strip).toBeLessThanOrEqual(FRAME.height * 0.25 + 0.5);
      // The panel opened last is in view in its strip: its summary is within the strip's box.
      const last = open[open.length - 1] ?? "";
      const inView = await page.evaluate((id) => {
        const strip = document.getElementById("panels")?.getBoundingClientRect();
        const summary = document.querySelector(`#${id} > summary`)?.getBoundingClientRect();
        return strip !== undefined && summary !== undefined && summary.top >= strip.top - 0.5 && summary.bottom <= strip.bottom + 0.5;
      }, last);
      expect(inView, `${last}'s summary in view`).toBe(true);
    }

    // The baseline, same page, same run: the old layout (each open panel up to 45vh, the panels
    // unbounded together) leaves the log far below the minimum with the consent panel open.
    await page.evaluate(() => {
      const sheet = document.styleSheets[0];
      sheet?.insertRule(".panels { max-height: none; overflow: visible; flex: none; }", sheet.cssRules.length);
      sheet?.insertRule(".policy[open] { max-height: 45vh; overflow-y: auto; }", sheet.cssRules.length);
    });
    await only(page, ["policy", "consent"]);
    const old = await geometry(page);
    await page.screenshot({ path: join(shots, "widget-layout-old.png") });
    console.log(`log height (px) at ${FRAME.width}×${FRAME.height}: ${JSON.stringify(seen)}; the old layout, policy and consent open: ${old.log}`);
    expect(old.log).toBeLessThan(MIN_LOG);
    expect(s.problems).toEqual([]);
    await page.close();
  });
});
