/**
 * Holes in a member's view of a conversation (PROTOCOL §9.5, §13.10), for the customer and the
 * agent alike. The relay numbers a conversation's items 1, 2, 3 … without gaps. A customer may
 * read every one of them (it is a member of every epoch, and the items of no epoch — consents,
 * notices — are its own), so a sequence number below the cursor that this browser never handled
 * is an item the relay withheld. An agent reads only some; its history pages name the runs it
 * skips (`skipped`) and the conversation's newest number (`head`), and a number neither
 * delivered nor inside a run that holds up is a hole. Mirrors `client/src/client/holes.rs` and
 * `skipped.rs`:
 *
 * - a run is judged by the reader (`Judge`): a customer takes every run as a lie; an agent a run
 *   claiming an epoch it is a member of, or was handed, and keeps one claiming an epoch whose
 *   record it does not have pending until that record arrives (`judgePending`);
 * - a lie is kept as a hole carrying the relay's claim (`Hole.claimed`), a run that holds up
 *   later does not close it;
 * - a page that stops short of `head` leaves the numbers up to it as a hole;
 * - an agent's numbers count only once the relay named runs or a head (an older relay names
 *   none); from then on a relay cannot switch the check off by dropping the fields;
 * - a hole is asked for again (one history request per hole and try, `REFETCH_LIMIT` tries, a
 *   try only when the cursor moved), and said withheld as soon as the first request does not
 *   bring it; an item that arrives later is handled as in order.
 *
 * Nothing is persisted: the items handled are those kept in the store (customer) or read again
 * from the relay (agent), so a reload finds the same holes again.
 */

import type { Sequenced, SkippedRange } from "./frames.js";
import type { Session } from "./session.js";

/** Requests for one hole, at most (as the Rust client's `REFETCH_LIMIT`). */
export const REFETCH_LIMIT = 3;

/** What a skipped run said its items were: an epoch's, or conversation-level (`null`). */
export type Claim = number | null;

/** A run of sequence numbers never handled (inclusive). */
export interface Hole {
  from: number;
  to: number;
  /** What the relay claimed these items were, when that claim is a lie (absent: no claim). */
  claimed?: Claim;
}

/** What a skipped run's claim is worth to the reader (PROTOCOL §13.10's table). */
export type Verdict = "lie" | "holds" | "unknown";

/** Judges a run claiming `epoch` (`undefined`: conversation-level items). */
export type Judge = (epoch: number | undefined) => Verdict;

interface Run {
  from: number;
  to: number;
}

/** Runs kept pending (claims of epochs whose record has not arrived), at most. */
const MAX_PENDING = 256;

/** The sequence numbers of one conversation handled so far, and the holes among them. */
export class SequenceHoles {
  private readonly seen = new Set<number>();
  private top = 0;
  /** Runs the relay named that hold up (or are pending): their numbers are no holes. */
  private readonly covered: Run[] = [];
  /** Runs whose claim is a lie. */
  private readonly lies: (Run & { claimed: Claim })[] = [];
  /** Runs claiming an epoch whose record has not arrived. */
  private pending: SkippedRange[] = [];
  /** Whether numbers count as holes yet (an agent's: once the relay named runs or a head). */
  private named: boolean;
  /** Requests made per hole (`from-to`), and the cursor at the last try. */
  private readonly tries = new Map<string, number>();
  private triedAt = -1;
  /** The numbers asked for at least once. */
  private readonly asked = new Set<number>();
  /** Holes already told to the view (`from-to`). */
  private readonly told = new Set<string>();

  /**
   * A customer's holes by default (every run a lie, every number counted); an agent passes its
   * `judge` and `needsNames` (numbers count once its relay named runs or a head).
   */
  constructor(
    private readonly judge: Judge = () => "lie",
    needsNames = false,
  ) {
    this.named = !needsNames;
  }

  /** Item `seq` was handled (verified or refused: it arrived). */
  saw(seq: number): void {
    this.seen.add(seq);
    this.top = Math.max(this.top, seq);
  }

  /** A history page named `run` as skipped: judged, and its numbers covered or kept as a lie. */
  skipped(run: SkippedRange): void {
    if (run.to < run.from) return;
    this.named = true;
    this.top = Math.max(this.top, run.to);
    const verdict = this.judge(run.epoch);
    if (verdict === "lie") {
      this.lie(run);
      return;
    }
    if (!this.covered.some((c) => c.from === run.from && c.to === run.to)) this.covered.push({ from: run.from, to: run.to });
    if (verdict === "unknown" && !this.pending.some((p) => p.from === run.from && p.to === run.to)) {
      if (this.pending.length >= MAX_PENDING) this.pending.shift();
      this.pending.push(run);
    }
  }

