/**
 * A consent granted on another device of the account reaches an open widget at once, as the
 * relay's push (Chromium against the real relay; issues 20 and 23). The relay pushes a consent
 * item to every connection of the customer's account but the one that shared it (PROTOCOL
 * §13.11), so the CLI's grant is listed while the page stays open with no reload, no click and
 * no other event: a grant logs nothing, so no `audit_grew` comes to trigger a read, and the
 * page's WebSocket (passed through `relayInTheMiddle`) is seen to carry the consent as a push.
 *
 * Pushed items are checked as read ones are (`customer-consents.ts`'s `takeConsentItem`): a
 * hostile relay that alters one pushed consent and replaces another with one a stranger signed
 * gets neither listed — each refused in the alert — while the genuine consent pushed next to
 * them is.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { IdentityKeys, consentSignedBytes } from "@sealdesk/protocol";
import { consentFromCbor, consentToCbor } from "@sealdesk/client";
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { chromiumSuite, launch, relayInTheMiddle, watchPage, type Frame } from "../../client/test/chromium.js";
import { consentFixture } from "./consents-fixture.js";

describe("a consent granted on another device, pushed to the open widget (Chromium)", () => {
  const s = chromiumSuite("widget-consents-pushed", { viewport: { width: 420, height: 760 } });

  const { cliCustomer, grant, recoverThere, listed } = consentFixture(s);

  /** The purpose of the consent a frame from the relay pushes, if it pushes one. */
  const pushedConsent = (frame: Frame): Frame | undefined => ((frame.push as Frame | undefined)?.item as Frame | undefined)?.item as Frame | undefined;

  it("lists the CLI's grant as soon as the relay pushes it, with no other event", async () => {
    const jane = await cliCustomer("jane");
    const page = await s.browser.newPage();
    watchPage(page, s.problems);
    /** What the relay sent the page, in order: consent pushes by purpose, and every `audit_grew`. */
    const seen: string[] = [];
    await relayInTheMiddle(page, {
      toPage: (frame) => {
        const item = pushedConsent(frame);
        if (item?.consent !== undefined) seen.push(`consent pushed: ${consentFromCbor(item.consent).purpose}`);
        if ((frame.push as Frame | undefined)?.audit_grew !== undefined) seen.push("audit_grew");
        return frame;
      },
    });
    await recoverThere(page, "jane", jane.code, jane.id);
    await expect.poll(() => listed(page), { timeout: 20_000 }).toEqual({});

    // Granted in the terminal while the page stays open: pushed, then listed.
    seen.length = 0;
    const granted = await grant(jane.home, jane.id, "refund check");
    await expect.poll(() => listed(page), { timeout: 20_000 }).toEqual({ [granted]: "active" });
    expect(await page.locator(`#consents > li[data-consent="${granted}"]`).textContent()).toContain("“refund check”");
    expect(seen).toEqual(["consent pushed: refund check"]);
    expect(s.problems).toEqual([]);
    await page.close();
  });

  it("does not list a pushed consent the relay altered or a stranger signed", async () => {
    const kate = await cliCustomer("kate");
    const stranger = IdentityKeys.generate((n) => new Uint8Array(randomBytes(n)));
    let strangerId = "";
    const forged = { altered: 0, replaced: 0 };
    /** The forgeries made in pushes (not in history pages). */
    let forgedPushes = 0;
    // A browser of its own: the suite's holds the first test's account.
    const fresh = await launch(join(s.root, "profile-hostile"), { viewport: { width: 420, height: 760 } });
    const page = await fresh.newPage();
    watchPage(page, s.problems);
    /** Forges the consent `item` carries, in place, if it is one to forge; whether it did. */
    const forge = (item: Frame | undefined): boolean => {
      if (item?.consent === undefined) return false;
      const token = consentFromCbor(item.consent);
      if (token.purpose === "tamper me") {
        // The purpose changed: the customer's signature no longer holds.
        item.consent = consentToCbor({ ...token, purpose: "tampered by the relay" });
        forged.altered += 1;
        return true;
      }
      if (token.purpose === "replace me") {
        // Well signed, by a key that is not the conversation's customer.
        const unsigned = { ...token, id: new Uint8Array(randomBytes(16)), customer: stranger.signingPublic, purpose: "signed by a stranger" };
        const { signature: _, ...rest } = unsigned;
        strangerId = Buffer.from(unsigned.id).toString("hex");
        item.consent = consentToCbor({ ...rest, signature: stranger.sign(consentSignedBytes(rest)) });
        forged.replaced += 1;
        return true;
      }
      return false;
    };
    await relayInTheMiddle(page, {
      toPage: (frame) => {
        // Forged where it is pushed, and in any history page that serves it again.
        if (forge(pushedConsent(frame))) forgedPushes += 1;
        const items = ((frame.response as Frame | undefined)?.body as Frame | undefined)?.items as Frame | undefined;
        for (const it of Array.isArray(items?.items) ? (items.items as Frame[]) : []) forge(it.item as Frame);
        return frame;
      },
    });
    await recoverThere(page, "kate", kate.code, kate.id);
    await expect.poll(() => listed(page), { timeout: 20_000 }).toEqual({});

    const altered = await grant(kate.home, kate.id, "tamper me");
    const replaced = await grant(kate.home, kate.id, "replace me");
    const genuine = await grant(kate.home, kate.id, "genuine");
    await expect.poll(() => listed(page), { timeout: 20_000 }).toEqual({ [genuine]: "active" });
    // Each forged as the relay pushed it: the checks held for pushed items.
    expect(forgedPushes).toBe(2);
    expect(forged.altered).toBeGreaterThan(0);
    expect(forged.replaced).toBeGreaterThan(0);
    const ids = Object.keys(await listed(page));
    for (const bad of [altered, replaced, strangerId]) expect(ids).not.toContain(bad);
    await expect.poll(() => page.locator("#alert").textContent(), { timeout: 20_000 }).toMatch(/^An item \(#\d+\) failed verification and is not shown: consent item refused: /);
    expect(s.problems).toEqual([]);
    await fresh.close();
  });
});
