/**
 * The org's stored-bytes warning with a long org name, in the agent console (Chromium against the
 * real relay serving web/dist; issue 23): at 600 px the warning's line stays one line — its
 * summary cut with an ellipsis (it wrapped), the whole line in its title, the warning in full
 * behind the disclosure — and at 1400 px it is one line too. The push (§13.12) is the real
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

describe("the quota warning of an org with a long name in the agent console (Chromium)", () => {
  const s = chromiumSuite("console-quota-wrap", { viewport: { width: 600, height: 600 } });

  it("keeps the warning one line at 600 px, the whole of it in the title and the disclosure", async () => {
    const page = await s.browser.newPage();
    watchPage(page, s.problems, false);
    const middle = await relayInTheMiddle(page, {});
    await unlockConsole(page, s.relay.origin, s.org.agentHome);
    await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 30_000 }).toBe("online");
    middle.latest().toPage({ push: { quota_warning: { org: LONG_ORG, quota: { scope: "org", used: 8_900, most: 10_000 } } } });
    await expect.poll(() => page.locator("#quota").isVisible(), { timeout: 15_000 }).toBe(true);
    const summary = page.locator("#quota summary");
    const whole = `89% of ${LONG_ORG}'s storage quota used: when full, new messages are refused.`;
    expect(await summary.textContent()).toBe(whole);

    // At 600 px: one line, cut (else this would test nothing), the whole line in its title.
    const narrow = await quotaLines(page);
    expect(narrow.cut).toBe(true);
    expect(narrow.summary).toBeLessThan(1.5);
    expect(narrow.box).toBeLessThan(1.5);
    expect(await summary.getAttribute("title")).toBe(whole);
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
    await page.screenshot({ path: join(SHOTS, "console-quota-long-1400.png") });
    expect(s.problems).toEqual([]);
    await page.close();
  });
});
