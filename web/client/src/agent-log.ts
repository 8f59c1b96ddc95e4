/**
 * The agent's verified position in the audit log, and reading only what is new past it
 * (PROTOCOL §12.3 "Who reads the log", §13.5 `watch_audit`). The console keeps, in its store, the
 * last tree head it read the log up to with the compact range of its leaves (`log/scan`: size,
 * root — signed by the pinned relay key when read — and the O(log n) subtree roots that make it
 * up, `CompactRange`) and, per conversation, the indices of the entries about it
 * (`conv/<id>/notices`). Each look:
 *
 * 1. fetches the signed tree head and proves it an append-only extension of the kept one (same
 *    root at the same size, an RFC 9162 consistency proof for a larger one): a relay that
 *    rewinds, truncates or forks its log is refused with an `AuditLogError`, and the kept
 *    position is left as it was (nothing accepted before is lost or replaced);
 * 2. reads the entries from the kept size to the new one, every slot accounted for (a relay that
 *    answers fewer slots than the head holds is `held_back`), extends the kept compact range
 *    with their leaves (computed from each readable entry, the leaf hash served for each
 *    withheld one) and refuses the look (`listing_not_head`) unless its root and size are the
 *    new head's: a listing with an entry dropped and the rest shifted, an entry swapped for
 *    another, a withheld leaf altered or a slot added does not make up the head
 *    (`audit-listing.ts`). Only then is each readable entry about a known conversation handed
 *    to the caller;
 * 3. only then keeps the new head and its compact range.
 *
 * A conversation seen for the first time (assigned, or transferred here) has its part of the
 * log read once from entry 0 to the kept size, and that listing is proven the same way against
 * the kept head (its leaves recomputed from 0 and the root compared) before any entry of it is
 * handed over; after that its notices come from the kept indices (one `get_entries` each, each
 * notice's inclusion proven by the caller's `checkNotice`), so the cost of a look is the new
 * entries, not the whole log. A `log/scan` kept before the compact range was (no `frontier`) is
 * read from 0 to its size once, proven against its root, to build it.
 */
import { CompactRange, equal, fromCbor, toCbor, verifyTreeHead, type AuditEntry, type CborValue, type TreeHead } from "@sealdesk/protocol";
import { AuditLogError, keepUnreadable, proveHead, rangeFromCbor, rangeToCbor, readListing, type ServedEntry } from "./audit-listing.js";
import { treeHeadFromCbor } from "./notice.js";
import { checkConsistent, type SeenHead } from "./notices-witness.js";
import type { Session } from "./session.js";
import type { Store } from "./store.js";

export { AuditLogError, type AuditLogFailure } from "./audit-listing.js";

/** Where the agent keeps the tree head it read the log up to: `log/scan` → `{ size, root, frontier }`. */
export const LOG_SCAN_RECORD = "log/scan";
/** The indices of the log entries about a conversation: `conv/<id>/notices` → `[index…]`. */
export const noticesRecord = (id: string): string => `conv/${id}/notices`;
/** How many log entries one `get_entries` asks for. */
export const SCAN_PAGE = 200;

/** One readable entry handed to the caller: its index, decoded, its CBOR and its conversation (hex). */
export interface FoundEntry {
  index: number;
  entry: AuditEntry;
  raw: CborValue;
  conversation: string;
}

/** What a look needs from the agent. */
export interface LogLookContext {
  /** The relay's pinned key (its log key). */
  relayKey: Uint8Array;
  /** The conversations known now (hex ids). */
  conversations: () => string[];
  /** The conversation (hex) an entry is about, or null. */
  conversationOf: (entry: AuditEntry) => string | null;
  /** Checks and shows one entry; called in index order per conversation. */
  found: (f: FoundEntry) => Promise<void>;
}

function seenFromCbor(b: Uint8Array | undefined): SeenHead | null {
  if (b === undefined) return null;
  const m = fromCbor(b);
  if (m === null || typeof m !== "object" || m instanceof Uint8Array || Array.isArray(m)) return null;
  return typeof m.size === "number" && m.root instanceof Uint8Array ? { size: m.size, root: m.root } : null;
}

function indicesFromCbor(b: Uint8Array): number[] {
  const v = fromCbor(b);
  return Array.isArray(v) ? v.filter((x): x is number => typeof x === "number") : [];
}

/** The agent's reading of the audit log, one look at a time. */
export class AuditLogReader {
  /** Conversations whose notices were read this session (hex). */
  private readonly loaded = new Set<string>();
  private running: Promise<void> | null = null;
  private again = false;

  constructor(private readonly store: Store) {}

  /** The kept position (size 0 before the first look). */
  async position(): Promise<SeenHead> {
    return (await seenFromCbor(await this.store.get(LOG_SCAN_RECORD))) ?? { size: 0, root: new Uint8Array(32) };
  }

  /** Forgets that `id`'s notices were read this session (they are read again at the next look). */
  forget(id: string): void {
    this.loaded.delete(id);
  }

