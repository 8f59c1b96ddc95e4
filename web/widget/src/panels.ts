/**
 * The widget's side panels ("Who can read this chat", "Let the business read this chat", "Your
 * data") share one strip of bounded height (`.panels` in `widget.css`) that scrolls, so the
 * message log keeps its room however many are open. A panel the customer opens is scrolled to
 * the strip's top, so what it holds is in view rather than below the strip's edge.
 */

/** Wires the panels in `strip` (each a `details`). */
export function wirePanels(strip: HTMLElement): void {
  for (const d of Array.from(strip.querySelectorAll<HTMLDetailsElement>(":scope > details"))) {
    d.addEventListener("toggle", () => {
      if (d.open) strip.scrollTo({ top: Math.max(0, d.offsetTop - 4) });
    });
  }
}
