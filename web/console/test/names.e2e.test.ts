/**
 * The console names a consent by its short id, never its full one, in Chromium against the real
 * relay serving web/dist: a CLI customer grants a consent and revokes it (`sealdesk consent
 * grant`, `consent revoke`); the console reads the revocation from the audit log and says "The
 * customer's consent 1a2b3c4d was revoked" (no release was made under it, so the console knows
 * no day to name it by: `consent-names.ts`).
 */
import { describe, expect, it } from "vitest";
import { WIDE, chromiumSuite } from "../../client/test/chromium.js";
import { cli } from "../../client/test/relay.js";
import { consolePage, customerWrites } from "./console-page.js";

describe("consents named in the agent console (Chromium)", () => {
  const s = chromiumSuite("console-names", { viewport: WIDE });

  it("names a revoked consent by its short id", async () => {
    const page = await consolePage(s);
    const { home, id } = await customerWrites(s, page, "erin", "about my refund");
    const granted = JSON.parse(await cli(home, s.relay.url, ["consent", "grant", "--conversation", id, "--scope", "full", "--expires", "1d", "--json"])) as { consent: string };
    await cli(home, s.relay.url, ["consent", "revoke", "--consent", granted.consent]);

    const notice = page.locator("#log li.notice", { hasText: "was revoked" });
    await expect.poll(() => notice.count(), { timeout: 30_000 }).toBe(1);
    // Not yet witnessed (no trustee cosigns here): what it says is behind "Details".
    expect(await notice.locator("p").first().textContent()).toMatch(new RegExp(`^The customer's consent ${granted.consent.slice(0, 8)} was revoked[ .]`));
    expect(await notice.textContent()).not.toContain(granted.consent);
    expect(s.problems).toEqual([]);
    await page.close();
  });
});
