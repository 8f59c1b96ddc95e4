/**
 * The widget behind a relay too old to know the push requests it makes on every session
 * (PROTOCOL §13.5, the older-relay rule), in Chromium against the real relay: the page's
 * WebSocket is routed through Playwright, and a request the stand-in plays "too old" for
 * (`watch_agent_keys`, `watch_audit`) closes the connection with 4102 instead of reaching the
 * relay, as such a relay closes it. The widget connects again at once without it, never asks it
 * again while the page lives, and chats: the first message is sent (its session lost on the
 * way, not the message) and the agent's answer arrives. Neither a reload nor a second tab of
 * the profile asks it (the knowledge is kept in the origin's localStorage for an hour): one
 * connection per page load or tab, not three. A close with another code is a drop like any
 * other: the widget asks again on the next session.
 */
import { describe, expect, it } from "vitest";
import type { CborValue } from "@sealdesk/protocol";
import type { Page } from "playwright-core";
import { chromiumSuite, relayInTheMiddle, watchPage, type Frame, type Middle } from "../../client/test/chromium.js";

/** The variant name of a request body (`"watch_audit"`, `{ get_policy: {…} }` → "get_policy"). */
const variantOf = (v: CborValue | undefined): string | undefined =>
  typeof v === "string" ? v : v !== null && typeof v === "object" && !(v instanceof Uint8Array) && !Array.isArray(v) ? Object.keys(v)[0] : undefined;

/** The storage keys of what a relay showed it does not know (`relayKnowledgeKey`). */
const KNOWLEDGE = "sealdesk/relay-does-not-know/";

/** What the stand-in saw: the page's connections, and the requests of each kind it sent. */
interface Seen {
  middle: Middle;
  asked: Map<string, number>;
}

/**
 * Routes `page`'s relay WebSockets through a stand-in: a request `closes(kind, n)` says of (its
 * kind, the how-manyth of that kind) is not passed on; the connection is closed with the code
 * returned, both ways. Everything else passes through to the real relay.
 */
async function standIn(page: Page, closes: (kind: string, n: number) => number | null): Promise<Seen> {
  const asked = new Map<string, number>();
  const middle = await relayInTheMiddle(page, {
    toRelay: (frame, link) => {
      const kind = variantOf((frame.request as Frame | undefined)?.body);
      if (kind === undefined) return frame;
      const n = (asked.get(kind) ?? 0) + 1;
      asked.set(kind, n);
      const code = closes(kind, n);
      if (code === null) return frame;
      link.close(code, code === 4102 ? "malformed frame" : "");
      return [];
    },
  });
  return { middle, asked };
}

