/**
 * Holes in a member's view of a conversation (PROTOCOL §9.5, §13.10), for the customer and the
 * agent alike. The relay numbers a conversation's items 1, 2, 3 … without gaps. A customer may
 * read every one of them (it is a member of every epoch, and the items of no epoch — consents,
 * notices — are its own), so a sequence number the cursor jumped over is an item the relay
 * withheld. An agent reads only some; its history pages name the runs it skips (`skipped`) and
 * the conversation's newest number (`head`), and a number neither delivered nor inside a run
 * that holds up is a hole. Mirrors `client/src/client/holes.rs` and `skipped.rs`, rule for rule:
 *
 * - a run is judged by the reader (`Judge`): a customer takes every run as a lie; an agent a run
 *   claiming an epoch it is a member of, or was handed, and keeps one claiming an epoch whose
 *   record it does not have pending until that record arrives (`judgePending`);
 * - a lie is kept as a hole carrying the relay's claim (`Hole.claimed`), a run that holds up
 *   later does not close it;
 * - a page that stops short of `head` leaves the numbers up to it as a hole after the cursor,
 *   counted as asked for again by each sync that ends short of it;
 * - an agent's numbers count only once the relay named runs or a head (an older relay names
 *   none); from then on a relay cannot switch the check off by dropping the fields;
 * - the holes are asked for again only when the cursor moved since the last try, each at most
 *   `REFETCH_LIMIT` times, reading the history from the first hole on, at most
 *   `REFETCH_PAGES` pages per try (a relay that invents thousands of holes costs four requests,
 *   not thousands); an item that arrives later is handled as in order;
 * - the holes (ranges, requests made, the relay's claim), the runs pending and the cursor at the
 *   last try are kept in the store (`keep`), as the Rust client keeps them in its vault, and
 *   restored on load: a reload neither forgets a hole nor asks for it afresh.
 *
 * - the stored list is bounded (`MAX_HOLES`): past it the two newest holes become one summary run
 *   (`Hole.missing`: how many of its numbers were missing; its span also holds items that arrived),
 *   given up at once (asking for it would hand in again what arrived) and never narrowed — so a
 *   relay alternating its claims, or making one more hole after each try, cannot grow the list
 *   one entry per sync, and the reader is still told that items are missing, and at least how many.
 *
 * A hole is shown at once: "never arrived, asking again" while it is asked for, "not delivered
 * after 3 requests" once given up (`withheldText`, the Rust `history`'s wording rule).
 */

import { ProtocolError, fromCbor, toCbor, type CborValue } from "@sealdesk/protocol";
import type { Sequenced, SkippedRange } from "./frames.js";
import { HISTORY_PAGE } from "./member.js";
import { oneAtATime } from "./send-lock.js";
import { RelayError, type Session } from "./session.js";
import type { Store } from "./store.js";

/** Requests for one hole, at most (the Rust client's `REFETCH_LIMIT`). */
export const REFETCH_LIMIT = 3;

/** History pages read again for the holes per try, at most (the Rust client's `REFETCH_PAGES`). */
export const REFETCH_PAGES = 4;

/**
 * Holes kept per conversation, at most (the Rust client's `MAX_HOLES`, PROTOCOL §13.10): past it
 * the two newest are merged into one summary run that keeps the count of missing numbers.
 */
export const MAX_HOLES = 256;

/** What a skipped run said its items were: an epoch's, or conversation-level (`null`). */
export type Claim = number | null;

/** A run of sequence numbers never handled (inclusive), and the requests made for it so far. */
export interface Hole {
  from: number;
  to: number;
  /** Requests made for it so far (`REFETCH_LIMIT` or more: given up, not delivered). */
  tries: number;
  /** What the relay claimed these items were, when that claim is a lie (absent: no claim). */
  claimed?: Claim;
  /**
   * A summary run past `MAX_HOLES`: `from..to` also spans items that arrived, and this many of its
   * numbers were missing when it was made (at least that many are). Given up, never narrowed.
   */
  missing?: number;
}

/** How many numbers are missing in `h` (at least, for a summary run). */
export function missingCount(h: Hole): number {
  return h.missing ?? h.to - h.from + 1;
}

/** What a skipped run's claim is worth to the reader (PROTOCOL §13.10's table). */
export type Verdict = "lie" | "holds" | "unknown";

/** Judges a run claiming `epoch` (`undefined`: conversation-level items). */
export type Judge = (epoch: number | undefined) => Verdict;

