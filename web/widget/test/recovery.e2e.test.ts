/**
 * Recovery codes in the widget, in Chromium against the real relay serving web/dist (the org and
 * its agent made with the CLI; issue 22): a customer chats, makes a recovery code (shown once,
 * with the account's name and what it means), makes a second one (which retires the first); in
 * a fresh browser profile "I have a recovery code" refuses the retired code, an unknown name and
 * a typo — each in plain words, nothing stored — and the current code brings the account and its
 * history back, and sending goes on. Screenshots `widget-recovery-code.png`,
 * `widget-recover-refused.png`, `widget-recovered.png`.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Page } from "playwright-core";
import { SHOTS as shots, chromiumSuite, launch, submitRecovery as recover, visitorOnRelay, watchPage, widgetVisitor } from "../../client/test/chromium.js";
import { idleClock, staysUnregistered } from "./idle-visitor.js";

describe("recovery codes in the widget (Chromium)", () => {
  const s = chromiumSuite("widget-recovery", { viewport: { width: 420, height: 760 } });

  /** Makes a code in the "Recovery code" panel; returns its text (hidden again afterwards). */
  async function makeCode(page: Page, shot?: string): Promise<string> {
    await page.locator("#recovery-make").click();
    await expect.poll(() => page.locator("#recovery-status").getAttribute("data-outcome"), { timeout: 20_000 }).toBe("made");
    const code = (await page.locator("#recovery-code").textContent()) ?? "";
    expect(code).toMatch(/^([0-9A-Z]{5}-){7}[0-9A-Z]{5}$/);
    expect(await page.locator("#recovery-shown").textContent()).toContain("Anyone who has it can read your chats");
    if (shot !== undefined) await page.screenshot({ path: join(shots, shot), fullPage: true });
    await page.locator("#recovery-done").click();
    expect(await page.locator("#recovery-shown").isHidden()).toBe(true);
    expect(await page.locator("body").textContent()).not.toContain(code);
    return code;
  }


  it("saves a code, and a fresh browser recovers the account and its history with it", async () => {
    const page = await s.browser.newPage();
    // Its timers on Playwright's clock, for the idle time `staysUnregistered` runs.
    await idleClock(page);
    watchPage(page, s.problems);
    const url = `${s.relay.origin}/?org=${s.org.org}&fp=${encodeURIComponent(s.org.fingerprint)}`;
    await page.goto(url);
    await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 20_000 }).toBe("online");
    // A fresh profile is offered recovery before it has a conversation.
    expect(await page.locator("#recover").isVisible()).toBe(true);
    // Nothing sent yet: no card of the visitor's in the relay's directory (asked from here).
    const visitor = await widgetVisitor(page);
    expect(await visitorOnRelay(s.relay.url, visitor)).toBe(false);
    // Nor once the widget is done starting, nor while the visitor stays idle (`staysUnregistered`).
    await staysUnregistered(page, s.relay.url);
    await page.locator("#text").fill("my parcel is lost");
    await page.locator("#text").press("Enter");
    await expect.poll(() => page.locator("#log li.line .text").allTextContents()).toEqual(["my parcel is lost"]);
    expect(await visitorOnRelay(s.relay.url, visitor)).toBe(true);
    expect(await page.locator("#recover").isHidden()).toBe(true);
    const id = (await page.locator("body").getAttribute("data-conversation")) ?? "";
    await s.org.agent(["send", "--conversation", id, "we will find it"]);
    await expect.poll(() => page.locator("#log li.line .text").allTextContents(), { timeout: 20_000 }).toEqual(["my parcel is lost", "we will find it"]);
    const { key, name } = visitor;

    await page.locator("#recovery summary").click();
    const first = await makeCode(page, "widget-recovery-code.png");
    // A second code (the way out when the first was never seen) retires the first.
    const second = await makeCode(page);
    expect(second).not.toBe(first);
    await page.close();

    // A fresh browser profile: the old code, an unknown name and a typo are refused in words.
    const fresh = await launch(join(s.root, "profile-fresh"));
    try {
      const p = await fresh.newPage();
      watchPage(p, s.problems);
      await p.goto(url);
      await expect.poll(() => p.locator("#conn").getAttribute("data-state"), { timeout: 20_000 }).toBe("online");
      const throwaway = await widgetVisitor(p);
      const freshKey = throwaway.key;
      expect(freshKey).not.toBe(key);
      expect(await visitorOnRelay(s.relay.url, throwaway)).toBe(false);
      await p.locator("#recover summary").click();
      expect(await recover(p, name, first)).toBe("wrong_code");
      expect(await p.locator("#recover-status").textContent()).toBe(`Not recovered: This code does not open “${name}”: check it. If a newer code was made since, only the newest works. Nothing was stored.`);
      await p.screenshot({ path: join(shots, "widget-recover-refused.png"), fullPage: true });
      expect(await recover(p, "web-000000000000", second)).toBe("unknown_name");
      const typo = `${second.slice(0, 3)}${second[3] === "0" ? "1" : "0"}${second.slice(4)}`;
      expect(await recover(p, name, typo)).toBe("code_format");
      // Nothing stored: still the fresh account, back online.
      await p.reload();
      await expect.poll(() => p.locator("#conn").getAttribute("data-state"), { timeout: 20_000 }).toBe("online");
      expect(await p.locator("body").getAttribute("data-customer-key")).toBe(freshKey);
      expect(await p.locator("#log li.line").count()).toBe(0);

      // The current code: the page reloads as the account, with its history.
      await p.locator("#recover summary").click();
      await p.locator("#recover-name").fill(name);
      await p.locator("#recover-code").fill(second);
      await p.locator("#recover-go").click();
      await expect.poll(() => p.locator("body").getAttribute("data-customer-key"), { timeout: 20_000 }).toBe(key);
      await expect.poll(() => p.locator("#log li.line .text").allTextContents(), { timeout: 20_000 }).toEqual(["my parcel is lost", "we will find it"]);
      await expect.poll(() => p.locator("#conn").getAttribute("data-state"), { timeout: 20_000 }).toBe("online");
      expect(await p.locator("body").getAttribute("data-conversation")).toBe(id);
      // The account this profile made at first, recovered over before it sent: never registered.
      expect(await visitorOnRelay(s.relay.url, throwaway)).toBe(false);
      expect(await p.locator("#recover").isHidden()).toBe(true);
      await p.locator("#text").fill("found the tracking number");
      await p.locator("#text").press("Enter");
      await expect.poll(() => p.locator("#log li.line .text").allTextContents()).toContain("found the tracking number");
      expect(await s.org.agent(["history", "--conversation", id])).toContain("found the tracking number");
      await p.locator("#recovery summary").click();
      await p.screenshot({ path: join(shots, "widget-recovered.png"), fullPage: true });
    } finally {
      await fresh.close();
    }
    expect(s.problems).toEqual([]);
  });
});
