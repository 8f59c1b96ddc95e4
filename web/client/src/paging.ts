/**
 * How far one walk through a conversation's `history` pages may go (PROTOCOL §13.10), the rules
 * of the Rust client's `client/src/client/paging.rs`. A relay answers each page with `more` and
 * the conversation's `head`; a lying or broken one could page forever — pages of one skipped run
 * each, which move an agent's cursor without a single signed item, under a head that grows with
 * every page. `Paging` bounds a walk:
 *
 * - it ends at the head the **first** page named: what was stored when the walk began. Items
 *   stored meanwhile are pushed, or read by the next sync; a head that grows on every page is
 *   not chased;
 * - a page may not end beyond the head it names, a head may not go back, and a relay that named
 *   a head may not stop naming it mid-walk: answers that cannot be right (`PagingError`);
 * - at most `MAX_SYNC_PAGES` pages per walk, whatever head the relay claims.
 *
 * Nothing read is lost when a walk stops: each item is handled as it comes, with the cursor, and
 * the next walk starts from there.
 */

/**
 * The most `history` pages one walk reads: at the relay's largest page (200 items) 51,200 items.
 * A sync that reaches it keeps what it read, says so, and goes on at the next sync.
 */
export const MAX_SYNC_PAGES = 256;

/** A history page that cannot be right (the relay's answer, not the network). */
export class PagingError extends Error {
  constructor(readonly detail: string) {
    super(`the relay's history page cannot be right: ${detail}`);
    this.name = "PagingError";
  }
}

/** Where a walk stands after a page: ask after `after`, done, or out of pages. */
export type Next = { kind: "after"; after: number } | { kind: "done" } | { kind: "budget" };

/** One walk's bounds: where it started, the head its first page named, the pages read. */
export class Paging {
  /** The head named by the first page (undefined: a relay older than `head`). */
  private target: number | undefined;
  /** The head the last page named. */
  private lastHead: number | undefined;
  private pages = 0;

  /** A walk from `start` (the first page asks for items after it). */
  constructor(private readonly start: number) {}

  /**
   * Judges a page asked for after `after`: `end` is the last sequence number it answers for (its
   * last item or run; undefined for an empty page), `reached` where the walk now stands (the
   * cursor after handling it), `more` and `head` as the relay said. A page with `more` that did
   * not move the walk on is `done` (asking again from the same cursor would get the same page).
   *
   * # Errors
   * `PagingError` for a page ending beyond its own head, a head that went back, and a head no
   * longer named once named.
   */
  next(after: number, end: number | undefined, reached: number, more: boolean, head: number | undefined): Next {
    this.pages += 1;
    if (this.lastHead !== undefined && head === undefined) {
      throw new PagingError(`a page after sequence ${after} names no head, where an earlier page of the same walk named ${this.lastHead}`);
    }
    if (this.lastHead !== undefined && head !== undefined && head < this.lastHead) {
      throw new PagingError(`the conversation's head went back from ${this.lastHead} to ${head} between two pages`);
    }
    if (end !== undefined && head !== undefined && end > head) {
      throw new PagingError(`a page ends at sequence ${end}, beyond the head ${head} it names`);
    }
    if (this.pages === 1) this.target = head;
    this.lastHead = head;
    if (!more || reached <= after) return { kind: "done" };
    if (this.target !== undefined && reached >= this.target) return { kind: "done" };
    if (this.pages >= MAX_SYNC_PAGES) return { kind: "budget" };
    return { kind: "after", after: reached };
  }

  /** The words for a walk stopped by `budget` at `reached`. */
  budgetDetail(reached: number): string {
    const of = this.target === undefined ? "" : ` of the head ${this.target} it named`;
    return `after ${this.pages} pages from sequence ${this.start}, the relay's pages had reached ${reached}${of}; stopped there (what was read is kept, the next sync goes on)`;
  }
}