/** Where the holes of one conversation are kept. */
export interface HolesRecord {
  store: Store;
  /** The record's name. */
  key: string;
}

/** Runs kept pending (claims of epochs whose record has not arrived), at most. */
const MAX_PENDING = 256;

/** The holes of one conversation, the runs pending, and the cursor at the last try. */
export class SequenceHoles {
  /** The cursor: the highest number handled or passed as skipped. */
  private top = 0;
  /** The open holes, sorted and disjoint. */
  private list: Hole[] = [];
  /** Whether numbers count as holes yet (an agent's: once the relay named runs or a head). */
  private named: boolean;
  /** Runs claiming an epoch whose record has not arrived. */
  private pending: SkippedRange[] = [];
  /** The cursor at the last try: the next waits until it moves. */
  private triedAt = 0;
  /** Runs the refetches one at a time (the next starts once the one before settled). */
  private readonly asking = oneAtATime();
  /** Whether the state changed since it was last kept. */
  private dirty = false;
  private restoring: Promise<void> | null = null;
  /** Holes already told to the view (`from-to`). */
  private readonly told = new Set<string>();

  /**
   * A customer's holes by default (every run a lie, every number counted); an agent passes its
   * `judge` and `needsNames` (numbers count once its relay named runs or a head). With `keep`
   * the state is kept in a store record (`restore`, `flush`).
   */
  constructor(
    private readonly judge: Judge = () => "lie",
    needsNames = false,
    private readonly keep?: HolesRecord,
  ) {
    this.named = !needsNames;
  }

  /**
   * Reads the kept state once (later calls wait for the first): the holes with their requests
   * and claims, the runs pending, the cursor at the last try. Holes found before it are kept.
   *
   * # Errors
   * A `ProtocolError` (`malformed`) when the record is damaged.
   */
  restore(): Promise<void> {
    this.restoring ??= (async () => {
      const b = this.keep === undefined ? undefined : await this.keep.store.get(this.keep.key);
      if (b === undefined) return;
      const state = decodeState(fromCbor(b));
      this.triedAt = Math.max(this.triedAt, state.triedAt);
      this.named ||= state.named;
      for (const h of state.open) {
        if (h.missing === undefined) this.add(h.from, h.to, h.claimed, h.tries);
        else this.restoreSummary(h);
      }
      for (const run of state.pending) this.keepPending(run);
    })();
    return this.restoring;
  }

  /** Writes the state to its record when it changed (nothing without `keep`). */
  async flush(): Promise<void> {
    if (this.keep === undefined || !this.dirty) return;
    this.dirty = false;
    const open: CborValue[] = this.list.map((h) => {
      const m: { [k: string]: CborValue } = { from: h.from, to: h.to, tries: h.tries };
      if (h.claimed !== undefined) m.claimed = h.claimed;
      if (h.missing !== undefined) m.missing = h.missing;
      return m;
    });
    const pending: CborValue[] = this.pending.map((r) => (r.epoch === undefined ? { from: r.from, to: r.to } : { from: r.from, to: r.to, epoch: r.epoch }));
    await this.keep.store.put(this.keep.key, toCbor({ cursor: this.triedAt, open, named: this.named, pending }));
  }

  /** A history page is about to be handled: one naming runs or a head turns an agent's check on. */
  page(skipped: readonly SkippedRange[], head: number | undefined): void {
    if ((head !== undefined || skipped.length > 0) && !this.named) {
      this.named = true;
      this.dirty = true;
    }
  }

  /** Item `seq` was handled (verified or refused: it arrived); the numbers it jumped over are a hole. */
  saw(seq: number): void {
    if (seq > this.top + 1 && this.named) this.add(this.top + 1, seq - 1);
    this.closeRange(seq, seq, false);
    this.top = Math.max(this.top, seq);
  }

  /**
   * A history page named `run` as skipped (in sequence order with its items): what lies between
   * the cursor and the run is a hole, the run is judged (a lie a hole with its claim, one that
   * holds up no hole, one of an epoch not known yet pending), and the cursor passes it.
   */
  skipped(run: SkippedRange): void {
    if (run.to < run.from) return;
    if (!this.named) {
      this.named = true;
      this.dirty = true;
    }
    const from = Math.max(run.from, this.top + 1);
    if (run.to < from) return;
    if (from > this.top + 1) this.add(this.top + 1, from - 1);
    const verdict = this.judge(run.epoch);
    if (verdict === "lie") this.add(from, run.to, run.epoch ?? null);
    else {
      // A caught lie stays (a relay read again after a reload may explain it away).
      this.closeRange(from, run.to, true);
      if (verdict === "unknown") this.keepPending({ ...run, from });
    }
    this.top = run.to;
  }