  /** A page with `more = false` said the conversation's newest number is `head`. */
  head(head: number): void {
    this.named = true;
    this.top = Math.max(this.top, head);
  }

  /**
   * Judges again the runs kept pending (an epoch record arrived), with `judge` (an agent's:
   * membership in the record only; a later hand-off proves nothing): one now a lie is a hole
   * with its claim; one still unknown stays pending.
   */
  judgePending(judge: Judge = this.judge): void {
    const pending = this.pending;
    this.pending = [];
    for (const run of pending) {
      const verdict = judge(run.epoch);
      if (verdict === "unknown") this.pending.push(run);
      else if (verdict === "lie") this.lie(run);
    }
  }

  private lie(run: SkippedRange): void {
    if (!this.lies.some((l) => l.from === run.from && l.to === run.to)) this.lies.push({ from: run.from, to: run.to, claimed: run.epoch ?? null });
  }

  /** The claim of a lie covering `seq`, `undefined` when none does. */
  private claimOf(seq: number): Claim | undefined {
    return this.lies.find((l) => l.from <= seq && seq <= l.to)?.claimed;
  }

  /** Whether `seq` is a hole: never handled, and not inside a run that holds up (or inside a lie). */
  private missing(seq: number): boolean {
    if (this.seen.has(seq)) return false;
    return this.claimOf(seq) !== undefined || !this.covered.some((c) => c.from <= seq && seq <= c.to);
  }

  /** The holes up to the highest number known (handled, named, or the head), in order. */
  open(): Hole[] {
    if (!this.named) return [];
    const out: Hole[] = [];
    let cur: Hole | null = null;
    for (let s = 1; s <= this.top; s++) {
      if (!this.missing(s)) {
        cur = null;
        continue;
      }
      const claimed = this.claimOf(s);
      if (cur !== null && cur.to === s - 1 && cur.claimed === claimed) {
        cur.to = s;
        continue;
      }
      cur = claimed === undefined ? { from: s, to: s } : { from: s, to: s, claimed };
      out.push(cur);
    }
    return out;
  }

  /** The holes asked for at least once and still open: what the view shows as withheld. */
  withheld(): Hole[] {
    return this.open().filter((h) => this.asked.has(h.from));
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
    for (const h of wanted) {
      this.tries.set(key(h), (this.tries.get(key(h)) ?? 0) + 1);
      for (let s = h.from; s <= h.to; s++) this.asked.add(s);
    }
    return wanted;
  }

  /**
   * Asks the relay (when online) for the items in the holes to refetch (`toRefetch`), each
   * handed to `ingest` (handled as in order), each run the answer names judged (`skipped`: one
   * that holds up explains the hole, a lie is kept with its claim); returns the holes still open
   * not yet told (`untold`). `badAnswer` makes the error for an answer that is not `items`.
   */
  async refetch(s: Session | null, conversation: Uint8Array, ingest: (it: Sequenced) => Promise<void>, badAnswer: (kind: string) => Error): Promise<Hole[]> {
    if (s !== null) {
      for (const h of this.toRefetch()) {
        const r = await s.call({ kind: "history", conversation, after: h.from - 1, limit: h.to - h.from + 1 });
        if (r.kind !== "items") throw badAnswer(r.kind);
        for (const run of r.skipped) if (run.from <= h.to && h.from <= run.to) this.skipped({ ...run, from: Math.max(run.from, h.from), to: Math.min(run.to, h.to) });
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

/**
 * A withheld run in words, for the line the view shows in its place: "the relay withheld 2
 * items here (#7 to #8)", and when the relay lied about them, what it claimed and that it is
 * false.
 */
export function withheldText(h: Hole): string {
  const n = h.to - h.from + 1;
  const where = n === 1 ? `#${h.from}` : `#${h.from} to #${h.to}`;
  const said = `The relay withheld ${n === 1 ? "1 item" : `${n} items`} here (${where})`;
  if (h.claimed === undefined) return `${said}: asked for again, not delivered.`;
  const what = h.claimed === null ? (n === 1 ? "a consent or a notice" : "consents or notices") : `${n === 1 ? "an item" : "items"} of epoch ${h.claimed}`;
  return `${said}: it claims ${n === 1 ? "it was" : "these were"} ${what}, which is false — you are allowed to read ${n === 1 ? "it" : "them"}.`;
}
