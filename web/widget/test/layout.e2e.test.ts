/**
 * The widget's layout in small frames (the frame `embed.js` makes: 24rem × 36rem, 384 × 576 px;
 * and a 360 × 640 phone), in Chromium against the real relay. With "Who can read this chat" open,
 * the message log keeps a usable height, the composer stays in the frame, and the panel is in
 * view in its strip (a quarter of the height). With "Let the business read this chat" or "Your
 * data" open (or all three), that panel takes the log's place: the log steps aside, the strip
 * fills the frame, the form is in view without a scroll, and a "Back to the chat" button
 * (reached by Tab from the panel's summary; Escape too) closes it and gives the focus back to the
 * summary. Geometry is read once the page has laid out: no timing. Two baselines in the same
 * run: the quarter-height strip without the takeover leaves the consent form below its edge,
 * and the old layout (each open panel up to 45vh, unbounded together) leaves the log far below
 * the minimum. Screenshots `widget-layout-*.png`.
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

/** A 360 px phone. */
const PHONE = { width: 360, height: 640 };

/** Whether the element `sel` is within the strip's box (in view, no scroll needed). */
function inStrip(page: Page, sel: string): Promise<boolean> {
  return page.evaluate((q) => {
    const strip = document.getElementById("panels")?.getBoundingClientRect();
    const e = document.querySelector(q)?.getBoundingClientRect();
    return strip !== undefined && e !== undefined && e.height > 0 && e.top >= strip.top - 0.5 && e.bottom <= strip.bottom + 0.5;
  }, sel);
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

    // The policy panel open: the log keeps its room, the strip its quarter of the frame.
    const seen: Record<string, number> = {};
    {
      await only(page, ["policy"]);
      const g = await geometry(page);
      seen.policy = g.log;
      await page.screenshot({ path: join(shots, "widget-layout-policy.png") });
      expect(g.log, "the log with policy open").toBeGreaterThanOrEqual(MIN_LOG);
      expect(g.composerBottom, "the composer with policy open").toBeLessThanOrEqual(FRAME.height + 0.5);
      expect(g.strip).toBeLessThanOrEqual(FRAME.height * 0.25 + 0.5);
      expect(await inStrip(page, "#policy > summary"), "policy's summary in view").toBe(true);
    }

    // The consent or data panel open (or all three): in this small frame, and on a 360 px
    // phone, it takes the log's place, its form in view without a scroll, with a Back button.
    for (const size of [FRAME, PHONE]) {
      await page.setViewportSize(size);
      for (const open of [["consent"], ["your-data"], [...PANELS]]) {
        await only(page, open);
        const g = await geometry(page);
        const name = `${open.length === 1 ? (open[0] ?? "") : "all"}-${size.width}`;
        seen[name] = g.strip;
        await page.screenshot({ path: join(shots, `widget-layout-${name}.png`) });
        expect(g.log, `the log with ${name} open: stepped aside`).toBe(0);
        expect(g.strip, `the strip with ${name} open: the frame below the header`).toBeGreaterThan(size.height * 0.75);
        const last = open[open.length - 1] ?? "";
        expect(await page.locator(`#${last} > .back`).isVisible(), `${last}'s Back button`).toBe(true);
        expect(await inStrip(page, `#${last} > summary`), `${last}'s summary in view`).toBe(true);
        if (open.length === 1 && last === "consent") for (const c of ["#purpose", "#grant"]) expect(await inStrip(page, c), `${c} in view at ${name}`).toBe(true);
        if (open.length === 1 && last === "your-data") for (const c of ["#export", "#erase"]) expect(await inStrip(page, c), `${c} in view at ${name}`).toBe(true);
      }
      // Back, by keyboard: Tab from the panel's summary reaches it; Enter closes the panel,
      // the log is back and the focus is where it was (the summary that opened the panel).
      await only(page, []);
      await page.locator("#consent > summary").focus();
      await page.keyboard.press("Enter");
      await expect.poll(() => page.locator("#consent > .back").isVisible()).toBe(true);
      await page.keyboard.press("Tab");
      expect(await page.evaluate(() => document.activeElement?.className)).toBe("back");
      await page.keyboard.press("Enter");
      await expect.poll(() => page.locator("#consent").evaluate((d) => (d as HTMLDetailsElement).open)).toBe(false);
      expect(await page.evaluate(() => document.activeElement?.closest("details")?.id)).toBe("consent");
      expect(await page.evaluate(() => document.activeElement?.tagName)).toBe("SUMMARY");
      expect((await geometry(page)).log).toBeGreaterThanOrEqual(MIN_LOG - 40);
      // Escape does the same.
      await page.keyboard.press("Enter");
      await page.locator("#purpose").focus();
      await page.keyboard.press("Escape");
      await expect.poll(() => page.locator("#consent").evaluate((d) => (d as HTMLDetailsElement).open)).toBe(false);
      expect(await page.evaluate(() => document.activeElement?.tagName)).toBe("SUMMARY");
    }
    await page.setViewportSize(FRAME);

    // The baseline, same page, same run: the quarter-height strip without the takeover leaves
    // the consent form below the strip's edge (a scroll inside 144 px).
    await page.evaluate(() => {
      for (const d of Array.from(document.querySelectorAll<HTMLElement>("#panels > details"))) delete d.dataset.takeover;
    });
    await only(page, ["consent"]);
    const strip = (await geometry(page)).strip;
    const formInView = (await inStrip(page, "#purpose")) && (await inStrip(page, "#grant"));
    await page.screenshot({ path: join(shots, "widget-layout-consent-strip.png") });
    console.log(`strip height (px) with the consent panel open at ${FRAME.width}×${FRAME.height}: ${strip} (quarter-height strip) vs ${seen["consent-384"]} (takeover); the log, policy open: ${seen.policy}`);
    expect(formInView).toBe(false);
    await page.evaluate(() => {
      for (const id of ["consent", "your-data"]) {
        const d = document.getElementById(id);
        if (d !== null) d.dataset.takeover = "";
      }
    });

    // The baseline, same page, same run: the old layout (each open panel up to 45vh, the panels
    // unbounded together) leaves the log far below the minimum with the consent panel open.
    await page.evaluate(() => {
      const sheet = document.styleSheets[0];
      sheet?.insertRule(".panels { max-height: none; overflow: visible; flex: none; }", sheet.cssRules.length);
      sheet?.insertRule(".policy[open] { max-height: 45vh; overflow-y: auto; }", sheet.cssRules.length);
    });
    await page.evaluate(() => {
      for (const d of Array.from(document.querySelectorAll<HTMLElement>("#panels > details"))) delete d.dataset.takeover;
    });
    await only(page, ["policy", "consent"]);
    const old = await geometry(page);
    await page.screenshot({ path: join(shots, "widget-layout-old.png") });
    console.log(`the old layout, policy and consent open: log ${old.log} px`);
    expect(old.log).toBeLessThan(MIN_LOG);
    expect(s.problems).toEqual([]);
    await page.close();
  });
});
