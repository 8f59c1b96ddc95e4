/**
 * Issue 22 in Chromium: two tabs of the widget (one browser profile, one account, one IndexedDB
 * store) sending at once, against the real relay, with no race left to timing. The first tab's
 * `send` is held in the middle (`relayInTheMiddle`) after its counter was taken; the second
 * tab's send then waits on the page's real Web Lock (`navigator.locks.query()` shows it
 * pending under the widget's lock name, the first tab holding it) and puts nothing on the wire
 * until the first is answered. Released, both lines are stored in order, each once, with no
 * alert in either tab — the relay never saw the second tab's later counter before the first's,
 * so nothing is refused `counter_reused`. The Node suite (`client/test/tab-race.e2e.test.ts`)
 * covers the counters, the epoch and the agent's tabs with a faithful in-process lock; this one
 * shows the widget really passes the Web Lock and the browser really holds the other tab.
 */
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { chromiumSuite, relayInTheMiddle, watchPage, type Frame, type Link } from "../../client/test/chromium.js";
import { requestKind } from "../../client/test/tamper.js";

describe("two tabs of the widget sending at once (Chromium)", () => {
  const s = chromiumSuite("widget-send-tabs");
  const url = (): string => `${s.relay.origin}/?org=${s.org.org}&fp=${encodeURIComponent(s.org.fingerprint)}`;
  const lines = (page: Page): Promise<string[]> => page.locator("#log li.line .text").allTextContents();
  /** The widget's send lock, as `src/main.ts` names it. */
  const lockName = (): string => `sealdesk-send/${s.org.org}`;

  /** The page's Web Locks of the widget's name: how many held, how many asked for and waiting. */
  const locks = (page: Page): Promise<{ held: number; pending: number }> =>
    page.evaluate(async (name) => {
      const q = await navigator.locks.query();
      return { held: (q.held ?? []).filter((l) => l.name === name).length, pending: (q.pending ?? []).filter((l) => l.name === name).length };
    }, lockName());

  /** A tab of the profile on the widget, online, its `send` requests counted and, once armed, the next held. */
  async function tab(): Promise<{ page: Page; sends: () => number; holdNext: () => void; held: () => { frame: Frame; link: Link } | null }> {
    let sends = 0;
    let armed = false;
    let held: { frame: Frame; link: Link } | null = null;
    const page = await s.browser.newPage();
    watchPage(page, s.problems);
    await relayInTheMiddle(page, {
      toRelay: (frame, link) => {
        if (requestKind(frame) !== "send") return frame;
        sends++;
        if (!armed) return frame;
        armed = false;
        held = { frame, link };
        return [];
      },
    });
    await page.goto(url());
    await expect.poll(() => page.locator("#conn").getAttribute("data-state")).toBe("online");
    return { page, sends: () => sends, holdNext: () => void (armed = true), held: () => held };
  }

  /** Types `text` in `page`'s box and sends it. */
  async function say(page: Page, text: string): Promise<void> {
    await page.locator("#text").fill(text);
    await page.locator("#text").press("Enter");
  }

  it("the second tab waits on the Web Lock until the first is answered; both stored once, in order, no alert", async () => {
    const a = await tab();
    await say(a.page, "opening line");
    await expect.poll(() => lines(a.page)).toEqual(["opening line"]);
    const b = await tab();
    await expect.poll(() => lines(b.page)).toEqual(["opening line"]);

    a.holdNext();
    await say(a.page, "from tab A");
    await expect.poll(() => a.held() !== null).toBe(true);
    await say(b.page, "from tab B");
    // Tab A holds the lock while it waits for the relay's answer; tab B asked and waits.
    await expect.poll(() => locks(b.page)).toEqual({ held: 1, pending: 1 });
    expect(b.sends()).toBe(0);

    const held = a.held();
    held?.link.toRelay(held.frame);
    const all = ["opening line", "from tab A", "from tab B"];
    await expect.poll(() => lines(a.page)).toEqual(all);
    await expect.poll(() => lines(b.page)).toEqual(all);
    expect(b.sends()).toBe(1);
    await expect.poll(() => locks(b.page)).toEqual({ held: 0, pending: 0 });
    for (const p of [a.page, b.page]) expect(await p.locator("#alert").isHidden()).toBe(true);
    const id = (await a.page.locator("body").getAttribute("data-conversation")) ?? "";
    const agentSaw = await s.org.agent(["history", "--conversation", id]);
    for (const t of ["from tab A", "from tab B"]) expect(agentSaw.split(t).length - 1).toBe(1);
    expect(s.problems).toEqual([]);
    await a.page.close();
    await b.page.close();
  });
});
