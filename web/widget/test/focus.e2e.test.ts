/**
 * The focus survives a redraw of the widget's consents list, in Chromium against the real relay
 * serving web/dist: a Revoke button focused by the keyboard stays focused while the list is
 * drawn again (a new consent arrives: here granted with the form submitted from script, so the
 * focus stays where the customer put it), and the Enter pressed next revokes that consent.
 * Drawn again with `replaceChildren`, the list would leave the focus on nothing and the Enter
 * would be lost.
 */
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { chromiumSuite, watchPage } from "../../client/test/chromium.js";

/** Grants a consent for `purpose` without moving the focus (the form submitted from script); returns its id. */
async function grantQuietly(page: Page, purpose: string, before: string | null): Promise<string> {
  await page.evaluate((p) => {
    (document.getElementById("purpose") as HTMLInputElement).value = p;
    (document.getElementById("consent-form") as HTMLFormElement).requestSubmit();
  }, purpose);
  await expect.poll(() => page.locator("#consent-result").getAttribute("data-consent"), { timeout: 20_000 }).not.toBe(before);
  return (await page.locator("#consent-result").getAttribute("data-consent")) ?? "";
}

/** The consent (`data-consent` of its row) of the focused element, or what is focused instead. */
const focusedConsent = (page: Page): Promise<string> =>
  page.evaluate(() => {
    const a = document.activeElement;
    return a?.closest<HTMLElement>("#consents li")?.dataset.consent ?? `not a consent: ${a?.tagName ?? "nothing"}`;
  });

describe("the widget keeps the focus across a redraw (Chromium)", () => {
  const s = chromiumSuite("widget-focus");

  it("keeps a focused Revoke button focused while the consents list is drawn again, and Enter revokes", async () => {
    const page = await s.browser.newPage();
    watchPage(page, s.problems, false);
    await page.goto(`${s.relay.origin}/?org=${s.org.org}&fp=${encodeURIComponent(s.org.fingerprint)}`);
    await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 20_000 }).toBe("online");
    await page.locator("#text").fill("a question first");
    await page.locator("#text").press("Enter");
    await expect.poll(() => page.locator("#log li.line .text").allTextContents()).toEqual(["a question first"]);
    await page.locator("#consent summary").click();
    const first = await grantQuietly(page, "refund check", null);
    const second = await grantQuietly(page, "quality review", first);
    await expect.poll(() => page.locator("#consents li[data-state=active]").count(), { timeout: 10_000 }).toBe(2);

    // The keyboard's focus on the first consent's Revoke button, then a new consent arrives.
    const revoke = page.locator(`#consents li[data-consent="${first}"] button`);
    await revoke.focus();
    expect(await focusedConsent(page)).toBe(first);
    await grantQuietly(page, "a third one", second);
    await expect.poll(() => page.locator("#consents li[data-state=active]").count(), { timeout: 10_000 }).toBe(3);
    expect(await focusedConsent(page)).toBe(first);

    // The Enter pressed next acts on it.
    await page.keyboard.press("Enter");
    await expect.poll(() => page.locator("#consent-status").getAttribute("data-outcome"), { timeout: 20_000 }).toBe("revoked");
    await expect.poll(() => page.locator(`#consents li[data-consent="${first}"]`).getAttribute("data-state")).toBe("revoked");
    expect(await page.locator(`#consents li[data-consent="${second}"]`).getAttribute("data-state")).toBe("active");

    expect(s.problems).toEqual([]);
    await page.close();
  });
});
