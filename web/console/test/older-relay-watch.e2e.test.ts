/**
 * The agent console behind a relay too old to know `watch_audit` (PROTOCOL §13.5, the
 * older-relay rule), in Chromium against the real relay: the page's WebSocket is routed through
 * Playwright, and `watch_audit` closes the connection with 4102 instead of reaching the relay,
 * as such a relay closes it. The console loses that one connection, connects again at once
 * without the request, never asks it again while the page lives, and works: a customer's line
 * arrives, the agent answers. A reload does not ask it either (what the relay showed it does not
 * know is kept in the origin's localStorage for an hour, `RelayKnowledge`): one connection per
 * page load, as the widget's suite checks for the widget (and for a second tab).
 */
import { describe, expect, it } from "vitest";
import { chromiumSuite, relayInTheMiddle, unlockConsole, watchPage, WIDE, type Frame } from "../../client/test/chromium.js";
import { cli } from "../../client/test/relay.js";
import { customerWrites, selectConversation, texts } from "./console-page.js";

describe("the console behind a relay that does not know watch_audit (Chromium)", () => {
  const s = chromiumSuite("console-older-relay-watch", { viewport: WIDE });

  it("loses one connection, is never asked again, not after a reload either, and chats", async () => {
    const page = await s.browser.newPage();
    watchPage(page, s.problems);
    let asked = 0;
    const middle = await relayInTheMiddle(page, {
      toRelay: (frame, link) => {
        if ((frame.request as Frame | undefined)?.body !== "watch_audit") return frame;
        asked += 1;
        link.close(4102, "malformed frame");
        return [];
      },
    });
    await unlockConsole(page, s.relay.origin, s.org.agentHome);
    expect(middle.links.length).toBe(2);
    expect(asked).toBe(1);

    const customer = await customerWrites(s, page, "rita", "is anyone there");
    await page.locator("#text").fill("yes, how can I help");
    await page.locator("#text").press("Enter");
    await expect.poll(() => texts(page), { timeout: 20_000 }).toEqual(["is anyone there", "yes, how can I help"]);
    expect(await cli(customer.home, s.relay.url, ["history", "--conversation", customer.id])).toContain("yes, how can I help");

    // A drop later: one more connection, and still not asked.
    middle.latest().close(1001, "going away");
    await expect.poll(() => middle.links.length, { timeout: 20_000 }).toBe(3);
    await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 20_000 }).toBe("online");
    await cli(customer.home, s.relay.url, ["send", "--conversation", customer.id, "thanks"]);
    await expect.poll(() => texts(page), { timeout: 20_000 }).toContain("thanks");
    expect(asked).toBe(1);
    expect(middle.links.length).toBe(3);

    // A reload: the agent's keys are in IndexedDB (no unlock again) and what the relay showed it
    // does not know in localStorage, so the new page opens one connection, not the two of a
    // first load, asks nothing, and chats.
    const stored = await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith("sealdesk/relay-does-not-know/")));
    expect(stored).toHaveLength(1);
    await page.reload();
    await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 20_000 }).toBe("online");
    await selectConversation(page, customer.id);
    await expect.poll(() => texts(page), { timeout: 20_000 }).toContain("thanks");
    await cli(customer.home, s.relay.url, ["send", "--conversation", customer.id, "after the reload"]);
    await expect.poll(() => texts(page), { timeout: 20_000 }).toContain("after the reload");
    await page.locator("#text").fill("still with you");
    await page.locator("#text").press("Enter");
    await expect.poll(() => texts(page), { timeout: 20_000 }).toContain("still with you");
    expect(await cli(customer.home, s.relay.url, ["history", "--conversation", customer.id])).toContain("still with you");
    expect(middle.links.length).toBe(4);
    expect(asked).toBe(1);
    expect(await page.locator("#alert").isHidden()).toBe(true);
    expect(s.problems).toEqual([]);
  });
});
