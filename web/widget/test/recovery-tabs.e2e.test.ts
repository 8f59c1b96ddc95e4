/**
 * A recovery seen by the other open tabs of the widget, in Chromium against the real relay: two
 * pages of one browser profile hold the browser's fresh account; one recovers a CLI customer's
 * account with the code `sealdesk init` showed, and the other goes on as the recovered account
 * at once — its key, its history, sending — without being reloaded by hand. A tab whose message
 * box holds unsent text stops, keeps the text on screen, and goes on when the customer says so.
 * Screenshot `widget-recovered-elsewhere.png`.
 */
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { SHOTS as shots, chromiumSuite, launch, watchPage } from "../../client/test/chromium.js";
import { cli } from "../../client/test/relay.js";

describe("a recovery in one tab of the widget, seen by the others (Chromium)", () => {
  const s = chromiumSuite("widget-recovery-tabs", { viewport: { width: 420, height: 760 } });
  const url = (): string => `${s.relay.origin}/?org=${s.org.org}&fp=${encodeURIComponent(s.org.fingerprint)}`;
  const lines = (page: Page): Promise<string[]> => page.locator("#log li.line .text").allTextContents();

  /** A CLI customer `name` (made by `init`, its code kept) with a conversation: one line each way. */
  async function cliCustomer(name: string): Promise<{ id: string; code: string }> {
    const home = join(s.root, name);
    const made = JSON.parse(await cli(home, s.relay.url, ["init", "--name", name, "--role", "customer", "--json"])) as { recovery_code: string };
    await cli(home, s.relay.url, ["register"]);
    await cli(home, s.relay.url, ["open", "--org", s.org.org, "--org-fingerprint", s.org.fingerprint]);
    const id = (JSON.parse(await cli(home, s.relay.url, ["conversations", "--json"])) as { conversations: { conversation: string }[] }).conversations[0]?.conversation ?? "";
    await cli(home, s.relay.url, ["send", "--conversation", id, "sent from the terminal"]);
    await s.org.agent(["send", "--conversation", id, "answered"]);
    return { id, code: made.recovery_code };
  }

  /** Submits the recovery form of `page` (which then reloads as the account). */
  async function recover(page: Page, name: string, code: string): Promise<void> {
    await page.locator("#recover summary").click();
    await page.locator("#recover-name").fill(name);
    await page.locator("#recover-code").fill(code);
    await page.locator("#recover-go").click();
  }

  /** Two pages of `browser` on the widget, both online as the browser's fresh account. */
  async function twoTabs(browser: BrowserContext): Promise<[Page, Page, string]> {
    const pages: Page[] = [];
    for (let i = 0; i < 2; i++) {
      const p = await browser.newPage();
      watchPage(p, s.problems);
      await p.goto(url());
      await expect.poll(() => p.locator("#conn").getAttribute("data-state"), { timeout: 20_000 }).toBe("online");
      pages.push(p);
    }
    const [a, b] = pages as [Page, Page];
    const fresh = (await a.locator("body").getAttribute("data-customer-key")) ?? "";
    expect(await b.locator("body").getAttribute("data-customer-key")).toBe(fresh);
    return [a, b, fresh];
  }

  it("the other tab goes on as the recovered account at once: its key, its history, sending", async () => {
    const nora = await cliCustomer("nora");
    const [a, b, fresh] = await twoTabs(s.browser);
    // The recovering tab reloads as nora.
    await recover(a, "nora", nora.code);
    await expect.poll(() => a.locator("body").getAttribute("data-conversation"), { timeout: 20_000 }).toBe(nora.id);
    const key = (await a.locator("body").getAttribute("data-customer-key")) ?? "";
    expect(key).not.toBe(fresh);

    // The other tab, untouched: nora's key, conversation and history, online.
    await expect.poll(() => b.locator("body").getAttribute("data-customer-key"), { timeout: 20_000 }).toBe(key);
    await expect.poll(() => b.locator("body").getAttribute("data-conversation"), { timeout: 20_000 }).toBe(nora.id);
    await expect.poll(() => lines(b), { timeout: 20_000 }).toEqual(["sent from the terminal", "answered"]);
    await expect.poll(() => b.locator("#conn").getAttribute("data-state"), { timeout: 20_000 }).toBe("online");
    expect(await b.locator("#recover").isHidden()).toBe(true);
    await b.locator("#text").fill("now from the second tab");
    await b.locator("#text").press("Enter");
    await expect.poll(() => lines(b), { timeout: 20_000 }).toContain("now from the second tab");
    expect(await s.org.agent(["history", "--conversation", nora.id])).toContain("now from the second tab");
    // The first tab sees it too (the tabs' usual channel).
    await expect.poll(() => lines(a), { timeout: 20_000 }).toContain("now from the second tab");
    await a.close();
    await b.close();
    expect(s.problems).toEqual([]);
  });

  it("a tab with unsent text stops, keeps the text, and goes on as the recovered account when asked", async () => {
    const omar = await cliCustomer("omar");
    // A browser profile of its own: this one holds nora's conversation now.
    const browser = await launch(join(s.root, "profile-draft"), { viewport: { width: 420, height: 760 } });
    try {
      const [a, b, fresh] = await twoTabs(browser);
      await b.locator("#text").fill("half-written question");
      await recover(a, "omar", omar.code);
      await expect.poll(() => a.locator("body").getAttribute("data-conversation"), { timeout: 20_000 }).toBe(omar.id);

      // The other tab: stopped as the former account, the text kept, sending off, told why.
      await expect.poll(() => b.locator("#alert").getAttribute("data-code"), { timeout: 20_000 }).toBe("recovered_elsewhere");
      expect(await b.locator("#alert").textContent()).toContain("This browser now holds the account omar, recovered in another tab");
      expect(await b.locator("#conn").getAttribute("data-state")).toBe("stopped");
      expect(await b.locator("#text").inputValue()).toBe("half-written question");
      expect(await b.locator("#text").evaluate((t) => (t as HTMLTextAreaElement).readOnly)).toBe(true);
      expect(await b.locator("#send").isDisabled()).toBe(true);
      expect(await b.locator("body").getAttribute("data-customer-key")).toBe(fresh);
      await b.screenshot({ path: join(shots, "widget-recovered-elsewhere.png"), fullPage: true });

      await b.locator("#recovered-continue").click();
      await expect.poll(() => b.locator("body").getAttribute("data-conversation"), { timeout: 20_000 }).toBe(omar.id);
      await expect.poll(() => lines(b), { timeout: 20_000 }).toEqual(["sent from the terminal", "answered"]);
      expect(await b.locator("body").getAttribute("data-customer-key")).toBe(await a.locator("body").getAttribute("data-customer-key"));
    } finally {
      await browser.close();
    }
    expect(s.problems).toEqual([]);
  });
});
