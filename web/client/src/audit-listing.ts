/**
 * Reading the audit log's entries and proving the listing makes up a signed tree head (PROTOCOL
 * §12.3 "Who reads the log"), for the browser's two readers of the log: the console agent's scan
 * (`agent-log.ts`) and the customer's learning of revocations made elsewhere
 * (`customer-revocations.ts`). The Rust client does the same in `client/src/escrow/log.rs`
 * (`slots_make_head`).
 *
 * `get_entries` answers each slot either with an entry the reader may read or, withheld, with
 * the entry's leaf hash (§12.2). The leaf of a readable entry is computed here from the entry
 * (`entryLeafHash`: its signed bytes and signature, not the CBOR it came in), so a reader holding
 * the compact range of the leaves before (`CompactRange`, kept with its position) extends it
 * with the leaves it was served and compares the root with the head's: an entry dropped (the
 * rest shifted), added, swapped for another, altered, or a withheld leaf changed makes another
 * root, and the listing is refused (`listing_not_head`) before any of its entries is used.
 *
 * An entry of a kind a later version adds (§12.1, `{ extension: { code, body } }`) has its leaf
 * computed the same way, from its code and body as served, so the listing is still proven; it is
 * then passed over (never handed to `want`), its index listed in `unreadable`, and each reader
 * keeps those indexes (`keepUnreadable`) for the widget and the console to say
 * (`unreadableNote`): "1 entry of a kind this version cannot read at index N — update sealdesk".
 * An entry that does not decode at all still refuses the listing.
 */
import { CompactRange, entryLeafHash, equal, fromCbor, toCbor, type AuditEntry, type CborValue, type TreeHead } from "@sealdesk/protocol";
import { auditEntryFromCbor } from "./notice.js";
import type { Session } from "./session.js";
import type { Store } from "./store.js";

/** Why the relay's log was refused. */
export type AuditLogFailure = "shrank" | "forked" | "not_an_extension" | "held_back" | "bad_head" | "bad_answer" | "listing_not_head";

/** The relay's audit log is not one this reader may accept; `failure` says why. */
export class AuditLogError extends Error {
  constructor(
    readonly failure: AuditLogFailure,
    detail?: string,
  ) {
    super(detail === undefined ? failure : `${failure}: ${detail}`);
    this.name = "AuditLogError";
  }
}

/** A readable entry as served: its index, decoded, and its CBOR. */
export interface ServedEntry {
  index: number;
  entry: AuditEntry;
  raw: CborValue;
}

/** What a reading of slots `from..to` brought: the leaf hash of every slot, and the entries kept. */
export interface Listing {
  /** The leaf hashes of slots `from..to`, in order (computed for readable entries, as served for withheld ones). */
  leaves: Uint8Array[];
  /** The readable entries `want` kept, in index order. */
  entries: ServedEntry[];
  /** The indexes of readable entries of a kind this version cannot read, passed over. */
  unreadable: number[];
}

/**
 * Reads slots `from..to` in pages of `page`, every slot accounted for, and returns their leaf
 * hashes and the readable entries `want` keeps. Nothing is proven here: the caller extends its
 * compact range with `leaves` and checks it with `proveHead` before using `entries`.
 *
 * # Errors
 * `AuditLogError`: `bad_answer` for an answer of another kind or from another index;
 * `held_back` for a page with no slot; `listing_not_head` for a page with more slots than asked
 * for or a readable entry that does not decode (its leaf cannot be computed, so the listing
 * cannot be proven); the session's errors.
 */
