/**
 * The org's stored-bytes warning in the agent console, in Chromium against the real relay with a
 * small per-org quota (§13.12): a CLI customer writes, the agent answers from the console; the
 * agent's message that brings the org's stored bytes to 80% shows the warning (`#quota`, naming
 * the org's conversations, how much of how much, what to do); the messages before it show none.
 * In an 800 px window the warning is one line (how full, what follows), its words behind a
 * disclosure (in full it took four lines, for good), in a live region. Screenshot `console-quota.png`.
 */
import { join } from "node:path";
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { SHOTS, WIDE, chromiumSuite, cliCustomer, unlockConsole, watchPage } from "../../client/test/chromium.js";
import { cli } from "../../client/test/relay.js";

/** A message's text: its ciphertext is 1,000 bytes (the text and the 16-byte AEAD tag). */
const body = (n: number): string => `${String(n).padStart(3, "0")}${"x".repeat(981)}`;
/** The org's quota: ten and a half messages. */
const QUOTA = 10_500;

describe("the org's stored-bytes warning in the agent console (Chromium)", () => {
  const s = chromiumSuite("console-quota", { viewport: WIDE }, ["--limit", `stored_bytes_per_org=${QUOTA}`]);

  const texts = (page: Page): Promise<string[]> => page.locator("#log li.line .text").allTextContents();

  it("shows the warning after the agent's message that brings the org's quota to 80%", async () => {
    const page = await s.browser.newPage();
    watchPage(page, s.problems, false);
    await unlockConsole(page, s.relay.origin, s.org.agentHome);
    const { home: dave, id } = await cliCustomer(s.root, s.relay.url, s.org, "dave");
    await cli(dave, s.relay.url, ["send", "--conversation", id, body(0)]);
    const entry = page.locator(`#list button[data-conversation="${id}"]`);
    await expect.poll(() => entry.count(), { timeout: 30_000 }).toBe(1);
    await entry.click();
    await expect.poll(() => texts(page)).toEqual([body(0)]);
    // With the customer's message, seven of the agent's: 76%, no warning.
    for (let n = 1; n < 9; n++) {
      await page.locator("#text").fill(body(n));
      await page.locator("#text").press("Enter");
      await expect.poll(async () => (await texts(page)).length, { timeout: 15_000 }).toBe(n + 1);
      if (n < 8) expect(await page.locator("#quota").isVisible(), `message ${n}`).toBe(false);
    }
    // The ninth of the org: the warning, naming the org's quota.
    await expect.poll(() => page.locator("#quota").isVisible(), { timeout: 15_000 }).toBe(true);
    expect(await page.locator("#quota p").getAttribute("data-scope")).toBe("org");
    const warning = (await page.locator("#quota p").textContent()) ?? "";
    expect(warning).toMatch(new RegExp(`The messages and files of ${s.org.org}'s conversations now take 8\\.\\d KiB of the 10\\.3 KiB this relay keeps for ${s.org.org} \\(8\\d%\\)`));
    expect(warning).toContain("(quota_exceeded)");
    // At 800 px: one line, said by the live region; the words behind it, opened on demand.
    await page.setViewportSize({ width: 800, height: 600 });
    expect(await page.locator("#quota").getAttribute("role")).toBe("status");
    const summary = page.locator("#quota summary");
    expect(await summary.textContent()).toMatch(new RegExp(`^8\\d% of the storage quota used: when full, new messages are refused — ${s.org.org}'s quota\\.$`));
    const lines = await page.locator("#quota").evaluate((q) => {
      const line = parseFloat(getComputedStyle(q).lineHeight);
      const s = q.querySelector("summary")?.getBoundingClientRect().height ?? 0;
      const pad = parseFloat(getComputedStyle(q).paddingTop) + parseFloat(getComputedStyle(q).paddingBottom);
      return { summary: s / line, box: (q.getBoundingClientRect().height - pad) / line };
    });
    expect(lines.summary).toBeLessThan(1.5);
    expect(lines.box).toBeLessThan(1.5);
    expect(await page.locator("#quota p").isVisible()).toBe(false);
    await summary.click();
    await expect.poll(() => page.locator("#quota p").isVisible()).toBe(true);
    expect(s.problems).toEqual([]);
    await page.screenshot({ path: join(SHOTS, "console-quota.png") });
    await page.close();
  });
});
