/**
 * The widget's live signs: the agent's "typing…" (an `aria-live` status line), the customer's
 * own typing sent as it types (throttled in `@sealdesk/client`, never stored by the relay), read
 * receipts sent up to what the customer saw while the page is visible, and the marks on the
 * customer's own lines — sent (stored by the relay), delivered (the agent's device has it),
 * read (the agent's end-to-end read receipt).
 */
import type { Customer } from "@sealdesk/client";

/** The mark of the customer's own line `seq`: "read", "delivered" or "sent". */
export function markOf(seq: number, customer: Customer): "read" | "delivered" | "sent" {
  if (seq <= customer.readUpTo()) return "read";
  if (seq <= customer.deliveredUpTo()) return "delivered";
  return "sent";
}

/** Writes the marks of the customer's own lines (`rows`: the log's items by sequence number). */
export function showMarks(rows: ReadonlyMap<number, HTMLElement>, customer: Customer): void {
  for (const [seq, li] of rows) {
    const mark = li.querySelector<HTMLElement>(".read");
    if (mark === null || !li.classList.contains("mine")) continue;
    const m = markOf(seq, customer);
    mark.textContent = ` · ${m}`;
    mark.dataset.mark = m;
  }
}

/**
 * Wires the typing signals and read receipts: `box` is the message box, `status` the line that
 * says the agent is typing. Errors (offline, a blocked key) are not the customer's business here:
 * a signal is best effort, and a read receipt is sent again at the next chance.
 */
export function wireLiveSigns(customer: Customer, box: HTMLTextAreaElement, status: HTMLElement): { seen: () => void; sent: () => void } {
  const quiet = (p: Promise<void>): void => void p.catch(() => undefined);
  box.addEventListener("input", () => quiet(customer.typed(box.value.trim() === "")));
  box.addEventListener("blur", () => quiet(customer.stoppedTyping()));
  customer.on((e) => {
    if (e.kind === "typing") status.textContent = e.typing ? `${e.member} is typing…` : "";
    // The agent's line arrived: whatever it typed is sent.
    else if (e.kind === "line" && !e.line.mine) status.textContent = "";
  });
  // What the customer saw: the newest line, while the page is visible (not a background tab).
  const seen = (): void => {
    if (document.visibilityState === "visible") quiet(customer.markRead());
  };
  document.addEventListener("visibilitychange", seen);
  window.addEventListener("focus", seen);
  return { seen, sent: () => quiet(customer.stoppedTyping()) };
}
