/**
 * The relay's `quota_warning` push (§13.12) in the agent console, in Chromium against the real
 * relay with a small per-org quota: an agent who has sent nothing sees the org's warning in
 * `#quota` (the words of the `stored` answer's warning) when a CLI customer's messages bring the
 * org's stored bytes to 80%, and after a reload (a new sign-in) it is shown again.
 */
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { WIDE, chromiumSuite, cliCustomer, unlockConsole, watchPage } from "../../client/test/chromium.js";
import { cli } from "../../client/test/relay.js";

/** A message's text: its ciphertext is 1,000 bytes (the text and the 16-byte AEAD tag). */
const body = (n: number): string => `${String(n).padStart(3, "0")}${"x".repeat(981)}`;
/** The org's quota: ten and a half messages. */
const QUOTA = 10_500;

describe("the pushed stored-bytes warning in the agent console (Chromium)", () => {
  const s = chromiumSuite("console-quota-push", { viewport: WIDE }, ["--limit", `stored_bytes_per_org=${QUOTA}`]);

  const shown = async (page: Page): Promise<string | null> => ((await page.locator("#quota").isVisible()) ? await page.locator("#quota p").textContent() : null);

  it("shows the org's warning to an agent who sent nothing, and again after a reload", async () => {
    const page = await s.browser.newPage();
    watchPage(page, s.problems, false);
    await unlockConsole(page, s.relay.origin, s.org.agentHome);
    const { home: dave, id } = await cliCustomer(s.root, s.relay.url, s.org, "dave");
    // Eight of the customer's messages: 76%, no warning.
    for (let n = 0; n < 8; n++) await cli(dave, s.relay.url, ["send", "--conversation", id, body(n)]);
    await expect.poll(() => page.locator(`#list button[data-conversation="${id}"]`).count(), { timeout: 30_000 }).toBe(1);
    expect(await shown(page)).toBeNull();
    // The ninth: 85% of the org's quota, pushed to the agent, shown with the stored answer's words, once.
    await cli(dave, s.relay.url, ["send", "--conversation", id, body(8)]);
    await expect.poll(() => shown(page), { timeout: 15_000 }).not.toBeNull();
    const words = new RegExp(`^The messages and files of ${s.org.org}'s conversations now take 8\\.8 KiB of the 10\\.3 KiB this relay keeps for ${s.org.org} \\(85%\\)\\. When it is full`);
    const warning = (await shown(page)) ?? "";
    expect(warning).toMatch(words);
    expect(warning.split("now take")).toHaveLength(2);
    expect(await page.locator("#quota p").getAttribute("data-scope")).toBe("org");
    // A reload signs in again: the relay pushes the warning after `welcome`, shown again.
    await page.reload();
    await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 30_000 }).toBe("online");
    await expect.poll(() => shown(page), { timeout: 15_000 }).toBe(warning);
    expect(s.problems).toEqual([]);
    await page.close();
  });
});
