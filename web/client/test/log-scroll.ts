/**
 * Test support for a message log with "New messages below" (`@sealdesk/client/ui` `newBelow`),
 * shared by the widget's and the console's Chromium suites: where the log `#log` stands, and the
 * hint `#new-below` read at the instant the log's scroll event comes.
 */
import type { Page } from "playwright-core";

/** How far the log is from its end, in pixels. */
export const fromEnd = (page: Page): Promise<number> => page.locator("#log").evaluate((l) => l.scrollHeight - l.scrollTop - l.clientHeight);

/** Scrolls the log to its top. */
export const scrollUp = (page: Page): Promise<void> =>
  page.locator("#log").evaluate((l) => {
    l.scrollTop = 0;
  });

/** Whether the log's last line is this page's own (`mine`) and wholly in the log's sight. */
export const ownLastInSight = (page: Page): Promise<boolean> =>
  page.locator("#log").evaluate((l) => {
    const last = Array.from(l.querySelectorAll("li.line")).at(-1);
    if (last === undefined || !last.classList.contains("mine")) return false;
    const box = l.getBoundingClientRect();
    const r = last.getBoundingClientRect();
    return r.top >= box.top - 1 && r.bottom <= box.bottom + 1;
  });

/**
 * Scrolls the log to its end by hand and tells whether the hint was gone when the scroll event
 * came (this listener runs after the page's, added first): gone then, not at the next redraw.
 */
export const hintGoneOnScroll = (page: Page): Promise<boolean> =>
  page.locator("#log").evaluate(
    (l) =>
      new Promise<boolean>((resolve) => {
        l.addEventListener("scroll", () => resolve(document.getElementById("new-below")?.hidden ?? false), { once: true });
        l.scrollTop = l.scrollHeight;
      }),
  );

/** Where the log stands, told by the line at its top: that line's `data-seq` and its distance, in pixels, below the log's top edge (negative: partly scrolled past). */
export interface Anchor {
  seq: string;
  offset: number;
}

/** The log's first line (`li.line`) whose foot is below the log's top edge, and where it is (`Anchor`); null while the log has no box (hidden). */
export const anchorOf = (page: Page): Promise<Anchor | null> =>
  page.locator("#log").evaluate((l) => {
    const box = l.getBoundingClientRect();
    if (box.height === 0) return null;
    for (const li of Array.from(l.querySelectorAll<HTMLElement>("li.line"))) {
      const r = li.getBoundingClientRect();
      if (r.bottom > box.top + 1) return { seq: li.dataset.seq ?? "", offset: Math.round(r.top - box.top) };
    }
    return null;
  });

/**
 * Whether `now` is the place `was`: the same line at the log's top, within a pixel of where it
 * stood. A scroll position is whole pixels, and a line redrawn to a height that is not (a
 * notice's wrapped text) moves what follows it by a fraction: put back by the scroll position,
 * an item stands within half a pixel of its place, a pixel once each offset is rounded.
 */
export const samePlace = (now: Anchor | null, was: Anchor | null): boolean => now !== null && was !== null && now.seq === was.seq && Math.abs(now.offset - was.offset) <= 1;

/**
 * Scrolls the log to `part` (0 its top, 1 its end) of the way down by hand, and resolves once
 * its scroll event came (the page's listener, added first, has run).
 */
export const scrollPart = (page: Page, part: number): Promise<void> =>
  page.locator("#log").evaluate(
    (l, p) =>
      new Promise<void>((resolve) => {
        const to = Math.round((l.scrollHeight - l.clientHeight) * p);
        if (Math.abs(l.scrollTop - to) < 1) return resolve();
        l.addEventListener("scroll", () => resolve(), { once: true });
        l.scrollTop = to;
      }),
    part,
  );
