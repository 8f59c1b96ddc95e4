/**
 * Consents granted and revoked on another device of the same account, in the widget (Chromium
 * against the real relay; issue 22). The second place is the CLI: a customer made with
 * `sealdesk init` is recovered in the browser with the code `init` showed, so the browser and
 * the terminal hold one account. A consent the CLI granted before is listed from the
 * conversation's consent item; while the page stays open, the CLI grants another and revokes the
 * first, and the widget lists both as they stand once the log grows (`audit_grew`), without a
 * reload or a click. Then a hostile relay (`relayInTheMiddle`) alters one consent item and
 * replaces another with one a stranger signed: neither is listed, each is refused in the alert,
 * and the genuine consent next to them is listed. Screenshot `widget-consents-elsewhere.png`.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { IdentityKeys, consentSignedBytes } from "@sealdesk/protocol";
import { consentFromCbor, consentToCbor } from "@sealdesk/client";
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { SHOTS, chromiumSuite, launch, relayInTheMiddle, watchPage, type Frame } from "../../client/test/chromium.js";
import { cli } from "../../client/test/relay.js";
import { consentFixture } from "./consents-fixture.js";

describe("consents from another device of the account, in the widget (Chromium)", () => {
  const s = chromiumSuite("widget-consents-elsewhere", { viewport: { width: 420, height: 760 } });

  const { cliCustomer, grant, recoverThere, listed } = consentFixture(s);

  it("lists a consent the CLI granted, and one granted and one revoked there while the page is open", async () => {
    const jane = await cliCustomer("jane");
    const first = await grant(jane.home, jane.id, "refund check");
    const page = await s.browser.newPage();
    watchPage(page, s.problems);
    await recoverThere(page, "jane", jane.code, jane.id);
    // Granted in the terminal before this browser held the account: read from the conversation.
    await expect.poll(() => listed(page), { timeout: 20_000 }).toEqual({ [first]: "active" });
    expect(await page.locator(`#consents > li[data-consent="${first}"]`).textContent()).toContain("“refund check”");

    // The page stays open: another granted, the first revoked, both in the terminal.
    const second = await grant(jane.home, jane.id, "quality review");
    await cli(jane.home, s.relay.url, ["consent", "revoke", "--consent", first]);
    await expect.poll(() => listed(page), { timeout: 30_000 }).toEqual({ [first]: "revoked", [second]: "active" });
    const revoked = (await page.locator(`#consents > li[data-consent="${first}"]`).textContent()) ?? "";
    expect(revoked).toMatch(/“refund check”, your consent of .* — revoked, audit log entry #\d+/);
    expect(await page.locator(`#consents > li[data-consent="${first}"] button`).count()).toBe(0);
    expect(await page.locator(`#consents > li[data-consent="${second}"]`).textContent()).toContain("“quality review”");
    // The terminal agrees.
    const cliList = JSON.parse(await cli(jane.home, s.relay.url, ["consent", "list", "--json"])) as { consents: { id?: string; consent?: string; state: string }[] };
    expect(Object.fromEntries(cliList.consents.map((c) => [c.id ?? c.consent ?? "", c.state]))).toEqual({ [first]: "revoked", [second]: "active" });
    await page.locator(`#consents > li[data-consent="${second}"]`).scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(SHOTS, "widget-consents-elsewhere.png") });
    expect(s.problems).toEqual([]);
    await page.close();
  });

  it("does not list a consent item the relay altered or a stranger signed", async () => {
    const kate = await cliCustomer("kate");
    const altered = await grant(kate.home, kate.id, "tamper me");
    const replaced = await grant(kate.home, kate.id, "replace me");
    const genuine = await grant(kate.home, kate.id, "genuine");
    const stranger = IdentityKeys.generate((n) => new Uint8Array(randomBytes(n)));
    let strangerId = "";
    const forged = { altered: 0, replaced: 0 };
    const fresh = await launch(join(s.root, "profile-hostile"), { viewport: { width: 420, height: 760 } });
    try {
      const p = await fresh.newPage();
      watchPage(p, s.problems);
      await relayInTheMiddle(p, {
        toPage: (frame) => {
          const items = ((frame.response as Frame | undefined)?.body as Frame | undefined)?.items as Frame | undefined;
          for (const it of Array.isArray(items?.items) ? (items.items as Frame[]) : []) {
            const item = it.item as Frame;
            if (item.consent === undefined) continue;
            const token = consentFromCbor(item.consent);
            if (token.purpose === "tamper me") {
              // The purpose changed: the customer's signature no longer holds.
              item.consent = consentToCbor({ ...token, purpose: "tampered by the relay" });
              forged.altered += 1;
            } else if (token.purpose === "replace me") {
              // Well signed, by a key that is not the conversation's customer.
              const unsigned = { ...token, id: new Uint8Array(randomBytes(16)), customer: stranger.signingPublic, purpose: "signed by a stranger" };
              const { signature: _, ...rest } = unsigned;
              strangerId = Buffer.from(unsigned.id).toString("hex");
              item.consent = consentToCbor({ ...rest, signature: stranger.sign(consentSignedBytes(rest)) });
              forged.replaced += 1;
            }
          }
          return frame;
        },
      });
      await recoverThere(p, "kate", kate.code, kate.id);
      await expect.poll(() => listed(p), { timeout: 20_000 }).toEqual({ [genuine]: "active" });
      expect(forged.altered).toBeGreaterThan(0);
      expect(forged.replaced).toBeGreaterThan(0);
      expect(Object.keys(await listed(p))).not.toContain(altered);
      expect(Object.keys(await listed(p))).not.toContain(replaced);
      expect(Object.keys(await listed(p))).not.toContain(strangerId);
      expect(await p.locator("#alert").textContent()).toMatch(/^An item \(#\d+\) failed verification and is not shown: consent item refused: /);
    } finally {
      await fresh.close();
    }
    expect(s.problems).toEqual([]);
  });
});
