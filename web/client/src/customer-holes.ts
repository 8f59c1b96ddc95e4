/**
 * Holes in a customer's view of its conversation (PROTOCOL §9.5, §13.10): the relay numbers a
 * conversation's items 1, 2, 3 … without gaps, and a customer may read every one of them (it is
 * a member of every epoch, and the items of no epoch — consents, notices — are its own), so a
 * sequence number below the cursor that this browser never handled is an item the relay
 * withheld. Mirrors `client/src/client/holes.rs`: a hole is asked for again (one history
 * request per hole and try, `REFETCH_LIMIT` tries, a try only when the cursor moved), and said
 * withheld to the view as soon as the first request does not bring it; an item that arrives
 * later is handled as in order.
 *
 * Nothing is persisted: the items handled are those kept in the store, so a reload finds the
 * same holes again from them.
 */

import type { Sequenced } from "./frames.js";
import type { Session } from "./session.js";

/** Requests for one hole, at most (as the Rust client's `REFETCH_LIMIT`). */
export const REFETCH_LIMIT = 3;

/** A run of sequence numbers never handled (inclusive). */
export interface Hole {
  from: number;
  to: number;
}

/** The sequence numbers of one conversation handled so far, and the holes among them. */
export class SequenceHoles {
  private readonly seen = new Set<number>();
  private top = 0;
  /** Requests made per hole (`from-to`), and the cursor at the last try. */
  private readonly tries = new Map<string, number>();
  private triedAt = -1;
  /** Holes already told to the view (`from-to`). */
  private readonly told = new Set<string>();

  /** Item `seq` was handled (verified or refused: it arrived). */
  saw(seq: number): void {
    this.seen.add(seq);
    this.top = Math.max(this.top, seq);
  }

  /** The holes below the highest item handled, in order. */
  open(): Hole[] {
    const out: Hole[] = [];
    let from: number | null = null;
    for (let s = 1; s <= this.top; s++) {
      if (!this.seen.has(s)) from ??= s;
      else if (from !== null) {
        out.push({ from, to: s - 1 });
        from = null;
      }
    }
    return out;
  }

  /**
   * The holes to ask the relay for now: those asked for fewer than `REFETCH_LIMIT` times, and
   * only when the cursor moved since the last try (a relay that withholds is not asked again
   * and again for nothing). Each one returned counts as one more try.
   */
  toRefetch(): Hole[] {
    if (this.top === this.triedAt) return [];
    this.triedAt = this.top;
    const wanted = this.open().filter((h) => (this.tries.get(key(h)) ?? 0) < REFETCH_LIMIT);
    for (const h of wanted) this.tries.set(key(h), (this.tries.get(key(h)) ?? 0) + 1);
    return wanted;
  }

  /**
   * Asks the relay (when online) for the items in the holes to refetch (`toRefetch`), each
   * handed to `ingest` (handled as in order); returns the holes still open not yet told
   * (`untold`). `badAnswer` makes the error for an answer that is not `items`.
   */
  async refetch(s: Session | null, conversation: Uint8Array, ingest: (it: Sequenced) => Promise<void>, badAnswer: (kind: string) => Error): Promise<Hole[]> {
    if (s !== null) {
      for (const h of this.toRefetch()) {
        const r = await s.call({ kind: "history", conversation, after: h.from - 1, limit: h.to - h.from + 1 });
        if (r.kind !== "items") throw badAnswer(r.kind);
        for (const it of r.items) if (it.seq >= h.from && it.seq <= h.to) await ingest(it);
      }
    }
    return this.untold();
  }

  /** The holes still open not yet told to the view; each is returned once. */
  untold(): Hole[] {
    const fresh = this.open().filter((h) => !this.told.has(key(h)));
    for (const h of fresh) this.told.add(key(h));
    return fresh;
  }
}

function key(h: Hole): string {
  return `${h.from}-${h.to}`;
}
