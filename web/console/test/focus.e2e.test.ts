/**
 * The console keeps the focus and the scroll position across a redraw, in Chromium against the
 * real relay serving web/dist. The list of conversations is drawn again on every event: a
 * conversation's button focused by the keyboard stays focused when a new message arrives in it
 * (its unread count changes, so its item is drawn anew), and the Enter pressed next opens it.
 * The log is drawn again on every event and every few seconds: scrolled back to read, it stays
 * where the agent left it when a message arrives elsewhere. Drawn with `replaceChildren` (and
 * scrolled to the end each time), both would be lost.
 */
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { chromiumSuite, cliCustomer } from "../../client/test/chromium.js";
import { cli } from "../../client/test/relay.js";
import { consolePage, customerWrites, texts } from "./console-page.js";

/** The conversation of the focused button of the list, or what is focused instead. */
const focusedConversation = (page: Page): Promise<string> =>
  page.evaluate(() => {
    const a = document.activeElement;
    return a?.closest<HTMLElement>("#list button")?.dataset.conversation ?? `not a conversation: ${a?.tagName ?? "nothing"}`;
  });

describe("the console keeps the focus and the scroll position across a redraw (Chromium)", () => {
  // Short enough that a dozen lines overflow the log.
  const s = chromiumSuite("console-focus", { viewport: { width: 1000, height: 560 } });

  it("keeps a focused conversation focused and the log's scroll position as messages arrive", async () => {
    const page = await consolePage(s);
    const erin = await customerWrites(s, page, "erin", "hello from erin");
    const fred = await cliCustomer(s.root, s.relay.url, s.org, "fred");
    await cli(fred.home, s.relay.url, ["send", "--conversation", fred.id, "hello from fred"]);
    const badge = page.locator(`#list button[data-conversation="${fred.id}"] .unread`);
    await expect.poll(() => badge.textContent(), { timeout: 30_000 }).toBe("1");

    // Lines enough to scroll, in erin's conversation (open); then scrolled back to the top.
    const mine: string[] = [];
    for (let i = 1; i <= 14; i++) {
      mine.push(`answer line ${i}`);
      await page.locator("#text").fill(mine[mine.length - 1] ?? "");
      await page.locator("#text").press("Enter");
      await expect.poll(() => texts(page)).toEqual(["hello from erin", ...mine]);
    }
    const overflow = await page.locator("#log").evaluate((l) => l.scrollHeight - l.clientHeight);
    expect(overflow).toBeGreaterThan(100);
    await page.locator("#log").evaluate((l) => {
      l.scrollTop = 0;
    });

    // The keyboard's focus on fred's conversation; then fred writes again.
    await page.locator(`#list button[data-conversation="${fred.id}"]`).focus();
    expect(await focusedConversation(page)).toBe(fred.id);
    await cli(fred.home, s.relay.url, ["send", "--conversation", fred.id, "are you there?"]);
    await expect.poll(() => badge.textContent(), { timeout: 30_000 }).toBe("2");
    expect(await focusedConversation(page)).toBe(fred.id);
    // The log of erin's conversation, drawn again with the list, stayed where the agent left it.
    expect(await page.evaluate(() => document.body.dataset.conversation)).toBe(erin.id);
    expect(await page.locator("#log").evaluate((l) => l.scrollTop)).toBe(0);

    // The Enter pressed next opens fred's conversation.
    await page.keyboard.press("Enter");
    await expect.poll(() => page.evaluate(() => document.body.dataset.conversation)).toBe(fred.id);
    await expect.poll(() => texts(page)).toEqual(["hello from fred", "are you there?"]);
    expect(s.problems).toEqual([]);
    await page.close();
  });
});
