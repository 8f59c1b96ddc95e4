/**
 * Release notices in the agent console, in Chromium against the real relay serving web/dist: a
 * CLI customer writes to the CLI's agent `alice`, grants the org's master consent to read the
 * conversation (`sealdesk consent grant`), and the master unlocks it under that consent with the
 * CLI trustee `t1` serving (`trustee serve`, which cosigns a log head holding the release
 * before it sends its share). The console, unlocked from alice's vault, shows one release
 * notice, verified as the widget verifies it (signer a trustee of the policy, inclusion proven,
 * the head consistent with the last one seen, the trustees' cosignature quorum) and in the
 * widget's words said of the customer — live, as soon as the relay says the log grew, without a
 * click or a reload. A screenshot goes to web/screenshots/console-notice.png.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { dayMonth } from "@sealdesk/client";
import { SHOTS, WIDE, chromiumSuite } from "../../client/test/chromium.js";
import { cli } from "../../client/test/relay.js";
import { consolePage, customerWrites, texts } from "./console-page.js";

describe("release notices in the agent console (Chromium)", () => {
  const s = chromiumSuite("console-notice", { viewport: WIDE });

  it("shows a release by consent as one verified notice, in the widget's words", async () => {
    const page = await consolePage(s);
    const { org } = s;

    const { home: erin, id } = await customerWrites(s, page, "erin", "please review my case");
    expect(await page.locator("#log li.notice").count()).toBe(0);

    // The customer consents; the master unlocks under it while the trustee serves.
    const granted = JSON.parse(await cli(erin, s.relay.url, ["consent", "grant", "--conversation", id, "--scope", "full", "--expires", "1d", "--json"])) as { consent: string; expires_at: number };
    // Its day, from its own timestamp (`--expires 1d`: issued a day before it expires).
    const trustee = org.background("t1", ["trustee", "serve"]);
    try {
      await org.as("owner", ["transcript", "unlock", "--conversation", id, "--consent", granted.consent]);
    } finally {
      trustee.kill("SIGTERM");
    }

    const notices = page.locator("#log li.notice");
    // Live, without a click or a reload: the relay tells the console's session that the log
    // grew (`audit_grew`, after `watch_audit`), and the console reads the new entries.
    await expect.poll(() => notices.count(), { timeout: 20_000 }).toBe(1);
    const released = notices.first();
    // Verified once the trustee's cosignature is in (a notice not yet witnessed is checked again).
    await expect.poll(() => released.getAttribute("data-verified"), { timeout: 20_000 }).toBe("true");
    expect(await released.getAttribute("data-state")).toBe("verified");
    expect(await released.locator("strong").textContent()).toBe("Release notice");
    expect(await released.locator("p").textContent()).toMatch(new RegExp(`^The trustee t1 released its share to ${org.org} for epochs? [0-9–]+ of this chat under the customer's consent of ${dayMonth(granted.expires_at - 86_400)}\\.$`));
    // Never a full consent id.
    expect(await released.textContent()).not.toContain(granted.consent);
    expect(await released.locator(".meta").textContent()).toMatch(/^Verified ✓: signed by trustee t1, proven in the public audit log \(entry \d+ of \d+\), vouched for by the business's key trustees\.$/);
    await page.screenshot({ path: join(SHOTS, "console-notice.png") });

    // Read again from the relay after a reload: the same one notice, verified again.
    await page.reload();
    await page.locator(`#list button[data-conversation="${id}"]`).click();
    await expect.poll(() => texts(page)).toEqual(["please review my case"]);
    await expect.poll(() => page.locator("#log li.notice[data-verified=true]").count()).toBe(1);
    expect(s.problems).toEqual([]);
    await page.close();
  });
});
