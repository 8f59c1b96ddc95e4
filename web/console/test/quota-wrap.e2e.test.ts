/**
 * The org's stored-bytes warning with a long org name, in the agent console (Chromium against the
 * real relay serving web/dist; issue 23): at 600 px the warning's line stays one line — its
 * summary cut with an ellipsis (it wrapped), the whole line in its title, the warning in full
 * behind the disclosure — and what the agent must see is not what is cut: how full the quota is
 * and that new messages will be refused are in sight, the org's name (last) cut instead. At
 * 1400 px it is one line too. The push (§13.12) is the real
 * relay's shape, sent by the test in the middle: the suite's org is named `acme`, and a relay may
 * name an org as long as it likes. Screenshots `console-quota-long-600.png` and `-1400.png`.
 */
import { join } from "node:path";
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { SHOTS, chromiumSuite, relayInTheMiddle, unlockConsole, watchPage } from "../../client/test/chromium.js";

/** An org's name long enough that its warning's line wraps at 600 px. */
const LONG_ORG = "northwestern-regional-customer-support-and-returns-department";

/** The quota warning's summary and box, in lines of its text, and whether the summary is cut. */
const quotaLines = (page: Page): Promise<{ summary: number; box: number; cut: boolean }> =>
  page.locator("#quota").evaluate((q) => {
    const line = parseFloat(getComputedStyle(q).lineHeight);
    const summary = q.querySelector("summary");
    const pad = parseFloat(getComputedStyle(q).paddingTop) + parseFloat(getComputedStyle(q).paddingBottom);
    return {
      summary: (summary?.getBoundingClientRect().height ?? 0) / line,
      box: (q.getBoundingClientRect().height - pad) / line,
      cut: summary !== null && summary.scrollWidth > summary.clientWidth,
    };
  });

/**
 * Whether `words` of the quota's summary are wholly in sight: their box (a range over the
 * summary's text) inside the summary's, short of the ellipsis' room (what is past the summary's
 * edge is cut, and the ellipsis covers the last characters before it).
 */
const inSight = (page: Page, words: string): Promise<boolean> =>
  page.locator("#quota summary").evaluate((summary, w) => {
    const node = summary.firstChild;
    const at = node?.textContent?.indexOf(w) ?? -1;
    if (node === null || at < 0) return false;
    const range = document.createRange();
    range.setStart(node, at);
    range.setEnd(node, at + w.length);
    const r = range.getBoundingClientRect();
    const box = summary.getBoundingClientRect();
    const ellipsis = parseFloat(getComputedStyle(summary).fontSize) * 1.5;
    return r.width > 0 && r.left >= box.left && r.right <= box.right - ellipsis;
  }, words);

describe("the quota warning of an org with a long name in the agent console (Chromium)", () => {
  const s = chromiumSuite("console-quota-wrap", { viewport: { width: 600, height: 600 } });

  it("keeps the warning one line at 600 px, how full and what follows in sight, the whole of it in the title and the disclosure", async () => {
    const page = await s.browser.newPage();
    watchPage(page, s.problems, false);
    const middle = await relayInTheMiddle(page, {});
    await unlockConsole(page, s.relay.origin, s.org.agentHome);
    await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 30_000 }).toBe("online");
    middle.latest().toPage({ push: { quota_warning: { org: LONG_ORG, quota: { scope: "org", used: 8_900, most: 10_000 } } } });
    await expect.poll(() => page.locator("#quota").isVisible(), { timeout: 15_000 }).toBe(true);
    const summary = page.locator("#quota summary");
    const whole = `89% of the storage quota used: when full, new messages are refused — ${LONG_ORG}'s quota.`;
    expect(await summary.textContent()).toBe(whole);

    // At 600 px: one line, cut (else this would test nothing), the whole line in its title.
    const narrow = await quotaLines(page);
    expect(narrow.cut).toBe(true);
    expect(narrow.summary).toBeLessThan(1.5);
    expect(narrow.box).toBeLessThan(1.5);
    expect(await summary.getAttribute("title")).toBe(whole);
    // Cut in the org's name, not in what matters: how full, and that new messages are refused.
    expect(await inSight(page, "89% of the storage quota used")).toBe(true);
    expect(await inSight(page, "when full, new messages are refused")).toBe(true);
    expect(await inSight(page, LONG_ORG)).toBe(false);
    await page.screenshot({ path: join(SHOTS, "console-quota-long-600.png") });
    // The warning in full behind the disclosure, the org's name whole in it.
    await summary.click();
    await expect.poll(() => page.locator("#quota p").isVisible()).toBe(true);
    expect(await page.locator("#quota p").textContent()).toContain(`this relay keeps for ${LONG_ORG} (89%)`);
    await summary.click();
    await expect.poll(() => page.locator("#quota p").isVisible()).toBe(false);

    // At 1400 px: one line, not cut.
    await page.setViewportSize({ width: 1400, height: 600 });
    await expect.poll(async () => (await quotaLines(page)).cut).toBe(false);
    expect((await quotaLines(page)).box).toBeLessThan(1.5);
    expect(await inSight(page, LONG_ORG)).toBe(true);
    await page.screenshot({ path: join(SHOTS, "console-quota-long-1400.png") });
    expect(s.problems).toEqual([]);
    await page.close();
  });
});
