/**
 * One opening, one notice (Chromium): an org with three trustees and a threshold of two; the
 * customer consents in the widget and the master unlocks under it with two trustees serving.
 * Each trustee's share is its own audit-log entry, but the widget shows the opening once, saying
 * how many of the org's trustees released it, as the CLI's `history` does.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { dayMonth } from "@sealdesk/client";
import { SHOTS as shots, chromiumSuite, watchPage } from "../../client/test/chromium.js";
import { bin, cli } from "../../client/test/relay.js";

describe("one notice per opening in the widget (Chromium)", () => {
  const s = chromiumSuite("widget-opening", { viewport: { width: 420, height: 760 } });

  it("shows a 2-of-3 release as one notice, released by 2 of 3 trustees", async () => {
    const relay = s.relay.url;
    const home = (n: string): string => join(s.root, "globex", n);
    const run = (n: string, args: string[]): Promise<string> => cli(home(n), relay, args);
    const fp = async (n: string): Promise<string> => (JSON.parse(await run(n, ["whoami", "--json"])) as { fingerprint: string }).fingerprint;
    for (const [name, role] of [["boss", "master"], ["g1", "trustee"], ["g2", "trustee"], ["g3", "trustee"], ["ga", "arbiter"], ["gagent", "agent"]] as const) {
      await run(name, ["init", "--name", name, "--role", role]);
      await run(name, ["register"]);
    }
    const trustees = await Promise.all(["g1", "g2", "g3"].map(async (n) => `${n}=${await fp(n)}`));
    await run("boss", ["org", "create", "--name", "globex", ...trustees.flatMap((t) => ["--trustee", t]), "--trustee-threshold", "2", "--arbiter", `ga=${await fp("ga")}`, "--arbiter-threshold", "1"]);
    await run("boss", ["org", "add-agent", "gagent", "--fingerprint", await fp("gagent")]);
    const fingerprint = await fp("boss");

    const page = await s.browser.newPage();
    watchPage(page, s.problems, false);
    await page.goto(`${s.relay.origin}/?org=globex&fp=${encodeURIComponent(fingerprint)}`);
    await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 20_000 }).toBe("online");
    await expect.poll(() => page.locator("#summary").textContent()).toContain("end-to-end encrypted");
    await page.locator("#text").fill("please look at my case");
    await page.locator("#text").press("Enter");
    await expect.poll(() => page.locator("#log li.line .text").allTextContents()).toEqual(["please look at my case"]);
    const id = (await page.locator("body").getAttribute("data-conversation")) ?? "";
    await page.locator("#consent summary").click();
    await page.locator("#purpose").fill("case review");
    await page.locator("#grant").click();
    await expect.poll(() => page.locator("#consent-result").getAttribute("data-consent")).toMatch(/^[0-9a-f]{32}$/);
    const consent = (await page.locator("#consent-result").getAttribute("data-consent")) ?? "";
    // The day of the consent's own record (as the notice names it), not today's: a consent
    // granted just before midnight UTC is of the day before the notice arrives.
    const issued = page.locator(`#consents li[data-consent="${consent}"]`);
    await expect.poll(() => issued.getAttribute("data-issued")).toMatch(/^\d+$/);
    const day = dayMonth(Number(await issued.getAttribute("data-issued")));

    const serving = ["g1", "g2"].map((n) =>
      spawn(bin("sealdesk"), ["--home", home(n), "trustee", "serve"], {
        env: { ...process.env, SEALDESK_RELAY: relay, SEALDESK_PASSPHRASE: "web tests only", SEALDESK_INSECURE_FAST_KDF: "1", NO_COLOR: "1" },
        stdio: "ignore",
      }),
    );
    try {
      await run("boss", ["transcript", "unlock", "--conversation", id, "--consent", consent]);
    } finally {
      await Promise.all(serving.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : (c.once("exit", r), c.kill("SIGTERM"))))));
    }
    // Two shares, two audit-log entries: one notice, naming both trustees.
    const notice = page.locator("#log li.notice");
    await expect.poll(() => notice.first().getAttribute("data-shares"), { timeout: 30_000 }).toBe("2");
    expect(await notice.count()).toBe(1);
    const text = (await notice.locator("p").textContent()) ?? "";
    expect(text).toMatch(new RegExp(`^globex opened epoch 0 of this chat under your consent of ${day}: released by 2 of 3 trustees \\((g1 and g2|g2 and g1); 2 needed\\)\\.$`));
    expect(text).not.toContain("(s)");
    // Still one after a reload (kept verdicts grouped the same way).
    await page.reload();
    await expect.poll(() => page.locator("#log li.line .text").allTextContents()).toEqual(["please look at my case"]);
    await expect.poll(() => notice.first().getAttribute("data-shares")).toBe("2");
    expect(await notice.count()).toBe(1);
    // Its consent is still named by its day (the record kept in this browser), not its id.
    await expect.poll(() => notice.locator("p").textContent()).toContain(`under your consent of ${day}:`);
    await page.screenshot({ path: join(shots, "widget-opening-2of3.png"), fullPage: true });
    expect(s.problems).toEqual([]);
    await page.close();
  });
});
