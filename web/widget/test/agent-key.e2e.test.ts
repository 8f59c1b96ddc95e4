/**
 * The widget told of an agent key it cannot confirm (`agent_key_unconfirmed`), in Chromium
 * against the real relay serving web/dist (the org made with the CLI), the page's WebSocket
 * passing through a hostile relay (`relayInTheMiddle`): a forged `agent_key_changed` push naming a
 * key the org never certified for `alice`, and then, after the connection is cut, the session
 * check answered with a certificate whose signature was altered. Each time the page says so in
 * its alert (role="alert"), in words that say nothing changed, and the customer can still send:
 * the key pinned when the conversation opened is kept. Screenshot `widget-agent-key.png`.
 */
import { join } from "node:path";
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { IdentityKeys, cardToCbor, fromHex, issueCard } from "@sealdesk/protocol";
import { SHOTS, chromiumSuite, relayInTheMiddle, watchPage, type Frame } from "../../client/test/chromium.js";
import { random, now } from "../../client/test/customer-fixture.js";

describe("an agent key the widget cannot confirm (Chromium)", () => {
  const s = chromiumSuite("widget-agent-key");
  const lines = (page: Page): Promise<string[]> => page.locator("#log li.line .text").allTextContents();
  const sendLine = async (page: Page, text: string): Promise<void> => {
    await page.locator("#text").fill(text);
    await page.locator("#text").press("Enter");
    await expect.poll(() => lines(page), { timeout: 15_000 }).toContain(text);
  };

  it("shows a forged push and an unverifiable certificate as warnings, and sending stays allowed", async () => {
    const page = await s.browser.newPage();
    watchPage(page, s.problems);
    /** Whether the relay's `certificate` answers are altered (the signature's first byte). */
    let alter = false;
    let altered = 0;
    // The page's socket on the hostile relay: the latest connection (the page reconnects).
    const hostile = await relayInTheMiddle(page, {
      toPage: (frame) => {
        const cert = ((frame.response as Frame | undefined)?.body as Frame | undefined)?.certificate as Frame | undefined;
        if (!alter || cert === undefined || !(cert.signature instanceof Uint8Array)) return frame;
        const sig = cert.signature.slice();
        sig[0] = (sig[0] ?? 0) ^ 1;
        cert.signature = sig;
        altered += 1;
        return frame;
      },
    });
    await page.goto(`${s.relay.origin}/?org=${s.org.org}&fp=${encodeURIComponent(s.org.fingerprint)}`);
    await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 15_000 }).toBe("online");
    await sendLine(page, "hello, is this alice?");
    const id = (await page.locator("body").getAttribute("data-conversation")) ?? "";
    expect(await page.locator("#alert").isHidden()).toBe(true);

    // A forged push: a key for alice that the org never certified.
    const forged = issueCard(IdentityKeys.generate(random), "alice", "agent", now());
    hostile.latest().toPage({ push: { agent_key_changed: { org: s.org.org, agent: "alice", card: cardToCbor(forged), conversations: [fromHex(id)] } } });
    const alert = page.getByRole("alert");
    await expect.poll(() => alert.textContent(), { timeout: 15_000 }).toBe(
      `The relay said alice's key changed, but ${s.org.org}'s certificate does not confirm it (it still names the key you started with); nothing changed, and you can go on.`,
    );
    // The code stays out of the sentence, for support only.
    expect(await alert.getAttribute("data-code")).toBe("not_rekeyed");
    expect(await alert.isVisible()).toBe(true);
    await page.screenshot({ path: join(SHOTS, "widget-agent-key.png"), fullPage: true });
    // Nothing changed: the composer is open and a line goes out.
    expect(await page.locator("#send").isDisabled()).toBe(false);
    await sendLine(page, "thanks, carrying on");

    // The connection cut; the next session's check is answered with a certificate that does not verify.
    alter = true;
    hostile.latest().close();
    await expect.poll(() => alert.textContent(), { timeout: 30_000 }).toBe(
      `alice's key could not be checked against ${s.org.org}'s certificate (its signature does not verify); the key you started with is kept and you can go on. If this stays, ask ${s.org.org} through another channel.`,
    );
    expect(await alert.getAttribute("data-code")).toBe("bad_signature");
    expect(await alert.getAttribute("title")).toMatch(/^bad_signature: .*signature/);
    expect(await alert.textContent()).not.toContain("bad_signature");
    expect(altered).toBeGreaterThan(0);
    await expect.poll(() => page.locator("#conn").getAttribute("data-state")).toBe("online");
    expect(await page.locator("#send").isDisabled()).toBe(false);
    await page.screenshot({ path: join(SHOTS, "widget-agent-key-check.png"), fullPage: true });
    await sendLine(page, "still here after the reconnection");
    expect(await page.locator("#log li.line .text").allTextContents()).toEqual(["hello, is this alice?", "thanks, carrying on", "still here after the reconnection"]);
    expect(s.problems).toEqual([]);
    await page.close();
  });
});
