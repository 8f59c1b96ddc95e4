/**
 * Issue 20 in Chromium: the widget's browser profile restored from an old copy (its IndexedDB
 * store, counters included, from before two sends), against the real relay. The relay's history
 * pages are made to leave the two later messages out (`relayInTheMiddle`), as if the relay no
 * longer had them, so the store cannot learn their counters: its next send is refused
 * `counter_reused`, and the customer opens a new epoch and sends there once — the line shows, no
 * alert, the agent reads it once. Before, the widget showed "Not sent" on every send, forever.
 * The Node suite (`client/test/store-restore.e2e.test.ts`) covers the counters, the read before
 * the first counter and the agent's side.
 */
import { cpSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { chromiumSuite, launch, relayInTheMiddle, watchPage, type Frame } from "../../client/test/chromium.js";
import { times } from "../../client/test/relay.js";
import { sendHeader } from "../../client/test/tamper.js";
import { page as historyPage } from "../../client/test/withhold.js";

describe("the widget's store restored from an old copy (Chromium)", () => {
  const s = chromiumSuite("widget-store-restore");
  const url = (): string => `${s.relay.origin}/?org=${s.org.org}&fp=${encodeURIComponent(s.org.fingerprint)}`;
  const lines = (page: Page): Promise<string[]> => page.locator("#log li.line .text").allTextContents();

  /** The widget in the profile at `profile`, online; its history pages leave out the items in `hidden`; its sends as `epoch/counter`. */
  async function widget(profile: string, hidden: Set<number> = new Set()): Promise<{ browser: BrowserContext; page: Page; sent: string[] }> {
    const browser = await launch(profile);
    const page = await browser.newPage();
    watchPage(page, s.problems);
    const sent: string[] = [];
    await relayInTheMiddle(page, {
      toRelay: (frame) => {
        const header = sendHeader(frame);
        if (header !== undefined) sent.push(`${String(header.epoch)}/${String(header.counter)}`);
        return frame;
      },
      toPage: (frame) => {
        const items = historyPage(frame);
        if (items !== undefined) items.items = (items.items as Frame[]).filter((it) => !hidden.has(Number(it.seq)));
        return frame;
      },
    });
    await page.goto(url());
    await expect.poll(() => page.locator("#conn").getAttribute("data-state")).toBe("online");
    return { browser, page, sent };
  }

  /** Types `text` in the box, sends it, and waits for its line. */
  async function say(page: Page, text: string): Promise<void> {
    await page.locator("#text").fill(text);
    await page.locator("#text").press("Enter");
    await expect.poll(() => lines(page), { timeout: 20_000 }).toContain(text);
  }

  it("a send after the restore goes in a new epoch: the line shows, no alert, the agent reads it once", async () => {
    const profile = join(s.root, "restored-profile");
    const copy = join(s.root, "profile-copy");
    const first = await widget(profile);
    await say(first.page, "one");
    const id = (await first.page.locator("body").getAttribute("data-conversation")) ?? "";
    await first.browser.close();
    cpSync(profile, copy, { recursive: true });

    const second = await widget(profile);
    await expect.poll(() => lines(second.page)).toEqual(["one"]);
    await say(second.page, "two");
    await say(second.page, "three");
    const later = new Set((await second.page.locator("#log li.line").evaluateAll((els) => els.map((e) => Number((e as HTMLElement).dataset.seq)))).slice(1));
    expect(second.sent).toEqual(["0/1", "0/2"]);
    await second.browser.close();

    rmSync(profile, { recursive: true, force: true });
    cpSync(copy, profile, { recursive: true });
    const restored = await widget(profile, later);
    await expect.poll(() => lines(restored.page)).toEqual(["one"]);
    await say(restored.page, "four");
    // Counter 1 of epoch 0 refused (the relay had it), then counter 0 of the epoch opened for it.
    await expect.poll(() => restored.page.locator("#text").inputValue()).toBe("");
    expect(restored.sent).toEqual(["0/1", "1/0"]);
    expect(await restored.page.locator("#alert").isHidden()).toBe(true);
    const agentSaw = await s.org.agent(["history", "--conversation", id]);
    expect(times(agentSaw, "four")).toBe(1);
    await restored.browser.close();
    expect(s.problems).toEqual([]);
  });
});