export async function readListing(s: Session, from: number, to: number, page: number, want: (e: ServedEntry) => boolean): Promise<Listing> {
  const leaves: Uint8Array[] = [];
  const entries: ServedEntry[] = [];
  const unreadable: number[] = [];
  let next = from;
  while (next < to) {
    const limit = Math.min(page, to - next);
    const r = await s.call({ kind: "get_entries", from: next, limit });
    if (r.kind !== "entries" || r.from !== next) throw new AuditLogError("bad_answer", r.kind);
    const slots = r.entries.length + r.withheld.length;
    if (slots === 0) throw new AuditLogError("held_back", `entries ${next}..${to} are in the signed log but the relay does not answer them`);
    if (slots > limit) throw new AuditLogError("listing_not_head", `asked for ${limit} entries from ${next}, the relay listed ${slots}`);
    // The frame decoder checked the withheld indexes: increasing, each inside next..next + slots.
    const readable = r.entries[Symbol.iterator]();
    let w = 0;
    for (let index = next; index < next + slots; index++) {
      const held = r.withheld[w];
      if (held !== undefined && held.index === index) {
        leaves.push(held.leaf);
        w += 1;
        continue;
      }
      const it = readable.next();
      if (it.done === true) throw new AuditLogError("listing_not_head", `slot ${index}: neither an entry nor withheld`);
      const raw = it.value;
      let entry: AuditEntry;
      try {
        entry = auditEntryFromCbor(raw);
      } catch (e) {
        throw new AuditLogError("listing_not_head", `entry ${index} does not decode (${e instanceof Error ? e.message : String(e)}): the listing cannot be proven`);
      }
      leaves.push(entryLeafHash(entry));
      if ("extension" in entry.event) {
        unreadable.push(index);
        continue;
      }
      const served = { index, entry, raw };
      if (want(served)) entries.push(served);
    }
    next += slots;
  }
  return { leaves, entries, unreadable };
}

/** Where the readers keep the indexes of the entries they passed over unread: `log/unreadable` → `[index…]`. */
export const UNREADABLE_RECORD = "log/unreadable";

/** Adds `indexes` (of a proven listing) to those kept in `UNREADABLE_RECORD`. */
export async function keepUnreadable(store: Store, indexes: readonly number[]): Promise<void> {
  if (indexes.length === 0) return;
  const kept = await unreadableIndexes(store);
  const all = [...new Set([...kept, ...indexes])].sort((a, b) => a - b);
  if (all.length !== kept.length) await store.put(UNREADABLE_RECORD, toCbor(all));
}

/** The indexes kept in `UNREADABLE_RECORD`, increasing. */
export async function unreadableIndexes(store: Store): Promise<number[]> {
  const b = await store.get(UNREADABLE_RECORD);
  const v = b === undefined ? null : fromCbor(b);
  return Array.isArray(v) ? v.filter((x): x is number => typeof x === "number") : [];
}

/**
 * The line the widget and the console show for the entries passed over unread, or null: "1 entry
 * of a kind this version cannot read at index 4 — update sealdesk" (the Rust client's words).
 */
export async function unreadableNote(store: Store): Promise<string | null> {
  const at = await unreadableIndexes(store);
  if (at.length === 0) return null;
  if (at.length === 1) return `1 entry of a kind this version cannot read at index ${at[0]} — update sealdesk`;
  return `${at.length} entries of a kind this version cannot read at indexes ${at.join(", ")} — update sealdesk`;
}

/**
 * Checks that `range` (the leaves kept before, extended with those just served) makes up `head`:
 * the same size and root.
 *
 * # Errors
 * `AuditLogError` (`listing_not_head`) otherwise.
 */
export function proveHead(range: CompactRange, head: Pick<TreeHead, "size" | "root">): void {
  if (range.size !== head.size || !equal(range.root(), head.root)) {
    throw new AuditLogError("listing_not_head", `the ${range.size} entries the relay listed do not make up its signed log of ${head.size}: an entry was dropped, added or altered`);
  }
}

/** A position kept in the store with its compact range: `{ size, root, frontier: [bstr(32)…] }`. */
export function rangeToCbor(range: CompactRange): { size: number; root: Uint8Array; frontier: Uint8Array[] } {
  return { size: range.size, root: range.root(), frontier: range.hashes() };
}

/**
 * The compact range kept in a record written by `rangeToCbor`, or null when the record is
 * missing, has no frontier (written before it was kept) or is not one.
 */
export function rangeFromCbor(b: Uint8Array | undefined): CompactRange | null {
  if (b === undefined) return null;
  const m = fromCbor(b);
  if (m === null || typeof m !== "object" || m instanceof Uint8Array || Array.isArray(m)) return null;
  const { size, root, frontier } = m;
  if (typeof size !== "number" || !(root instanceof Uint8Array) || !Array.isArray(frontier)) return null;
  try {
    const range = CompactRange.fromParts(
      size,
      frontier.map((h) => (h instanceof Uint8Array ? h : new Uint8Array(0))),
    );
    return equal(range.root(), root) ? range : null;
  } catch {
    return null;
  }
}
