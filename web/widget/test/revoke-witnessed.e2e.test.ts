/**
 * The confirmation of a revocation made in the widget, kept true (Chromium against the real
 * relay; issue 23). The relay makes no notice of a customer's own revocation, so the line under
 * the consents is where she learns where it stands: revoked with its audit log entry once the
 * log proves it, and "not yet witnessed" while too few of the org's trustees have vouched for a
 * log holding it. That line is checked again on a timer and, once a trustee has cosigned the
 * log (`trustee serve --once`), says in place that the trustees vouched for it — no click, no
 * reload — and the consent's row agrees. Nothing is logged twice.
 */
import { decodeFrame, type CborValue } from "@sealdesk/protocol";
import { describe, expect, it } from "vitest";
import { chromiumSuite, watchPage } from "../../client/test/chromium.js";

type Frame = { [k: string]: CborValue };

describe("a revocation's confirmation in the widget, witnessed later (Chromium)", () => {
  const s = chromiumSuite("widget-revoke-witnessed", { viewport: { width: 420, height: 760 } });

  it("says the revocation is witnessed, on the same line, once a trustee vouches for the log", async () => {
    const page = await s.browser.newPage();
    watchPage(page, s.problems);
    /** The audit entries the page asked the relay to append. */
    let appends = 0;
    page.on("websocket", (ws) =>
      ws.on("framesent", (f) => {
        if (typeof f.payload === "string") return;
        const body = ((decodeFrame(new Uint8Array(f.payload)) as Frame).request as Frame | undefined)?.body as Frame | undefined;
        if (body?.append_audit !== undefined) appends += 1;
      }),
    );
    await page.goto(`${s.relay.origin}/?org=${s.org.org}&fp=${encodeURIComponent(s.org.fingerprint)}`);
    await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 20_000 }).toBe("online");
    await page.locator("#text").fill("please forget my consent");
    await page.locator("#text").press("Enter");
    await expect.poll(() => page.locator("#log li.line .text").allTextContents()).toEqual(["please forget my consent"]);

    await page.locator("#consent summary").click();
    await page.locator("#purpose").fill("refund check");
    await page.locator("#grant").click();
    await expect.poll(() => page.locator("#consent-result").getAttribute("data-consent"), { timeout: 20_000 }).not.toBeNull();
    const id = (await page.locator("#consent-result").getAttribute("data-consent")) ?? "";
    await expect.poll(() => page.locator(`#consents li[data-consent="${id}"]`).getAttribute("data-state"), { timeout: 20_000 }).toBe("active");

    // Revoked with no trustee online: proven in the log, not yet witnessed.
    const status = page.locator("#consent-status");
    await page.locator(`#consents li[data-consent="${id}"] button`).click();
    await expect.poll(() => status.getAttribute("data-outcome"), { timeout: 20_000 }).toBe("revoked");
    expect(await status.getAttribute("data-witnessed")).toBe("false");
    expect(await status.getAttribute("data-consent")).toBe(id);
    const said = (await status.textContent()) ?? "";
    const entry = /^Revoked \(audit log entry #(\d+)\), but NOT YET CONFIRMED by the business's independent trustees; /.exec(said)?.[1];
    expect(entry).toBeDefined();
    expect(said).toContain("checked again every 10 s");
    await page.evaluate(() => {
      const p = document.getElementById("consent-status");
      (window as unknown as { statusLine: Element | null }).statusLine = p;
    });
    expect(appends).toBe(1);

    // A trustee cosigns the log holding it: the same line says so, with the same entry.
    await s.org.as("t1", ["trustee", "serve", "--once"]);
    await expect.poll(() => status.getAttribute("data-witnessed"), { timeout: 40_000 }).toBe("true");
    expect(await status.textContent()).toBe(`Revoked (audit log entry #${entry ?? ""}), proven in the log and vouched for by the business's key trustees: they will refuse it.`);
    expect(await page.evaluate(() => (window as unknown as { statusLine: Element | null }).statusLine === document.getElementById("consent-status"))).toBe(true);
    expect(await page.locator(`#consents li[data-consent="${id}"]`).textContent()).toContain(`revoked, audit log entry #${entry ?? ""}`);
    // Checked again, never logged again.
    expect(appends).toBe(1);
    expect(s.problems).toEqual([]);
    await page.close();
  });
});
