/**
 * The stored-bytes quota warning for plain messages in the widget, in Chromium against the real
 * relay (§13.12): a message that brings the customer's stored bytes to 80% of the quota shows
 * the same warning as an upload's (`#quota`: how much is used, of how much, what to do); the
 * messages before it show none; the message past the quota is refused in plain words with the
 * typed `quota_exceeded`; after a reload (a new sign-in) the relay's `quota_warning` push shows
 * it again. Screenshot `widget-message-quota.png`.
 */
import { join } from "node:path";
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { SHOTS as shots, watchPage, chromiumSuite } from "../../client/test/chromium.js";

/** A message's text: its ciphertext is 1,000 bytes (the text and the 16-byte AEAD tag). */
const body = (n: number): string => `${String(n).padStart(3, "0")}${"x".repeat(981)}`;
/** Ten and a half messages. */
const QUOTA = 10_500;

describe("the stored-bytes quota warning for messages in the widget (Chromium)", () => {
  const s = chromiumSuite("widget-quota", {}, ["--limit", `stored_bytes_per_account=${QUOTA}`]);

  const lines = (page: Page): Promise<string[]> => page.locator("#log li.line .text").allTextContents();
  const send = async (page: Page, n: number): Promise<void> => {
    await page.locator("#text").fill(body(n));
    await page.locator("#text").press("Enter");
    await expect.poll(async () => (await lines(page)).length, { timeout: 15_000 }).toBe(n + 1);
  };

  it("warns from 80% of the quota with a plain message and refuses past it", async () => {
    const page = await s.browser.newPage();
    watchPage(page, s.problems);
    await page.goto(`${s.relay.origin}/?org=${s.org.org}&fp=${encodeURIComponent(s.org.fingerprint)}`);
    await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 15_000 }).toBe("online");
    // Eight messages (76%): no warning.
    for (let n = 0; n < 8; n++) await send(page, n);
    expect(await page.locator("#quota").isVisible()).toBe(false);
    // The ninth (85%): the warning, in the words of an upload's.
    await send(page, 8);
    await expect.poll(() => page.locator("#quota").isVisible(), { timeout: 15_000 }).toBe(true);
    const warning = (await page.locator("#quota").textContent()) ?? "";
    expect(warning).toContain("Messages and files you sent through this relay now take 8.8 KiB of the 10.3 KiB it keeps for you (85%)");
    expect(warning).toContain("erase a conversation you no longer need");
    await send(page, 9);
    // The eleventh would pass the quota: refused, said plainly.
    await page.locator("#text").fill(body(10));
    await page.locator("#text").press("Enter");
    await expect.poll(() => page.locator("#alert").textContent(), { timeout: 15_000 }).toContain("(quota_exceeded)");
    expect(await page.locator("#alert").textContent()).toContain("For messages and files: erase a conversation you no longer need");
    expect((await lines(page)).length).toBe(10);
    await page.screenshot({ path: join(shots, "widget-message-quota.png") });
    // A reload signs in again: the relay pushes the account's warning after `welcome` (§13.12),
    // shown in the same words, once.
    await page.reload();
    await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 15_000 }).toBe("online");
    await expect.poll(() => page.locator("#quota").isVisible(), { timeout: 15_000 }).toBe(true);
    const again = (await page.locator("#quota").textContent()) ?? "";
    expect(again).toContain("Messages and files you sent through this relay now take 9.8 KiB of the 10.3 KiB it keeps for you (95%)");
    expect(again.split("now take")).toHaveLength(2);
    await page.close();
  });
});
