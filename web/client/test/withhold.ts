/**
 * Test support: a hostile relay that withholds items from the pushes and history pages of one
 * client (`tamper.ts`), optionally passing them off as skipped runs that claim an epoch.
 */
import type { CborValue } from "@sealdesk/protocol";
import { tampering, type Frame } from "./tamper.js";

/** The items map of a history page, or undefined for any other frame. */
export function page(f: Frame): Frame | undefined {
  const items = ((f.response as Frame | undefined)?.body as Frame | undefined)?.items as Frame | undefined;
  return Array.isArray(items?.items) ? items : undefined;
}

/** The sequence number of a pushed item, or undefined. */
function pushed(f: Frame): number | undefined {
  const seq = ((f.push as Frame | undefined)?.item as Frame | undefined)?.seq;
  return typeof seq === "number" ? seq : undefined;
}

/**
 * A hostile relay for one agent: `drop` says whether to withhold item `seq` (from a push, or
 * from the `nth` page holding it; `item` is the sequenced item's CBOR map).
 */
export function withholding(drop: (seq: number, nth: number, item: Frame) => boolean, claim?: (seq: number, item: Frame) => number | undefined): ReturnType<typeof tampering> {
  const pages = new Map<number, number>();
  return tampering((f) => {
    const p = pushed(f);
    if (p !== undefined) return !drop(p, 0, (f.push as Frame).item as Frame);
    const items = page(f);
    if (items === undefined) return true;
    const kept: CborValue[] = [];
    const runs = Array.isArray(items.skipped) ? [...(items.skipped as Frame[])] : [];
    for (const it of items.items as Frame[]) {
      const seq = it.seq as number;
      const nth = (pages.get(seq) ?? 0) + 1;
      pages.set(seq, nth);
      if (!drop(seq, nth, it)) {
        kept.push(it);
        continue;
      }
      const epoch = claim?.(seq, it);
      if (epoch !== undefined) runs.push({ from: seq, to: seq, epoch });
    }
    items.items = kept;
    if (runs.length > 0) items.skipped = runs.sort((a, b) => (a.from as number) - (b.from as number));
    return true;
  });
}
