/**
 * The widget on a relay older than PROTOCOL §13.7's public policy, in Chromium against the real
 * relay: the page's WebSocket is routed through the test (`relayInTheMiddle`), and `get_policy` on a session that
 * has not registered is answered `not_registered`, as such a relay answers. The widget then says
 * how to begin, registers when the message box is focused, shows the policy, and sends. A relay
 * that serves the policy is `widget.e2e.test.ts`. Screenshot `widget-older-relay.png`.
 */
import { join } from "node:path";
import type { CborValue } from "@sealdesk/protocol";
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { SHOTS as shots, watchPage, chromiumSuite, relayInTheMiddle, visitorOnRelay, widgetVisitor, type Frame } from "../../client/test/chromium.js";
import { idleClock, staysUnregistered } from "./idle-visitor.js";

/** The variant name of a request body (`{ get_policy: {…} }` → "get_policy"). */
const variantOf = (v: CborValue | undefined): string | undefined =>
  typeof v === "string" ? v : v !== null && typeof v === "object" && !(v instanceof Uint8Array) && !Array.isArray(v) ? Object.keys(v)[0] : undefined;

/**
 * Routes `page`'s relay WebSockets so that an unregistered session's `get_policy` is refused
 * `not_registered` (the real relay's answer replaced); returns how many were refused so far.
 */
async function olderRelay(page: Page): Promise<() => number> {
  let refused = 0;
  // Each connection is a session of its own: registered or not.
  await relayInTheMiddle(page, () => {
    let registered = false;
    const unregisteredPolicy = new Set<number>();
    return {
      toRelay: (frame) => {
        const q = frame.request as Frame | undefined;
        const kind = variantOf(q?.body);
        if (kind === "register") registered = true;
        else if (kind === "get_policy" && !registered) unregisteredPolicy.add(q?.id as number);
        return frame;
      },
      toPage: (frame) => {
        const r = frame.response as Frame | undefined;
        if (r === undefined || !unregisteredPolicy.delete(r.id as number)) return frame;
        r.body = { error: { code: "not_registered", message: "register this card first" } };
        refused += 1;
        return frame;
      },
    };
  });
  return () => refused;
}

describe("the widget on a relay that shows the policy to registered accounts only (Chromium)", () => {
  const s = chromiumSuite("widget-older-relay");

  it("says to click in the message box, registers then, shows the policy and sends", async () => {
    const page = await s.browser.newPage();
    // Its timers on Playwright's clock, for the idle time `staysUnregistered` runs.
    await idleClock(page);
    watchPage(page, s.problems, false);
    const refused = await olderRelay(page);
    await page.goto(`${s.relay.origin}/?org=${s.org.org}&fp=${encodeURIComponent(s.org.fingerprint)}`);
    await expect.poll(() => page.locator("#conn").getAttribute("data-state")).toBe("online");
    expect(refused()).toBe(1);
    expect(await page.locator("#summary").textContent()).toContain("Click in the message box");
    expect(await page.locator("#send").isDisabled()).toBe(true);
    expect(await page.locator("#alert").isHidden()).toBe(true);
    // Not begun: the relay's directory (asked from here, not through the page) holds no card of
    // the visitor's account.
    const visitor = await widgetVisitor(page);
    expect(await visitorOnRelay(s.relay.url, visitor)).toBe(false);
    // Nor once the widget is done starting, nor while the visitor stays idle (`staysUnregistered`).
    await staysUnregistered(page, s.relay.url);

    await page.locator("#text").click();
    await expect.poll(() => page.locator("#summary").textContent()).toContain("end-to-end encrypted");
    // Begun by the focus: registered (this relay shows the policy to registered accounts only).
    expect(await visitorOnRelay(s.relay.url, visitor)).toBe(true);
    expect(await page.locator("#fingerprint").textContent()).toBe(s.org.fingerprint);
    expect(await page.locator("#send").isDisabled()).toBe(false);
    await page.screenshot({ path: join(shots, "widget-older-relay.png") });

    await page.locator("#text").fill("hello from behind an older relay");
    await page.locator("#text").press("Enter");
    await expect.poll(() => page.locator("#log li.line .text").allTextContents()).toEqual(["hello from behind an older relay"]);
    const id = (await page.locator("body").getAttribute("data-conversation")) ?? "";
    expect(await s.org.agent(["history", "--conversation", id])).toContain("hello from behind an older relay");
    expect(refused()).toBe(1);
    expect(await page.locator("#alert").isHidden()).toBe(true);
    expect(s.problems).toEqual([]);
  });
});