  /**
   * The last page (`more = false`) said the conversation's newest number is `head`: when the
   * cursor stops short of it, the newest items did not come — a hole after the cursor, and the
   * holes there count one more request (each sync asks for them again).
   */
  head(head: number): void {
    if (!this.named) {
      this.named = true;
      this.dirty = true;
    }
    if (head <= this.top) return;
    for (let i = this.list.length - 1; i >= 0; i--) {
      const h = this.list[i];
      if (h === undefined || h.from <= this.top) break;
      h.tries += 1;
      this.dirty = true;
    }
    this.add(this.top + 1, head);
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
      else if (verdict === "lie") this.add(run.from, run.to, run.epoch ?? null);
    }
    if (this.pending.length !== pending.length) this.dirty = true;
  }

  /** The open holes, in order. */
  open(): Hole[] {
    return this.list.map((h) => ({ ...h }));
  }

  /** What the view shows in the holes' places: every open hole, with the requests made for it. */
  withheld(): Hole[] {
    return this.open();
  }

  /**
   * Asks the relay (when online) for the items in the holes, as the Rust client does (see the
   * module docs): each item in a hole handed to `ingest` (handled as in order), each run the
   * answer names judged again (one that holds up explains an unclaimed hole, a lie marks it);
   * then keeps the state and returns the holes asked for and still open not yet told
   * (`untold`). `badAnswer` makes the error for an answer that is not `items`.
   *
   * # Errors
   * The session's errors (but `forbidden` and `not_found`: a conversation no longer served, the
   * holes stay); `badAnswer`; a damaged record (`restore`).
   */
  async refetch(s: Session | null, conversation: Uint8Array, ingest: (it: Sequenced) => Promise<void>, badAnswer: (kind: string) => Error): Promise<Hole[]> {
    // One at a time: a second call made while one waits for the relay (a push and a receipt
    // moving the cursor at once) would read the same tries and the same last position, ask
    // again for the same move of the cursor, and count the holes twice ("after 4 requests").
    return this.asking(async () => {
      await this.restore();
      if (s !== null) await this.askAgain(s, conversation, ingest, badAnswer);
      await this.flush();
      return this.untold();
    });
  }

  private async askAgain(s: Session, conversation: Uint8Array, ingest: (it: Sequenced) => Promise<void>, badAnswer: (kind: string) => Error): Promise<void> {
    const upto = this.top;
    const wanted = this.list.filter((h) => h.tries < REFETCH_LIMIT).map((h) => ({ ...h }));
    const first = wanted[0];
    // `<=`: after a reload the cursor climbs back to where the last try was made.
    if (first === undefined || upto <= this.triedAt) return;
    const last = wanted.reduce((m, h) => Math.max(m, h.to), 0);
    let after = first.from - 1;
    let pages = 0;
    while (after < upto && after < last && pages < REFETCH_PAGES) {
      pages += 1;
      let r;
      try {
        r = await s.call({ kind: "history", conversation, after, limit: HISTORY_PAGE });
      } catch (e) {
        // No longer served to this account (a transfer): nothing to ask; the holes stay.
        if (e instanceof RelayError && (e.code === "forbidden" || e.code === "not_found")) break;
        throw e;
      }
      if (r.kind !== "items") throw badAnswer(r.kind);
      for (const run of r.skipped) if (run.to > after && run.from <= upto) this.explain(run);
      for (const it of [...r.items].sort((a, b) => a.seq - b.seq)) {
        if (it.seq > after && it.seq <= upto && covers(wanted, it.seq) && covers(this.list, it.seq, true)) await ingest(it);
      }
      const end = [...r.items.map((it) => it.seq), ...r.skipped.map((run) => run.to)].reduce((m, x) => Math.max(m, x), -1);
      if (end < 0 || !r.more || end <= after) break;
      after = end;
    }
    // Every hole still open that was asked for has had one more request.
    if (pages > 0) {
      for (const h of this.list) if (overlaps(wanted, h)) h.tries += 1;
    }
    this.triedAt = Math.max(this.triedAt, upto);
    this.dirty = true;
  }

  /** A run named in an answer to a request for holes (`explain_hole`): a lie marks them, else the unclaimed ones close. */
  private explain(run: SkippedRange): void {
    if (this.judge(run.epoch) === "lie") {
      for (const h of this.list) {
        if (h.from <= run.to && run.from <= h.to && h.claimed === undefined) {
          h.claimed = run.epoch ?? null;
          this.dirty = true;
        }
      }
    } else this.closeRange(run.from, run.to, true);
  }

  /** The holes asked for at least once and still open, not yet told to the view; each is returned once. */
  untold(): Hole[] {
    const fresh = this.list.filter((h) => h.tries > 0 && !this.told.has(`${h.from}-${h.to}`)).map((h) => ({ ...h }));
    for (const h of fresh) this.told.add(`${h.from}-${h.to}`);
    return fresh;
  }

  private keepPending(run: SkippedRange): void {
    if (this.pending.some((p) => p.from === run.from && p.to === run.to)) return;
    if (this.pending.length >= MAX_PENDING) this.pending.shift();
    this.pending.push(run);
    this.dirty = true;
  }

  /** The index of the first hole ending at or after `seq`. */
  private firstEnding(seq: number): number {
    let lo = 0;
    let hi = this.list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.list[mid]?.to ?? Infinity) < seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Adds `from..=to` as a hole, only the numbers no open hole covers yet. */
  private add(from: number, to: number, claimed?: Claim, tries = 0): void {
    if (to < from) return;
    const piece = (a: number, b: number): Hole => (claimed === undefined ? { from: a, to: b, tries } : { from: a, to: b, tries, claimed });
    let i = this.firstEnding(from);
    let next = from;
    const pieces: [number, Hole][] = [];
    for (let h = this.list[i]; h !== undefined && h.from <= to; h = this.list[++i]) {
      if (h.from > next) pieces.push([i, piece(next, h.from - 1)]);
      next = Math.max(next, h.to + 1);
    }
    if (next <= to) pieces.push([i, piece(next, to)]);
    // Inserted from the last so the indices found stay right.
    for (const [at, h] of pieces.reverse()) this.list.splice(at, 0, h);
    if (pieces.length > 0) this.dirty = true;
    this.cap();
  }

  /**
   * Keeps the list within `MAX_HOLES`: the two newest holes become one summary run until it fits
   * (their span, their missing numbers summed, given up, a lie caught in either kept).
   */
  private cap(): void {
    while (this.list.length > MAX_HOLES) {
      const b = this.list.pop();
      const a = this.list.pop();
      if (a === undefined || b === undefined) return;
      const claimed = a.claimed !== undefined ? a.claimed : b.claimed;
      const merged: Hole = { from: Math.min(a.from, b.from), to: Math.max(a.to, b.to), tries: Math.max(a.tries, b.tries, REFETCH_LIMIT), missing: missingCount(a) + missingCount(b) };
      if (claimed !== undefined) merged.claimed = claimed;
      this.list.push(merged);
      this.dirty = true;
    }
  }

  /**
   * A kept summary run: the holes found before the restore inside its span are absorbed into it,
   * its count the larger of its own and theirs (at least that many are missing, none counted twice).
   */
  private restoreSummary(s: Hole): void {
    const start = this.firstEnding(s.from);
    let end = start;
    let theirs = 0;
    for (let h = this.list[end]; h !== undefined && h.from <= s.to; h = this.list[++end]) theirs += missingCount(h);
    const from = Math.min(s.from, this.list[start]?.from ?? s.from);
    const to = Math.max(s.to, end > start ? (this.list[end - 1]?.to ?? s.to) : s.to);
    this.list.splice(start, end - start, { ...s, from, to, missing: Math.max(s.missing ?? 0, theirs) });
    this.dirty = true;
    this.cap();
  }

  /** Removes `from..=to` from the open holes (`keepLies`: but those carrying a caught lie). */
  private closeRange(from: number, to: number, keepLies: boolean): void {
    const start = this.firstEnding(from);
    let end = start;
    const out: Hole[] = [];
    for (let h = this.list[end]; h !== undefined && h.from <= to; h = this.list[++end]) {
      // A summary run is never narrowed: the numbers in it that arrived are not known one by one.
      if (h.missing !== undefined || (keepLies && h.claimed !== undefined)) {
        out.push(h);
        continue;
      }
      if (h.from < from) out.push({ ...h, to: from - 1 });
      if (to < h.to) out.push({ ...h, from: to + 1 });
    }
    if (end === start) return;
    this.list.splice(start, end - start, ...out);
    this.dirty = true;
    this.cap();
  }
}

