/**
 * An org that requires an open token (PROTOCOL §13.14), in Chromium against the real relay
 * serving web/dist: the master certifies a web server key and requires tokens (CLI `org
 * web-key --require`). The widget opened without a token shows the `open_token_required`
 * refusal in plain words and sends nothing; with a token the CLI's `token issue` made for this
 * browser's key (which the page publishes as `data-customer-key`), passed as `?token=` (what
 * `embed.js` does with `data-token`), the conversation opens and the agent reads it.
 * Screenshot `widget-token-required.png`.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SHOTS as shots, chromiumSuite } from "../../client/test/chromium.js";

describe("an open token in the widget (Chromium)", () => {
  const s = chromiumSuite("widget-token", {}, [], async (run) => {
    await run.org.as("owner", ["org", "web-key", "--org", run.org.org, "--new-key", join(run.root, "web.key"), "--require"]);
  });

  it("says a token is required in plain words, and opens with one", async () => {
    const page = await s.browser.newPage();
    page.on("pageerror", (e) => s.problems.push(e.message));
    const url = `${s.relay.origin}/?org=${s.org.org}&fp=${encodeURIComponent(s.org.fingerprint)}`;
    await page.goto(url);
    await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 20_000 }).toBe("online");
    await page.locator("#text").fill("hello from a page without a token");
    await page.locator("#text").press("Enter");
    await expect.poll(() => page.locator("#alert").textContent(), { timeout: 20_000 }).toContain("(open_token_required)");
    expect(await page.locator("#alert").textContent()).toContain("This business only opens chats started from its own web site");
    expect(await page.locator("#log li.line").count()).toBe(0);
    expect(await page.locator("body").getAttribute("data-conversation")).toBe("");
    await page.screenshot({ path: join(shots, "widget-token-required.png") });

    // The business's web server issues a token for this browser's key; the page passes it.
    const key = (await page.locator("body").getAttribute("data-customer-key")) ?? "";
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    const token = (await s.org.as("owner", ["token", "issue", "--key", join(s.root, "web.key"), "--org", s.org.org, "--visitor", "visitor-42", "--customer", key])).trim();
    await page.goto(`${url}&token=${token}`);
    await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 20_000 }).toBe("online");
    await page.locator("#text").fill("hello with a token");
    await page.locator("#text").press("Enter");
    await expect.poll(() => page.locator("#log li.line .text").allTextContents(), { timeout: 20_000 }).toEqual(["hello with a token"]);
    const id = (await page.locator("body").getAttribute("data-conversation")) ?? "";
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(await s.org.agent(["history", "--conversation", id])).toContain("hello with a token");
    expect(await page.locator("#alert").isHidden()).toBe(true);
    expect(s.problems).toEqual([]);
    await page.close();
  });
});
