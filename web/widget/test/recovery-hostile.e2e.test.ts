/**
 * Recovery in the widget against a hostile relay, in Chromium (issue 22): the page's WebSocket
 * passes through `relayInTheMiddle`, which alters the relay's `recovery` answer — one byte of the
 * sealed keys flipped, then the nonce shortened. Each time "I have a recovery code" says in plain
 * words that the relay's copy was changed, and nothing is stored: a reload shows the same fresh
 * widget (its own key, no conversation, recovery still offered). With the relay honest again the
 * same name and code bring the account back, so the refusals were the tampering's. Then an `init`
 * code: a customer made with the CLI recovers in a fresh profile with the code `init` showed, and
 * writes on. Screenshot `widget-recover-tampered.png`.
 */
import { join } from "node:path";
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { SHOTS, chromiumSuite, launch, relayInTheMiddle, submitRecovery as recover, watchPage, type Frame } from "../../client/test/chromium.js";
import { cli } from "../../client/test/relay.js";

describe("recovery in the widget, hostile relay and init codes (Chromium)", () => {
  const s = chromiumSuite("widget-recovery-hostile", { viewport: { width: 420, height: 760 } });
  const url = (): string => `${s.relay.origin}/?org=${s.org.org}&fp=${encodeURIComponent(s.org.fingerprint)}`;
  const lines = (page: Page): Promise<string[]> => page.locator("#log li.line .text").allTextContents();
  const online = (page: Page): Promise<void> => expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 20_000 }).toBe("online");


  it("a recovery record the relay changed is refused in words, nothing is stored; the honest relay recovers", async () => {
    // A customer chats and makes a recovery code.
    const page = await s.browser.newPage();
    watchPage(page, s.problems);
    await page.goto(url());
    await online(page);
    await page.locator("#text").fill("where is my refund?");
    await page.locator("#text").press("Enter");
    await expect.poll(() => lines(page)).toEqual(["where is my refund?"]);
    const id = (await page.locator("body").getAttribute("data-conversation")) ?? "";
    const key = await page.locator("body").getAttribute("data-customer-key");
    const name = (await page.locator("#recovery-name").textContent()) ?? "";
    await page.locator("#recovery summary").click();
    await page.locator("#recovery-make").click();
    await expect.poll(() => page.locator("#recovery-status").getAttribute("data-outcome"), { timeout: 20_000 }).toBe("made");
    const code = (await page.locator("#recovery-code").textContent()) ?? "";
    await page.close();

    const fresh = await launch(join(s.root, "profile-hostile"));
    try {
      const p = await fresh.newPage();
      watchPage(p, s.problems);
      /** How the relay's `recovery` answers are altered, if at all. */
      let alter: ((record: Frame) => void) | null = null;
      let altered = 0;
      await relayInTheMiddle(p, {
        toPage: (frame) => {
          const record = ((frame.response as Frame | undefined)?.body as Frame | undefined)?.recovery as Frame | undefined;
          if (alter === null || record === undefined) return frame;
          alter(record);
          altered += 1;
          return frame;
        },
      });
      await p.goto(url());
      await online(p);
      const freshKey = await p.locator("body").getAttribute("data-customer-key");
      expect(freshKey).not.toBe(key);
      await p.locator("#recover summary").click();

      const tampered = `Not recovered: The relay's copy of “${name}” does not open as it should under this code: it was changed. Tell ${s.org.org} through another channel. Nothing was stored.`;
      // One byte of the sealed keys flipped.
      alter = (record) => {
        const sealed = record.sealed;
        if (sealed instanceof Uint8Array) sealed[5] = (sealed[5] ?? 0) ^ 1;
      };
      expect(await recover(p, name, code)).toBe("tampered");
      expect(await p.locator("#recover-status").textContent()).toBe(tampered);
      await p.screenshot({ path: join(SHOTS, "widget-recover-tampered.png"), fullPage: true });
      // The nonce shortened by a byte.
      alter = (record) => {
        if (record.nonce instanceof Uint8Array) record.nonce = record.nonce.slice(1);
      };
      expect(await recover(p, name, code)).toBe("tampered");
      expect(await p.locator("#recover-status").textContent()).toBe(tampered);
      expect(altered).toBe(2);

      // Nothing stored: a reload shows the same fresh widget, still offering recovery.
      alter = null;
      await p.reload();
      await online(p);
      expect(await p.locator("body").getAttribute("data-customer-key")).toBe(freshKey);
      expect((await p.locator("body").getAttribute("data-conversation")) ?? "").toBe("");
      expect(await p.locator("#log li.line").count()).toBe(0);
      expect(await p.locator("#recover").isVisible()).toBe(true);

      // The relay honest: the same name and code recover the account.
      await p.locator("#recover summary").click();
      await p.locator("#recover-name").fill(name);
      await p.locator("#recover-code").fill(code);
      await p.locator("#recover-go").click();
      await expect.poll(() => p.locator("body").getAttribute("data-customer-key"), { timeout: 20_000 }).toBe(key);
      await expect.poll(() => lines(p), { timeout: 20_000 }).toEqual(["where is my refund?"]);
      expect(await p.locator("body").getAttribute("data-conversation")).toBe(id);
    } finally {
      await fresh.close();
    }
    expect(s.problems).toEqual([]);
  });

  it("the code `sealdesk init` showed recovers a CLI customer in the widget", async () => {
    const home = join(s.root, "jane");
    const made = JSON.parse(await cli(home, s.relay.url, ["init", "--name", "jane", "--role", "customer", "--json"])) as { recovery_code: string };
    await cli(home, s.relay.url, ["register"]);
    await cli(home, s.relay.url, ["open", "--org", s.org.org, "--org-fingerprint", s.org.fingerprint]);
    const id = (JSON.parse(await cli(home, s.relay.url, ["conversations", "--json"])) as { conversations: { conversation: string }[] }).conversations[0]?.conversation ?? "";
    await cli(home, s.relay.url, ["send", "--conversation", id, "sent from my terminal"]);

    const fresh = await launch(join(s.root, "profile-init"));
    try {
      const p = await fresh.newPage();
      watchPage(p, s.problems);
      await p.goto(url());
      await online(p);
      await p.locator("#recover summary").click();
      // Another name with this code: refused, in words that cover both a wrong name and a wrong code.
      expect(await recover(p, "janet", made.recovery_code)).toBe("no_account");
      expect(await p.locator("#recover-status").textContent()).toBe(
        "Not recovered: The relay knows no account “janet” that this code opens: check the account name and the code (an account made in a browser is named web-…). Nothing was stored.",
      );
      await p.locator("#recover-name").fill("jane");
      await p.locator("#recover-code").fill(made.recovery_code.toLowerCase());
      await p.locator("#recover-go").click();
      await expect.poll(() => p.locator("body").getAttribute("data-conversation"), { timeout: 20_000 }).toBe(id);
      await expect.poll(() => lines(p), { timeout: 20_000 }).toEqual(["sent from my terminal"]);
      await online(p);
      await p.locator("#text").fill("and now from a browser");
      await p.locator("#text").press("Enter");
      await expect.poll(() => lines(p)).toContain("and now from a browser");
      expect(await s.org.agent(["history", "--conversation", id])).toContain("and now from a browser");
    } finally {
      await fresh.close();
    }
    expect(s.problems).toEqual([]);
  });
});