/** Whether a hole of `holes` (sorted, disjoint) holds `seq` (`exact`: not a summary run, whose span also holds items that arrived). */
function covers(holes: readonly Hole[], seq: number, exact = false): boolean {
  let lo = 0;
  let hi = holes.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const h = holes[mid];
    if (h === undefined) break;
    if (h.to < seq) lo = mid + 1;
    else if (h.from > seq) hi = mid;
    else return !exact || h.missing === undefined;
  }
  return false;
}

/** Whether `h` overlaps a hole of `holes` (sorted, disjoint). */
function overlaps(holes: readonly Hole[], h: Hole): boolean {
  let lo = 0;
  let hi = holes.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((holes[mid]?.to ?? Infinity) < h.from) lo = mid + 1;
    else hi = mid;
  }
  const w = holes[lo];
  return w !== undefined && w.from <= h.to;
}

/** A kept state, checked. */
function decodeState(v: CborValue): { triedAt: number; named: boolean; open: Hole[]; pending: SkippedRange[] } {
  const bad = (): ProtocolError => new ProtocolError("malformed", "stored holes");
  const isMap = (x: CborValue | undefined): x is { [k: string]: CborValue } => x !== null && x !== undefined && typeof x === "object" && !(x instanceof Uint8Array) && !Array.isArray(x);
  const num = (x: CborValue | undefined): number => {
    if (typeof x !== "number" || !Number.isSafeInteger(x) || x < 0) throw bad();
    return x;
  };
  const range = (x: CborValue): { from: number; to: number; m: { [k: string]: CborValue } } => {
    if (!isMap(x)) throw bad();
    const from = num(x.from);
    const to = num(x.to);
    if (from < 1 || to < from) throw bad();
    return { from, to, m: x };
  };
  if (!isMap(v) || !Array.isArray(v.open) || !Array.isArray(v.pending) || typeof v.named !== "boolean") throw bad();
  const open = v.open.map((x): Hole => {
    const { from, to, m } = range(x);
    const h: Hole = { from, to, tries: num(m.tries) };
    if (Object.hasOwn(m, "claimed")) h.claimed = m.claimed === null ? null : num(m.claimed);
    if (Object.hasOwn(m, "missing")) {
      const missing = num(m.missing);
      if (missing < 1 || missing > to - from + 1) throw bad();
      h.missing = missing;
    }
    return h;
  });
  const pending = v.pending.map((x): SkippedRange => {
    const { from, to, m } = range(x);
    return Object.hasOwn(m, "epoch") ? { from, to, epoch: num(m.epoch) } : { from, to };
  });
  return { triedAt: num(v.cursor), named: v.named, open, pending };
}

