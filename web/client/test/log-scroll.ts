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
