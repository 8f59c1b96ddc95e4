/**
 * The customer's rights in the widget, in Chromium against the real relay serving web/dist (the
 * org, its master and trustee made with the CLI): two consents granted and listed, each row
 * naming its consent by purpose and day (the short id only when both share the day, as
 * `consentName` does everywhere on the page); the master unlocks under the first, which is then
 * listed "used"; the second is revoked with its button — said revoked with its audit log entry,
 * "not yet witnessed" (no trustee has cosigned since); the export downloads the verified history
 * as JSON; erasing is asked twice, then the copy stays readable, sending stops, and a reload says
 * so. Screenshots `widget-consents-active.png`, `widget-consents.png`, `widget-erased.png`.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { dayMonth } from "@sealdesk/client";
import { SHOTS as shots, chromiumSuite } from "../../client/test/chromium.js";

describe("consents, export and erasure in the widget (Chromium)", () => {
  const s = chromiumSuite("widget-rights", { viewport: { width: 420, height: 760 }, acceptDownloads: true });

  it("lists and revokes consents, exports the history and erases the conversation", async () => {
    const page = await s.browser.newPage();
    page.on("console", (m) => {
      if (m.type() === "error") s.problems.push(m.text());
    });
    page.on("pageerror", (e) => s.problems.push(e.message));
    const url = `${s.relay.origin}/?org=${s.org.org}&fp=${encodeURIComponent(s.org.fingerprint)}`;
    await page.goto(url);
    await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 20_000 }).toBe("online");
    await page.locator("#text").fill("I want my data back");
    await page.locator("#text").press("Enter");
    await expect.poll(() => page.locator("#log li.line .text").allTextContents()).toEqual(["I want my data back"]);
    const id = (await page.locator("body").getAttribute("data-conversation")) ?? "";

    await page.locator("#consent summary").click();
    const consents: string[] = [];
    for (const purpose of ["refund check", "quality review"]) {
      await page.locator("#purpose").fill(purpose);
      await page.locator("#grant").click();
      await expect.poll(() => page.locator("#consent-result").getAttribute("data-consent")).not.toBe(consents[consents.length - 1] ?? null);
      consents.push((await page.locator("#consent-result").getAttribute("data-consent")) ?? "");
    }
    const [first, second] = consents as [string, string];
    await expect.poll(() => page.locator("#consents li[data-state=active]").count(), { timeout: 10_000 }).toBe(2);
    // The widget shares the consent itself: nothing for the customer to pass on.
    // Named by its day (its own record's: `data-issued`), with its short id only when the
    // other consent shares the day; never its full id.
    const days = await Promise.all(consents.map(async (c) => dayMonth(Number(await page.locator(`#consents li[data-consent="${c}"]`).getAttribute("data-issued")))));
    const name = days[0] === days[1] ? `of ${days[1] ?? ""}, ${second.slice(0, 8)}` : `of ${days[1] ?? ""}`;
    expect(await page.locator("#consent-result").textContent()).toBe(`Consent granted and shared with the business (your consent ${name}).`);
    // The rows name each consent the same way: its purpose and its day (with the short id only
    // when the other shares the day), never its id alone nor in full.
    const purposes = ["refund check", "quality review"];
    for (const [i, c] of consents.entries()) {
      const named = days[0] === days[1] ? `of ${days[i] ?? ""}, ${c.slice(0, 8)}` : `of ${days[i] ?? ""}`;
      const said = (await page.locator(`#consents li[data-consent="${c}"] span`).textContent()) ?? "";
      const start = `“${purposes[i] ?? ""}”, your consent ${named} — active, until `;
      expect(said.slice(0, start.length)).toBe(start);
      expect(said).not.toContain(c);
      expect(said).not.toContain("…");
      expect(await page.locator(`#consents li[data-consent="${c}"] button`).getAttribute("aria-label")).toBe(`Revoke your consent ${named} for “${purposes[i] ?? ""}”`);
    }
    await page.locator("#consents").screenshot({ path: join(shots, "widget-consents-active.png") });
    // Layout: a Revoke button stands apart from the date before it, and the panels scroll in
    // their strip so that the conversation keeps its room (layout.e2e.test.ts).
    const revoke = page.locator(`#consents li[data-consent="${second}"] button`);
    expect(await revoke.evaluate((b) => getComputedStyle(b).marginLeft)).not.toBe("0px");
    expect(await page.locator("#panels").evaluate((d) => getComputedStyle(d).overflowY)).toBe("auto");

    // The master opens the conversation under the first consent: listed as used.
    const trustee = s.org.background("t1", ["trustee", "serve"]);
    try {
      await s.org.as("owner", ["transcript", "unlock", "--conversation", id, "--consent", first]);
    } finally {
      const exited = new Promise((r) => (trustee.exitCode !== null ? r(null) : trustee.once("exit", r)));
      trustee.kill("SIGTERM");
      await exited;
    }
    await expect.poll(() => page.locator("#log li.notice").count(), { timeout: 20_000 }).toBe(1);
    await page.locator("#consent summary").click();
    await page.locator("#consent summary").click();
    await expect.poll(() => page.locator(`#consents li[data-consent="${first}"]`).getAttribute("data-state"), { timeout: 10_000 }).toBe("used");
    expect(await page.locator(`#consents li[data-consent="${first}"] button`).count()).toBe(0);

    // The second, revoked with its button (keyboard: focus, then Enter, as a person does; the
    // list drawn again in between keeps the focus: focus.e2e.test.ts).
    await page.locator(`#consents li[data-consent="${second}"] button`).focus();
    await page.keyboard.press("Enter");
    await expect.poll(() => page.locator("#consent-status").getAttribute("data-outcome"), { timeout: 20_000 }).toBe("revoked");
    expect(await page.locator("#consent-status").textContent()).toMatch(/^Revoked \(audit log entry #\d+\), but NOT YET CONFIRMED by the business's independent trustees; they usually confirm within a minute/);
    await expect.poll(() => page.locator(`#consents li[data-consent="${second}"]`).getAttribute("data-state")).toBe("revoked");
    // The "Consent granted … (id …)" line of the revoked consent is gone.
    await expect.poll(() => page.locator("#consent-result").textContent()).toBe("");
    expect(await page.locator("#consent-result").getAttribute("data-consent")).toBeNull();
    await page.screenshot({ path: join(shots, "widget-consents.png"), fullPage: true });
    await expect(s.org.as("owner", ["transcript", "unlock", "--conversation", id, "--consent", second, "--wait", "5"])).rejects.toThrow();

    // Export: the verified history as JSON.
    await page.locator("#your-data summary").click();
    const [download] = await Promise.all([page.waitForEvent("download"), page.locator("#export").click()]);
    expect(download.suggestedFilename()).toBe(`sealdesk-history-${id}.json`);
    const exported = JSON.parse(readFileSync((await download.path()) ?? "", "utf8")) as { format: string; conversation: string; lines: { entry: { type: string; text: string; mine?: boolean } }[] };
    expect(exported.format).toBe("sealdesk-history/1");
    expect(exported.conversation).toBe(id);
    expect(exported.lines.find((l) => l.entry.type === "message")?.entry).toMatchObject({ text: "I want my data back", mine: true });
    expect(exported.lines.some((l) => l.entry.type === "notice")).toBe(true);

    // Erase: asked first; cancel leaves everything as it is.
    await page.locator("#erase").click();
    expect(await page.locator("#erase-confirm").isVisible()).toBe(true);
    await page.locator("#erase-no").click();
    expect(await page.locator("#erase-confirm").isHidden()).toBe(true);
    await page.locator("#erase").click();
    await page.locator("#erase-yes").click();
    await expect.poll(() => page.locator("#data-status").getAttribute("data-erased"), { timeout: 20_000 }).toBe("true");
    expect(await page.locator("#send").isDisabled()).toBe(true);
    // Nothing left to erase: the button is disabled, and looks it.
    expect(await page.locator("#erase").isDisabled()).toBe(true);
    expect(await page.locator("#erase").evaluate((b) => getComputedStyle(b).cursor)).toBe("not-allowed");
    expect(await page.locator("#log li.line .text").allTextContents()).toEqual(["I want my data back"]);
    await page.screenshot({ path: join(shots, "widget-erased.png"), fullPage: true });

    await page.reload();
    await expect.poll(() => page.locator("#log li.line .text").allTextContents()).toEqual(["I want my data back"]);
    await expect.poll(() => page.locator("#data-status").textContent()).toContain("was erased on the relay");
    expect(await page.locator("#send").isDisabled()).toBe(true);
    expect(await page.locator("#erase").isDisabled()).toBe(true);
    expect(s.problems).toEqual([]);
    await page.close();
  });
});