  /**
   * One look (see the module doc). A call while a look runs makes one more look after it (a
   * push that the log grew during a look is not lost).
   *
   * # Errors
   * `AuditLogError` for a log that is not an extension of the kept one or holds entries back;
   * the session's errors. The kept position moves only after a look that succeeded.
   */
  look(s: Session, ctx: LogLookContext): Promise<void> {
    if (this.running !== null) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.lookOnce(s, ctx);
      } while (this.again);
    })();
    return this.running.finally(() => {
      this.running = null;
    });
  }

  private async lookOnce(s: Session, ctx: LogLookContext): Promise<void> {
    const record = await this.store.get(LOG_SCAN_RECORD);
    const kept = seenFromCbor(record) ?? { size: 0, root: new Uint8Array(32) };
    // The compact range of the kept head's leaves; null for a record kept without one (read
    // from 0 below to build it).
    let range: CompactRange | null = kept.size === 0 ? CompactRange.empty() : rangeFromCbor(record);
    const built = range === null;
    const head = await this.head(s, ctx.relayKey);
    const why = await checkConsistent(kept, head, async (old, size) => {
      const r = await s.call({ kind: "get_consistency", old, new: size });
      if (r.kind !== "consistency" || r.old !== old || r.new !== size) throw new AuditLogError("bad_answer", r.kind);
      return r.path;
    });
    if (why !== null) throw new AuditLogError(why, `the relay's audit log (${head.size} entries) does not extend the one this console read up to (${kept.size} entries)`);
    // Conversations not read yet: from their kept indices, or (never seen) the log up to the kept size.
    const fresh = ctx.conversations().filter((id) => !this.loaded.has(id));
    const backfill = new Map<string, number[]>();
    for (const id of fresh) {
      const b = await this.store.get(noticesRecord(id));
      if (b === undefined) {
        if (kept.size > 0) backfill.set(id, []);
        else await this.store.put(noticesRecord(id), toCbor([]));
        continue;
      }
      for (const index of indicesFromCbor(b)) {
        await this.readAt(s, index, (f) => (f.conversation === id ? ctx.found(f) : Promise.resolve()), ctx);
      }
    }
    if (backfill.size > 0 || range === null) {
      // The log up to the kept head, proven to make it up before any entry of it is used.
      const listing = await readListing(s, 0, kept.size, SCAN_PAGE, (e) => backfill.has(ctx.conversationOf(e.entry) ?? ""));
      const rebuilt = CompactRange.empty().extend(listing.leaves);
      proveHead(rebuilt, kept);
      range = rebuilt;
      await keepUnreadable(this.store, listing.unreadable);
      for (const f of aboutConversations(listing.entries, ctx)) {
        backfill.get(f.conversation)?.push(f.index);
        await ctx.found(f);
      }
      for (const [id, list] of backfill) await this.store.put(noticesRecord(id), toCbor(list));
    }
    for (const id of fresh) this.loaded.add(id);
    // The new entries, for every conversation read, proven to make up the new head first.
    if (head.size > kept.size) {
      const listing = await readListing(s, kept.size, head.size, SCAN_PAGE, (e) => this.loaded.has(ctx.conversationOf(e.entry) ?? ""));
      const extended = range.extend(listing.leaves);
      proveHead(extended, head);
      range = extended;
      await keepUnreadable(this.store, listing.unreadable);
      for (const f of aboutConversations(listing.entries, ctx)) {
        const b = await this.store.get(noticesRecord(f.conversation));
        const list = b === undefined ? [] : indicesFromCbor(b);
        if (!list.includes(f.index)) await this.store.put(noticesRecord(f.conversation), toCbor([...list, f.index]));
        await ctx.found(f);
      }
    }
    if (head.size !== kept.size || kept.size === 0 || built) await this.store.put(LOG_SCAN_RECORD, toCbor(rangeToCbor(range)));
  }

  /**
   * Reads entry `index` again and hands it to `ctx.found` (a notice not yet witnessed, checked
   * again).
   *
   * # Errors
   * The session's errors; `held_back` when the relay does not answer it.
   */
  reread(s: Session, index: number, ctx: LogLookContext): Promise<void> {
    return this.readAt(s, index, ctx.found, ctx);
  }

  /** The relay's signed tree head, checked against the pinned key. */
  private async head(s: Session, relayKey: Uint8Array): Promise<TreeHead> {
    const r = await s.call({ kind: "get_tree_head" });
    if (r.kind !== "tree_head") throw new AuditLogError("bad_answer", r.kind);
    try {
      const head = verifyTreeHead(treeHeadFromCbor(r.head), relayKey);
      if (!equal(head.logKey, relayKey)) throw new AuditLogError("bad_head", "signed by another log key");
      return head;
    } catch (e) {
      if (e instanceof AuditLogError) throw e;
      throw new AuditLogError("bad_head", e instanceof Error ? e.message : String(e));
    }
  }

  /**
   * Reads entry `index` and hands it to `hand` if readable and about a conversation. One entry
   * is not proven against a head here: the caller's `checkNotice` proves its inclusion.
   */
  private async readAt(s: Session, index: number, hand: (f: FoundEntry) => Promise<void>, ctx: LogLookContext): Promise<void> {
    const listing = await readListing(s, index, index + 1, SCAN_PAGE, (e) => ctx.conversationOf(e.entry) !== null);
    for (const f of aboutConversations(listing.entries, ctx)) await hand(f);
  }
}

/** The entries of `served` about a conversation, as handed to the caller. */
function aboutConversations(served: readonly ServedEntry[], ctx: LogLookContext): FoundEntry[] {
  return served.flatMap((e) => {
    const conversation = ctx.conversationOf(e.entry);
    return conversation === null ? [] : [{ ...e, conversation }];
  });
}
