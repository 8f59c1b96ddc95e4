/**
 * Drawing a list again without taking anything from the person using it. A page that rebuilds a
 * list (the widget's consents, the console's conversations and messages) would otherwise drop
 * the keyboard focus on nothing and move the list's scroll position each time: a Tab or Enter
 * pressed at that instant would be lost. `redraw` keeps, by each item's stable key
 * (`data-key`):
 *
 * - the items whose drawing did not change (the same node, untouched: its focus, its open
 *   disclosures, its listeners stay);
 * - the focused control of an item drawn anew: the control at the same place among the new
 *   item's controls gets the focus back (a control that moved into the new item keeps it);
 * - an open `details` of an item drawn anew stays open;
 * - the scroll position of the list and of the element that scrolls it.
 *
 * `replaceItem` does the same for one item replaced in place (a notice judged again).
 */

/** What a control is, among an item's descendants: what can hold the keyboard focus. */
const CONTROLS = "button, a[href], input, select, textarea, summary, [tabindex]";

/**
 * Replaces `list`'s children with `next` (each with a `data-key` unique in the list), keeping
 * unchanged items, the focus, open disclosures and the scroll position (see the module doc).
 * `scroller`: an ancestor that scrolls the list, if not the list itself.
 */
export function redraw(list: HTMLElement, next: readonly HTMLElement[], scroller?: HTMLElement): void {
  const focus = focusIn(list);
  const scrolls = [list, ...(scroller === undefined ? [] : [scroller])].map((e) => [e, e.scrollTop] as const);
  const old = new Map<string, HTMLElement>();
  for (const c of Array.from(list.children)) {
    const key = c instanceof HTMLElement ? c.dataset.key : undefined;
    if (key !== undefined && c instanceof HTMLElement) old.set(key, c);
  }
  const kept = next.map((n) => {
    const key = n.dataset.key;
    const was = key === undefined ? undefined : old.get(key);
    if (was === undefined || key === undefined) return n;
    // Each old item serves once, even were a key given twice.
    old.delete(key);
    carryOpen(was, n);
    return was.isEqualNode(n) ? was : n;
  });
  const stays = new Set(kept);
  for (const c of Array.from(list.children)) if (!stays.has(c as HTMLElement)) c.remove();
  // In order, moving only what is out of place (moving a node would take its focus).
  let at: Element | null = list.firstElementChild;
  for (const item of kept) {
    if (item === at) {
      at = at.nextElementSibling;
      continue;
    }
    list.insertBefore(item, at);
  }
  focus?.restore((key) => kept.find((k) => k.dataset.key === key));
  for (const [e, top] of scrolls) if (e.scrollTop !== top) e.scrollTop = top;
}

/** Replaces `old` with `next` in place, giving the focus (and open disclosures) back as `redraw` does. */
export function replaceItem(old: HTMLElement, next: HTMLElement): void {
  const focus = focusIn(old, true);
  carryOpen(old, next);
  old.replaceWith(next);
  focus?.restore(() => next);
}

/** Where the focus is inside `root` (or `root`'s own item, with `self`), to be given back. */
function focusIn(root: HTMLElement, self = false): { restore: (find: (key: string) => HTMLElement | undefined) => void } | null {
  const active = document.activeElement;
  if (!(active instanceof HTMLElement) || !root.contains(active) || active === root) return null;
  const item = self ? root : itemOf(root, active);
  if (item === null) return null;
  const key = item.dataset.key ?? "";
  const index = controls(item).indexOf(active);
  return {
    restore(find) {
      if (document.activeElement === active) return;
      // A control moved into the new item (a shared download button): the same element.
      if (active.isConnected) {
        active.focus({ preventScroll: true });
        return;
      }
      const now = find(key);
      if (now === undefined) return;
      const target = index < 0 ? now : controls(now)[index];
      (target ?? now).focus({ preventScroll: true });
    },
  };
}

/** The child of `list` holding `e`. */
function itemOf(list: HTMLElement, e: HTMLElement): HTMLElement | null {
  let at: HTMLElement | null = e;
  while (at !== null && at.parentElement !== list) at = at.parentElement;
  return at;
}

/** The controls of `item` (itself first, if it is one), in document order. */
function controls(item: HTMLElement): HTMLElement[] {
  const inside = Array.from(item.querySelectorAll<HTMLElement>(CONTROLS));
  return item.matches(CONTROLS) ? [item, ...inside] : inside;
}

/** Opens in `next` the `details` open in `old`, by their place among the item's disclosures. */
function carryOpen(old: HTMLElement, next: HTMLElement): void {
  const was = Array.from(old.querySelectorAll("details"));
  const now = Array.from(next.querySelectorAll("details"));
  was.forEach((d, i) => {
    const n = now[i];
    if (d.open && n !== undefined) n.open = true;
  });
}
