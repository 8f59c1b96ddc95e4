/**
 * The runs of items the relay withheld, in the widget's log (PROTOCOL §13.10, issue 20), each
 * updated in place as the customer's `withheld` events come: a run is a keyed item
 * (`li.withheld`, `data-key` `withheld/<from>-<to>`) placed before the first line after it,
 * made once and from then on only its words and numbers rewritten — "asked N of 3 times" as the
 * requests are made, then "withheld for good" — so a redraw of a run that did not change
 * touches nothing, and one that did keeps its element (what the customer is reading, a
 * screen reader's place). A false claim the relay made about a run (that its items are not the
 * customer's to read: a history page named them `skipped`) is said on the run's own line, and
 * noted as `data-claimed`, as soon as it is known. Within issue 20's bounds (`holesDrawn`: at
 * most `HOLES_DRAWN` items, past them one summary line, itself updated in place, its disclosure
 * kept open or shut). A run that closed (its items came after all, shown as lines) or split
 * goes; its pieces are runs of their own.
 */
import { REFETCH_LIMIT, type Hole } from "@sealdesk/client";
import { customerHoleText, holesDrawn, moreHolesItem, setText, updateMoreHolesItem } from "@sealdesk/client/ui";

/** The summary's key. */
const MORE = "withheld/more";

/** Draws the withheld runs into `log` among `rows` (the lines and notices by sequence number); `org` names whom to ask. */
export function wireHoles(log: HTMLOListElement, rows: ReadonlyMap<number, HTMLLIElement>, org: string): { show: (holes: readonly Hole[]) => void } {
  const audience = { kind: "customer", org } as const;
  /** The runs drawn on lines of their own, by key. */
  const drawn = new Map<string, HTMLLIElement>();
  let more: HTMLLIElement | null = null;

  /** Puts `li` before the first line or notice after `to` (not moved when already there). */
  const place = (to: number, li: HTMLLIElement): void => {
    const after = [...rows.keys()].filter((s) => s > to).sort((a, b) => a - b)[0];
    const next = after === undefined ? null : (rows.get(after) ?? null);
    // Among the withheld items before that line, in order of their runs.
    let at: Element | null = next;
    for (let prev = next === null ? log.lastElementChild : next.previousElementSibling; prev instanceof HTMLElement && prev !== li && prev.classList.contains("withheld") && Number(prev.dataset.from) > to; prev = prev.previousElementSibling) at = prev;
    if (li.isConnected && li.parentElement === log && li.nextElementSibling === at) return;
    log.insertBefore(li, at);
  };

  const show = (holes: readonly Hole[]): void => {
    const d = holesDrawn(holes);
    const keep = new Set<string>();
    for (const h of d.lines) {
      const key = `withheld/${h.from}-${h.to}`;
      keep.add(key);
      let li = drawn.get(key);
      if (li === undefined) {
        li = document.createElement("li");
        li.className = "withheld";
        li.dataset.key = key;
        li.dataset.from = String(h.from);
        li.dataset.to = String(h.to);
        drawn.set(key, li);
      }
      const state = h.tries >= REFETCH_LIMIT ? "withheld" : "asking";
      if (li.dataset.state !== state) li.dataset.state = state;
      if (li.dataset.tries !== String(h.tries)) li.dataset.tries = String(h.tries);
      // The relay's false claim about the run, if any: "conversation" (a consent or notice),
      // else the epoch it named. Said on the line too (`customerHoleText`).
      const claimed = h.claimed === undefined ? undefined : h.claimed === null ? "conversation" : String(h.claimed);
      if (claimed === undefined) {
        if (li.dataset.claimed !== undefined) delete li.dataset.claimed;
      } else if (li.dataset.claimed !== claimed) li.dataset.claimed = claimed;
      setText(li, customerHoleText(h, org));
      place(h.to, li);
    }
    for (const [key, li] of drawn) {
      if (keep.has(key)) continue;
      li.remove();
      drawn.delete(key);
    }
    if (d.more === null) {
      more?.remove();
      more = null;
      return;
    }
    if (more === null) {
      more = moreHolesItem(d.more, audience);
      more.dataset.key = MORE;
    } else updateMoreHolesItem(more, d.more, audience);
    place(d.more.first.to, more);
  };
  return { show };
}
