/**
 * The widget's side panels ("Who can read this chat", "Let the business read this chat", "Your
 * data") share one strip of bounded height (`.panels` in `widget.css`) that scrolls, so the
 * message log keeps its room however many are open. A panel the customer opens is scrolled to
 * the strip's top, so what it holds is in view rather than below the strip's edge.
 *
 * In a small frame (`widget.css`'s narrow layout: the embed's default 384 × 576, a 360 px
 * phone) a quarter of the height is too little for a form: an open consent or data panel
 * (`TAKEOVER`) takes the log's place instead, with a "Back to the chat" button at its top (and
 * Escape) that closes it and gives the focus back to where it was when the panel opened.
 */

/** The panels that take the log's place in a small frame (their forms need the room). */
export const TAKEOVER = ["consent", "your-data"] as const;

/** Wires the panels in `strip` (each a `details`). */
export function wirePanels(strip: HTMLElement): void {
  for (const d of Array.from(strip.querySelectorAll<HTMLDetailsElement>(":scope > details"))) {
    const back = (TAKEOVER as readonly string[]).includes(d.id) ? backButton(d) : null;
    d.addEventListener("toggle", () => {
      if (d.open) strip.scrollTo({ top: Math.max(0, d.offsetTop - 4) });
    });
    if (back !== null) wireBack(d, back);
  }
}

/** The panel's "Back to the chat" button, right after its summary (shown by the narrow layout only). */
function backButton(d: HTMLDetailsElement): HTMLButtonElement {
  d.dataset.takeover = "";
  const b = document.createElement("button");
  b.type = "button";
  b.className = "back";
  b.textContent = "← Back to the chat";
  d.querySelector(":scope > summary")?.after(b);
  return b;
}

/** Back closes the panel and gives the focus back to where it was when the panel opened. */
function wireBack(d: HTMLDetailsElement, back: HTMLButtonElement): void {
  const summary = d.querySelector<HTMLElement>(":scope > summary");
  let before: HTMLElement | null = null;
  d.addEventListener("toggle", () => {
    if (!d.open) return;
    const a = document.activeElement;
    before = a instanceof HTMLElement && a !== document.body && !d.contains(a) ? a : summary;
  });
  const close = (): void => {
    d.open = false;
    const to = before !== null && before.isConnected ? before : summary;
    to?.focus();
  };
  back.addEventListener("click", close);
  // Escape does the same while the panel has the log's place (its Back button shown).
  d.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && back.offsetParent !== null) {
      ev.preventDefault();
      close();
    }
  });
}