/**
 * A hole in words, for the line the view shows in its place, by the Rust `history`'s rule:
 * while it is still asked for, "1 item never arrived here (#7): asking the relay again."; once
 * asked for `REFETCH_LIMIT` times, "The relay withheld 1 item here (#7): not delivered after 3
 * requests."; and when the relay lied about them, what it claimed and that it is false.
 */
export function withheldText(h: Hole): string {
  if (h.missing !== undefined) {
    const n = h.missing;
    const said = `The relay withheld at least ${n === 1 ? "1 item" : `${n} items`} somewhere in #${h.from} to #${h.to} (too many holes to list one by one): not asked for again`;
    if (h.claimed === undefined) return `${said}.`;
    const what = h.claimed === null ? "consents or notices" : `items of epoch ${h.claimed}`;
    return `${said}; it claims some were ${what}, which is false — you are allowed to read them.`;
  }
  const n = h.to - h.from + 1;
  const where = n === 1 ? `#${h.from}` : `#${h.from} to #${h.to}`;
  const items = n === 1 ? "1 item" : `${n} items`;
  const said = h.tries >= REFETCH_LIMIT ? `The relay withheld ${items} here (${where}): not delivered after ${h.tries} requests` : `${items} never arrived here (${where}): asking the relay again`;
  if (h.claimed === undefined) return `${said}.`;
  const what = h.claimed === null ? (n === 1 ? "a consent or a notice" : "consents or notices") : `${n === 1 ? "an item" : "items"} of epoch ${h.claimed}`;
  return `${said}; it claims ${n === 1 ? "it was" : "these were"} ${what}, which is false — you are allowed to read ${n === 1 ? "it" : "them"}.`;
}
