/**
 * "New messages below" in the console (Chromium against the real relay serving web/dist; issue
 * 23): an agent who scrolled up in a conversation to read is not moved when the customer writes —
 * the log stays where it was — and a button says there is more below. Pressed, it brings the log
 * to its end and goes, the focus in the answer; scrolling to the end by hand makes it go too.
 * At the end already, the log follows the new line and no button shows — also after the policy
 * opened above it made the log shorter (the agent did not scroll: the hint showed, the log stood).
 * What the agent sends — a message or a file — is shown as chat apps show it: the log goes to its
 * end from wherever the agent had scrolled, and no hint shows (it stayed up, the hint over the
 * agent's own words). Screenshots `console-own-send-600.png` and `-1400.png`.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { SHOTS, chromiumSuite } from "../../client/test/chromium.js";
import { fromEnd, hintGoneOnScroll, ownLastInSight, scrollUp } from "../../client/test/log-scroll.js";
import { cli } from "../../client/test/relay.js";
import { consolePage, customerWrites, texts } from "./console-page.js";

/** A customer's message long enough that a few of them overflow the log. */
const long = (n: number): string => `${n}: ${"the parcel came open and half of it is missing; ".repeat(6)}`;

describe("the new-messages hint in the console (Chromium)", () => {
  const s = chromiumSuite("console-new-below", { viewport: { width: 800, height: 600 } });

  it("keeps a scrolled-up log still and offers the way down", async () => {
    const page = await consolePage(s, false);
    const { home: rita, id } = await customerWrites(s, page, "rita", long(0));
    for (let n = 1; n < 5; n++) await cli(rita, s.relay.url, ["send", "--conversation", id, long(n)]);
    await expect.poll(async () => (await texts(page)).length, { timeout: 30_000 }).toBe(5);
    const hint = page.locator("#new-below");
    // At the end, the log followed the new lines: no hint.
    await expect.poll(() => fromEnd(page)).toBeLessThan(24);
    expect(await hint.isVisible()).toBe(false);
    // The policy opened above the log: the log is shorter, its end out of sight, but the agent
    // did not scroll away from it — a new line is followed, no hint.
    const before = await page.locator("#log").evaluate((l) => l.clientHeight);
    await page.locator("#policy summary").click();
    await expect.poll(() => page.locator("#log").evaluate((l) => l.clientHeight)).toBeLessThan(before);
    // Its end may already be back in sight: any redraw (a receipt, a presence change) takes a
    // following log to its end. Measuring "at the end" when drawing instead — the bug — would
    // leave it short of its end at that redraw and at the next line, and show the hint.
    await cli(rita, s.relay.url, ["send", "--conversation", id, "one more thing"]);
    await expect.poll(() => texts(page), { timeout: 30_000 }).toContain("one more thing");
    await expect.poll(() => fromEnd(page)).toBeLessThan(24);
    expect(await hint.isVisible()).toBe(false);
    await page.locator("#policy summary").click();

    // Scrolled up: a new message leaves the log where it was, and the hint shows.
    await scrollUp(page);
    expect(await fromEnd(page)).toBeGreaterThan(100);
    await cli(rita, s.relay.url, ["send", "--conversation", id, "are you there?"]);
    await expect.poll(() => texts(page), { timeout: 30_000 }).toContain("are you there?");
    await expect.poll(() => hint.isVisible()).toBe(true);
    expect(await page.locator("#log").evaluate((l) => l.scrollTop)).toBe(0);
    expect(await hint.getAttribute("aria-controls")).toBe("log");
    expect(await hint.textContent()).toBe("New messages below");

    // Pressed: the log at its end, the hint gone, the focus in the answer.
    await hint.click();
    await expect.poll(() => fromEnd(page)).toBeLessThan(24);
    expect(await hint.isVisible()).toBe(false);
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("text");

    // Up again, another message: the hint; scrolled down by hand, it goes.
    await scrollUp(page);
    await cli(rita, s.relay.url, ["send", "--conversation", id, "hello?"]);
    await expect.poll(() => texts(page), { timeout: 30_000 }).toContain("hello?");
    await expect.poll(() => hint.isVisible()).toBe(true);
    expect(await page.locator("#log").evaluate((l) => l.scrollTop)).toBe(0);
    expect(await hintGoneOnScroll(page)).toBe(true);
    expect(await hint.isVisible()).toBe(false);
    expect(s.problems).toEqual([]);
    await page.close();
  });
});

describe("the agent's own message in a scrolled-up console log (Chromium)", () => {
  const s = chromiumSuite("console-own-send", { viewport: { width: 800, height: 600 } });

  it("brings a scrolled-up log to its end when the agent sends a message or a file", async () => {
    const page = await consolePage(s, false);
    const { home: sam, id } = await customerWrites(s, page, "sam", long(0));
    for (let n = 1; n < 5; n++) await cli(sam, s.relay.url, ["send", "--conversation", id, long(n)]);
    await expect.poll(async () => (await texts(page)).length, { timeout: 30_000 }).toBe(5);
    const hint = page.locator("#new-below");
    for (const width of [600, 1400]) {
      await page.setViewportSize({ width, height: 600 });
      // Scrolled up, a customer's message keeps the log still and shows the hint (as above).
      await scrollUp(page);
      expect(await fromEnd(page)).toBeGreaterThan(100);
      await cli(sam, s.relay.url, ["send", "--conversation", id, `still there at ${width}?`]);
      await expect.poll(() => texts(page), { timeout: 30_000 }).toContain(`still there at ${width}?`);
      await expect.poll(() => hint.isVisible()).toBe(true);
      expect(await page.locator("#log").evaluate((l) => l.scrollTop)).toBe(0);
      // The agent answers from there: the log goes to its end, the answer in sight, no hint.
      await page.locator("#text").fill(`yes, looking at it (${width})`);
      await page.locator("#text").press("Enter");
      await expect.poll(() => texts(page), { timeout: 30_000 }).toContain(`yes, looking at it (${width})`);
      await expect.poll(() => fromEnd(page)).toBeLessThan(24);
      expect(await ownLastInSight(page)).toBe(true);
      expect(await hint.isVisible()).toBe(false);
      await page.screenshot({ path: join(SHOTS, `console-own-send-${width}.png`) });
    }

    // A file sent while scrolled up: the same, its line in sight.
    await scrollUp(page);
    expect(await fromEnd(page)).toBeGreaterThan(100);
    const path = join(s.root, "label.txt");
    writeFileSync(path, "label 8812");
    await page.locator("#file").setInputFiles(path);
    await expect.poll(() => page.locator("#upload-status").getAttribute("data-done"), { timeout: 30_000 }).toBe("true");
    await expect.poll(() => texts(page)).toContain("label.txt, 10 B");
    await expect.poll(() => fromEnd(page)).toBeLessThan(24);
    expect(await ownLastInSight(page)).toBe(true);
    expect(await hint.isVisible()).toBe(false);
    expect(s.problems).toEqual([]);
    await page.close();
  });
});
