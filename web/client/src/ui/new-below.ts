/**
 * "New messages below": a message log that follows its newest item only while the person
 * reading it left it at its end, as chat apps do. Scrolled up to read, the log stays where it
 * is when an item comes at its end, and a button over the log's foot says there is more below;
 * pressed, it takes the log to its end and goes (the focus to the page's answer box), and
 * scrolling to the end by hand makes it go too. What the person sends is shown wherever they
 * had scrolled: the page calls `follow()` before drawing it. The widget and the console use it
 * alike (issue 23).
 *
 * Whether the log follows is what its own scroll events last said, not measured when drawing:
 * a panel or warning opened above the log shortens it, its end out of sight, without the person
 * having scrolled anywhere — the log still follows. A log that stands higher than it stood at
 * its last scroll event was scrolled up since, its event still to come: it no longer follows.
 *
 * A log that steps aside (`display: none`: the widget's consent or data panel takes its place
 * in a small frame) has no box to scroll. Back, a log that was following is taken to its end, so
 * what came meanwhile is in sight — not left below its edge with no button (its end was drawn
 * while it had no box to scroll). A log scrolled up is put back with the item the reader had at
 * its top at the same place, with the button if items came meanwhile: Chromium gives the log
 * back at the scroll position it had, but an item above the reader that grew meanwhile (a
 * notice redrawn) would push what they read down, no scroll anchoring running without a box.
 */

/** The button's words. */
export const NEW_BELOW = "New messages below";

/** How near its end, in pixels, a log counts as at its end. */
const AT_END = 24;

/** A log wired with its "New messages below" button (`newBelow`). */
export interface NewBelow {
  /** Makes the log follow its end again, from the next `drawn` on (the person's own message, another conversation opened). */
  follow(): void;
  /**
   * Says that the log's items were drawn: a following log is taken to its end; otherwise, if
   * its last item is not the one last drawn (news at the end, not a line changed or put in
   * before), the button shows.
   */
  drawn(): void;
}

/**
 * Wires `button` (hidden until needed, placed over the log's foot by the page's styles: `.new-below`
 * in `base.css`) to `log`: its words, `aria-controls`, the log's scroll events and the button's
 * click, after which `focusAfter` gives the focus somewhere useful (the button it was on goes).
 * An item is told apart from the one before it by its `data-key`, else its `data-seq`.
 */
export function newBelow(log: HTMLElement, button: HTMLButtonElement, focusAfter: () => void): NewBelow {
  let following = true;
  // Where the log stood when `following` was last decided (taken to its end, or a scroll
  // event): a scroll whose event has not come yet shows as the log standing higher than that.
  let seenTop = log.scrollTop;
  let last: string | null = null;
  button.textContent = NEW_BELOW;
  button.type = "button";
  if (log.id !== "") button.setAttribute("aria-controls", log.id);
  button.hidden = true;
  const atEnd = (): boolean => log.scrollHeight - log.scrollTop - log.clientHeight < AT_END;
  // Whether the log has a box (not `display: none`, itself or an ancestor): without one, its
  // scroll position reads 0 and its end is everywhere.
  const boxed = (): boolean => log.getClientRects().length > 0;
  const toEnd = (): void => {
    log.scrollTop = log.scrollHeight;
    seenTop = log.scrollTop;
    following = true;
    button.hidden = true;
  };
  // Where the reader is: the item at the log's top edge and how far below that edge it stands,
  // kept at each scroll event and drawing while the log has a box, to put the log back by it
  // once the log had none (the browser's scroll anchoring keeps it in place only in sight).
  // Only a log scrolled up needs it (a following one goes to its end): a following log is not
  // measured on each drawing. Every change of `following` to false is followed by a `keepPlace`.
  let place: { item: Element; offset: number } | null = null;
  const keepPlace = (): void => {
    if (!following && boxed()) place = topItem(log);
  };
  // Back from `display: none` (the observer is told of the box's size going from none to some):
  // a following log to its end; a log scrolled up with the item it showed at the same place.
  // Only then: a log made shorter while in sight stays where it is.
  let away = !boxed();
  if (typeof ResizeObserver !== "undefined") {
    new ResizeObserver(() => {
      const was = away;
      away = !boxed();
      if (!was || away) return;
      if (following) toEnd();
      else if (place !== null && place.item.isConnected) log.scrollTop += offsetOf(log, place.item) - place.offset;
    }).observe(log);
  }
  log.addEventListener("scroll", () => {
    following = atEnd();
    seenTop = log.scrollTop;
    if (following) button.hidden = true;
    keepPlace();
  });
  button.addEventListener("click", () => {
    toEnd();
    focusAfter();
  });
  return {
    follow() {
      following = true;
    },
    drawn() {
      const item = log.lastElementChild;
      const key = item instanceof HTMLElement ? (item.dataset.key ?? item.dataset.seq ?? null) : null;
      // Scrolled up a moment ago, its scroll event not yet come: not following any more (else
      // a redraw in that moment would take the person back to the end). A log made shorter by
      // something opened above it stands where it stood, and still follows.
      if (following && log.scrollTop < seenTop - 1) following = atEnd();
      if (following) toEnd();
      else if (key !== last) button.hidden = false;
      last = key;
      keepPlace();
    },
  };
}

/** How far below `log`'s top edge `item` stands, in pixels (negative: partly scrolled past). */
function offsetOf(log: HTMLElement, item: Element): number {
  return item.getBoundingClientRect().top - log.getBoundingClientRect().top;
}

/**
 * The first of `log`'s items whose foot is below its top edge, with its offset (`offsetOf`);
 * null for an empty log. The items stand in order down the log: found by halving, a few
 * measurements however long the log.
 */
function topItem(log: HTMLElement): { item: Element; offset: number } | null {
  const items = log.children;
  const edge = log.getBoundingClientRect().top;
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const at = items[mid];
    if (at !== undefined && at.getBoundingClientRect().bottom <= edge + 1) lo = mid + 1;
    else hi = mid;
  }
  const item = items[Math.min(lo, items.length - 1)];
  return item === undefined ? null : { item, offset: offsetOf(log, item) };
}