describe("the widget behind a relay that does not know the push requests (Chromium)", () => {
  const s = chromiumSuite("widget-older-relay-watch");
  const url = (): string => `${s.relay.origin}/?org=${s.org.org}&fp=${encodeURIComponent(s.org.fingerprint)}`;
  const lines = (page: Page): Promise<string[]> => page.locator("#log li.line .text").allTextContents();

  it("connects again at once without them, never asks them again, and chats both ways", async () => {
    const page = await s.browser.newPage();
    watchPage(page, s.problems);
    const seen = await standIn(page, (kind) => (kind === "watch_agent_keys" || kind === "watch_audit" ? 4102 : null));
    await page.goto(url());
    await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 20_000 }).toBe("online");
    await expect.poll(() => page.locator("#summary").textContent()).toContain("end-to-end encrypted");
    // A fresh account asks for no pushes before it begins.
    expect(seen.middle.links.length).toBe(1);

    // The first message begins the chat: its session is lost to watch_agent_keys, the next to
    // watch_audit, and the message goes on the third.
    await page.locator("#text").fill("hello from behind an old relay");
    await page.locator("#text").press("Enter");
    await expect.poll(() => lines(page), { timeout: 20_000 }).toEqual(["hello from behind an old relay"]);
    expect(seen.middle.links.length).toBe(3);
    expect(seen.asked.get("watch_agent_keys")).toBe(1);
    expect(seen.asked.get("watch_audit")).toBe(1);
    expect(await page.locator("#alert").isHidden()).toBe(true);

    const id = (await page.locator("body").getAttribute("data-conversation")) ?? "";
    expect(await s.org.agent(["history", "--conversation", id])).toContain("hello from behind an old relay");
    await s.org.agent(["send", "--conversation", id, "we hear you"]);
    await expect.poll(() => lines(page), { timeout: 20_000 }).toEqual(["hello from behind an old relay", "we hear you"]);
    await page.locator("#text").fill("and a second message");
    await page.locator("#text").press("Enter");
    await expect.poll(() => lines(page), { timeout: 20_000 }).toContain("and a second message");
    expect(seen.middle.links.length).toBe(3);

    // A connection lost later (the network): one more connection, and still not asked.
    const before = (await page.locator("#log li.line").count());
    seen.middle.latest().close(1001, "going away");
    await expect.poll(() => seen.middle.links.length, { timeout: 20_000 }).toBe(4);
    await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 20_000 }).toBe("online");
    await s.org.agent(["send", "--conversation", id, "still here"]);
    await expect.poll(() => lines(page), { timeout: 20_000 }).toContain("still here");
    expect(await page.locator("#log li.line").count()).toBe(before + 1);
    expect(seen.middle.links.length).toBe(4);
    expect(seen.asked.get("watch_agent_keys")).toBe(1);
    expect(seen.asked.get("watch_audit")).toBe(1);
    expect(await page.locator("#alert").isHidden()).toBe(true);

    // A reload: what the relay showed it does not know is kept for the origin (localStorage),
    // so the new page opens one connection and asks neither, and chats.
    const stored = await page.evaluate((prefix) => Object.keys(localStorage).filter((k) => k.startsWith(prefix)), KNOWLEDGE);
    expect(stored).toHaveLength(1);
    await page.reload();
    await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 20_000 }).toBe("online");
    await expect.poll(() => lines(page), { timeout: 20_000 }).toContain("still here");
    await s.org.agent(["send", "--conversation", id, "after the reload"]);
    await expect.poll(() => lines(page), { timeout: 20_000 }).toContain("after the reload");
    expect(seen.middle.links.length).toBe(5);
    expect(seen.asked.get("watch_agent_keys")).toBe(1);
    expect(seen.asked.get("watch_audit")).toBe(1);
    expect(await page.locator("#alert").isHidden()).toBe(true);

    // A second tab of the profile (a new page of the same context, the first still open): it
    // reads what the first learned from the origin's storage, so it too opens one connection,
    // not three, asks neither, and chats.
    const tab = await s.browser.newPage();
    watchPage(tab, s.problems);
    const tabSeen = await standIn(tab, (kind) => (kind === "watch_agent_keys" || kind === "watch_audit" ? 4102 : null));
    await tab.goto(url());
    await expect.poll(() => tab.locator("#conn").getAttribute("data-state"), { timeout: 20_000 }).toBe("online");
    await expect.poll(() => lines(tab), { timeout: 20_000 }).toContain("after the reload");
    await s.org.agent(["send", "--conversation", id, "to both tabs"]);
    await expect.poll(() => lines(tab), { timeout: 20_000 }).toContain("to both tabs");
    await expect.poll(() => lines(page), { timeout: 20_000 }).toContain("to both tabs");
    expect(tabSeen.middle.links.length).toBe(1);
    expect(tabSeen.asked.get("watch_agent_keys")).toBeUndefined();
    expect(tabSeen.asked.get("watch_audit")).toBeUndefined();
    expect(await tab.locator("#alert").isHidden()).toBe(true);
    await tab.close();
    await page.close();
    expect(s.problems).toEqual([]);
  });

  it("takes a close with another code as a drop: the next session asks again", async () => {
    // The same browser profile: the account and its conversation from the test above, with
    // what that test's relay showed it does not know forgotten (as once its hour is over).
    const page = await s.browser.newPage();
    watchPage(page, s.problems);
    await page.addInitScript((prefix) => {
      for (const k of Object.keys(localStorage)) if (k.startsWith(prefix)) localStorage.removeItem(k);
    }, KNOWLEDGE);
    // The first watch_agent_keys is met by a close with 1011 (an error of the relay's), not 4102.
    const seen = await standIn(page, (kind, n) => (kind === "watch_agent_keys" && n === 1 ? 1011 : null));
    await page.goto(url());
    await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 20_000 }).toBe("online");
    await expect.poll(() => seen.asked.get("watch_agent_keys"), { timeout: 20_000 }).toBe(2);
    await expect.poll(() => seen.asked.get("watch_audit"), { timeout: 20_000 }).toBe(1);
    expect(seen.middle.links.length).toBe(2);
    await expect.poll(() => lines(page), { timeout: 20_000 }).toContain("still here");
    await page.locator("#text").fill("after a plain drop");
    await page.locator("#text").press("Enter");
    await expect.poll(() => lines(page), { timeout: 20_000 }).toContain("after a plain drop");
    expect(seen.middle.links.length).toBe(2);
    expect(await page.locator("#alert").isHidden()).toBe(true);
    await page.close();
    expect(s.problems).toEqual([]);
  });
});
