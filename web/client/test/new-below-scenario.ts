/**
 * The "New messages below" scenarios (issue 23) the widget's and the console's Chromium suites
 * both run (`widget/test/new-below.e2e.test.ts`, `console/test/new-below.e2e.test.ts`): the same
 * steps and assertions against the two pages, which differ only in what `NewBelowApp` says —
 * who writes from the other side, how the log is made shorter, the window sizes, the names of
 * screenshots and files.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { expect } from "vitest";
import { SHOTS } from "./chromium.js";
import { fromEnd, hintGoneOnScroll, ownLastInSight, scrollUp } from "./log-scroll.js";

/** The texts of the log's message lines, in order. */
export const texts = (page: Page): Promise<string[]> => page.locator("#log li.line .text").allTextContents();

/** A page's part in the scenarios: its page, its conversation open with a log that overflows. */
export interface NewBelowApp {
  /** The page, its answer box `#text`, its log `#log` and the hint `#new-below`. */
  page: Page;
  /** Where a file sent in the scenario is written (the suite's temporary directory). */
  root: string;
  /** The suite's problems (console errors, failed requests), none at the end of a scenario. */
  problems: string[];
  /** The other side writes `text` in the conversation (the agent to the widget, the customer to the console). */
  peerSends(text: string): Promise<void>;
}

/** What `hintScenario` needs besides the page. */
export interface HintApp extends NewBelowApp {
  /**
   * Makes the log shorter, its end out of sight, without the reader scrolling (the widget's
   * frame made lower; the console's policy opened above the log); returns what undoes it.
   */
  shorten(): Promise<() => Promise<void>>;
  /**
   * Whether the log's end is out of sight once `shorten` returned: false where any redraw may
   * already have taken the following log to its end (the console, a receipt or a presence change).
   */
  endOutOfSight: boolean;
  /** The screenshot taken with the hint showing, if any (a file name under `SHOTS`). */
  hintShot?: string;
}

/**
 * A log at its end follows what comes, also once made shorter (`shorten`); scrolled up, a new
 * message leaves it where it was and the hint shows; pressed, the hint takes the log to its end
 * and goes, the focus in the answer box; scrolled down by hand, it goes too. Closes the page.
 */
export async function hintScenario(app: HintApp): Promise<void> {
  const { page } = app;
  const hint = page.locator("#new-below");
  // At the end, the log followed the new lines: no hint.
  await expect.poll(() => fromEnd(page)).toBeLessThan(24);
  expect(await hint.isVisible()).toBe(false);
  // Made shorter, its end out of sight, but the reader did not scroll away from it: a new line
  // is followed, no hint.
  const before = await page.locator("#log").evaluate((l) => l.clientHeight);
  const undo = await app.shorten();
  await expect.poll(() => page.locator("#log").evaluate((l) => l.clientHeight)).toBeLessThan(before);
  if (app.endOutOfSight) expect(await fromEnd(page)).toBeGreaterThan(24);
  await app.peerSends("one more thing");
  await expect.poll(() => texts(page), { timeout: 30_000 }).toContain("one more thing");
  await expect.poll(() => fromEnd(page)).toBeLessThan(24);
  expect(await hint.isVisible()).toBe(false);
  await undo();

  // Scrolled up: a new message leaves the log where it was, and the hint shows.
  await scrollUp(page);
  expect(await fromEnd(page)).toBeGreaterThan(100);
  await app.peerSends("are you there?");
  await expect.poll(() => texts(page), { timeout: 30_000 }).toContain("are you there?");
  await expect.poll(() => hint.isVisible()).toBe(true);
  expect(await page.locator("#log").evaluate((l) => l.scrollTop)).toBe(0);
  expect(await hint.getAttribute("aria-controls")).toBe("log");
  expect(await hint.textContent()).toBe("New messages below");
  if (app.hintShot !== undefined) await page.screenshot({ path: join(SHOTS, app.hintShot) });

  // Pressed: the log at its end, the hint gone, the focus in the answer box.
  await hint.click();
  await expect.poll(() => fromEnd(page)).toBeLessThan(24);
  expect(await hint.isVisible()).toBe(false);
  expect(await page.evaluate(() => document.activeElement?.id)).toBe("text");

  // Up again, another message: the hint; scrolled down by hand, it goes.
  await scrollUp(page);
  await app.peerSends("hello?");
  await expect.poll(() => texts(page), { timeout: 30_000 }).toContain("hello?");
  await expect.poll(() => hint.isVisible()).toBe(true);
  expect(await page.locator("#log").evaluate((l) => l.scrollTop)).toBe(0);
  expect(await hintGoneOnScroll(page)).toBe(true);
  expect(await hint.isVisible()).toBe(false);
  expect(app.problems).toEqual([]);
  await page.close();
}

/** What `ownSendScenario` needs besides the page. */
export interface OwnSendApp extends NewBelowApp {
  /** The window sizes the scenario runs at, one after the other. */
  sizes: { width: number; height: number }[];
  /** What the other side writes at `width`, and what the reader answers. */
  words(width: number): { peer: string; own: string };
  /** The screenshot taken after the answer at `width` (a file name under `SHOTS`). */
  shot(width: number): string;
  /** The file sent: its name and contents. */
  file: { name: string; contents: string };
  /** Waits until the page shows the file sent (its line in the log). */
  fileShown(): Promise<void>;
}

/**
 * At each size, scrolled up, the other side's message keeps the log still and shows the hint;
 * the reader's own answer from there takes the log to its end, the answer in sight and no hint.
 * A file sent while scrolled up does the same. Closes the page.
 */
export async function ownSendScenario(app: OwnSendApp): Promise<void> {
  const { page } = app;
  const hint = page.locator("#new-below");
  for (const size of app.sizes) {
    await page.setViewportSize(size);
    const { peer, own } = app.words(size.width);
    // Scrolled up, the other side's message keeps the log still and shows the hint.
    await scrollUp(page);
    expect(await fromEnd(page)).toBeGreaterThan(100);
    await app.peerSends(peer);
    await expect.poll(() => texts(page), { timeout: 30_000 }).toContain(peer);
    await expect.poll(() => hint.isVisible()).toBe(true);
    expect(await page.locator("#log").evaluate((l) => l.scrollTop)).toBe(0);
    // The reader answers from there: the log goes to its end, the answer in sight, no hint.
    await page.locator("#text").fill(own);
    await page.locator("#text").press("Enter");
    await expect.poll(() => texts(page), { timeout: 30_000 }).toContain(own);
    await expect.poll(() => fromEnd(page)).toBeLessThan(24);
    expect(await ownLastInSight(page)).toBe(true);
    expect(await hint.isVisible()).toBe(false);
    await page.screenshot({ path: join(SHOTS, app.shot(size.width)) });
  }

  // A file sent while scrolled up: the same, its line in sight.
  await scrollUp(page);
  expect(await fromEnd(page)).toBeGreaterThan(100);
  const path = join(app.root, app.file.name);
  writeFileSync(path, app.file.contents);
  await page.locator("#file").setInputFiles(path);
  await app.fileShown();
  await expect.poll(() => fromEnd(page)).toBeLessThan(24);
  expect(await ownLastInSight(page)).toBe(true);
  expect(await hint.isVisible()).toBe(false);
  expect(app.problems).toEqual([]);
  await page.close();
}
