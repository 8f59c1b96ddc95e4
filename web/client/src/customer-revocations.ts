/**
 * Revocations of this browser's consents made elsewhere — another browser or device holding the
 * same account — learned from the audit log as the Rust client's `consent list` learns them
 * (`client/src/escrow/consent.rs`, `consent_log`). The relay makes no notice of a revocation, so
 * the customer reads the log's entries (`get_entries`: the relay serves a customer the entries
 * about its own conversations and withholds the others' as leaf hashes), from where the last
 * read stopped, and takes a `consent_revocation` of a consent granted here only once
 * `checkEntry` holds: signed by this account's own key, about the consent's conversation,
 * proven included in a signed tree head consistent with the last one this customer accepted.
 * The relay's word is never enough: an entry it forges or cannot prove is not taken (the reading
 * stops there and starts again from it at the next look), and one it withholds leaves the
 * consent as it was.
 *
 * Every listing is proven to make up the relay's signed tree head before any entry of it is
 * looked at (PROTOCOL §12.3, `audit-listing.ts`): where the reading stopped is kept with the
 * compact range of the leaves before it (`rights/scan` → `{ size, root, frontier }`), extended
 * with the leaves served up to the head and compared with the head's root and size; a listing
 * with an entry dropped, added, swapped or altered, or a withheld leaf changed, is refused
 * (`AuditLogError`, `listing_not_head`) and the position kept is left as it was. The cost of a
 * look is the entries past the position (read once each, as before) and at most 53 hashes
 * kept; a position kept before the frontier was (a bare number) is dropped and the log read from
 * 0 once, as after a consent is granted or shared (`customer-consents.ts` deletes the position).
 */
import { CompactRange, equal, fromCbor, toCbor, toHex, verifyTreeHead } from "@sealdesk/protocol";
import { AuditLogError, keepUnreadable, proveHead, rangeFromCbor, rangeToCbor, readListing, type ServedEntry } from "./audit-listing.js";
import { CONSENT_PREFIX, REVOKED_PREFIX, type RightsHost } from "./customer-rights.js";
import { treeHeadFromCbor } from "./notice.js";

/**
 * Where the customer's reading of the log for revocations stopped: `rights/scan` →
 * `{ size, root, frontier }` (the next index, and the compact range of the leaves before it).
 */
export const REVOCATION_SCAN_KEY = "rights/scan";
/** Log entries one `get_entries` asks for. */
const PAGE = 200;

/**
 * Reads the log's new entries for revocations of this browser's consents made elsewhere, and
 * keeps each one proven as `revoked/<id>` (the record a revocation made here keeps), so that
 * `consentStates` shows it revoked with its entry. Returns the ids (hex) learned now. Nothing
 * happens offline or before a conversation is open.
 *
 * # Errors
 * `AuditLogError`: `bad_head` for a tree head not signed by the pinned relay key,
 * `listing_not_head` for a listing that does not make up it, `shrank` for a head smaller than
 * the position kept, `held_back` and `bad_answer` as `readListing` says; the session's errors.
 */
export async function learnRevocations(host: RightsHost): Promise<string[]> {
  const s = host.session();
  const relayKey = host.relayKey();
  if (s === null || relayKey === null || host.conversation() === null) return [];
  // The consents granted here and not known revoked: (conversation, id) by id (hex).
  const open = new Map<string, { conversation: Uint8Array; id: Uint8Array }>();
  for (const k of await host.store.keys(CONSENT_PREFIX)) {
    const id = k.slice(CONSENT_PREFIX.length);
    if ((await host.store.get(`${REVOKED_PREFIX}${id}`)) !== undefined) continue;
    const b = await host.store.get(k);
    const t = b === undefined ? null : fromCbor(b);
    if (t === null || typeof t !== "object" || t instanceof Uint8Array || Array.isArray(t)) continue;
    if (t.conversation instanceof Uint8Array && t.id instanceof Uint8Array) open.set(id, { conversation: t.conversation, id: t.id });
  }
  if (open.size === 0) return [];
  const h = await s.call({ kind: "get_tree_head" });
  if (h.kind !== "tree_head") throw new AuditLogError("bad_answer", h.kind);
  let head;
  try {
    head = verifyTreeHead(treeHeadFromCbor(h.head), relayKey);
  } catch (e) {
    throw new AuditLogError("bad_head", e instanceof Error ? e.message : String(e));
  }
  if (!equal(head.logKey, relayKey)) throw new AuditLogError("bad_head", "signed by another log key");
  const kept = rangeFromCbor(await host.store.get(REVOCATION_SCAN_KEY)) ?? CompactRange.empty();
  if (head.size < kept.size) throw new AuditLogError("shrank", `the relay's audit log (${head.size} entries) is smaller than the ${kept.size} this customer read`);
  // Every slot past the position, proven to make up the head before any entry is looked at.
  const listing = await readListing(s, kept.size, head.size, PAGE, (e) => namesOpen(e, open));
  const whole = kept.extend(listing.leaves);
  proveHead(whole, head);
  // Passed over, and said (the widget's `unreadableNote`): they could be about this customer.
  await keepUnreadable(host.store, listing.unreadable);
  let stop = whole;
  const learned: string[] = [];
  for (const e of listing.entries) {
    const id = await revocationOf(host, e, open);
    if (id === "unproven") {
      // Read again from here at the next look (a head that does not hold it yet, a relay
      // that answered badly): never taken on the relay's word.
      stop = kept.extend(listing.leaves.slice(0, e.index - kept.size));
      break;
    }
    if (id !== null) {
      open.delete(id);
      learned.push(id);
    }
  }
  await host.store.put(REVOCATION_SCAN_KEY, toCbor(rangeToCbor(stop)));
  return learned;
}

/** Whether `e` is a revocation of one of the `open` consents, about its conversation. */
function namesOpen(e: ServedEntry, open: ReadonlyMap<string, { conversation: Uint8Array }>): boolean {
  const ev = e.entry.event;
  if (!("consent_revocation" in ev)) return false;
  const mine = open.get(toHex(ev.consent_revocation.consent));
  return mine !== undefined && equal(mine.conversation, ev.consent_revocation.conversation);
}

/**
 * The consent (hex) that the served entry `e` revokes, once proven (`checkEntry`); null when it
 * names none of `open` (one learned earlier in this reading); "unproven" when it names one of
 * them but does not hold up (offline, not signed by this account, not proven in the log): the
 * relay may have logged an entry of its own making there, so it is read again at the next look.
 */
async function revocationOf(host: RightsHost, e: ServedEntry, open: Map<string, { conversation: Uint8Array; id: Uint8Array }>): Promise<string | "unproven" | null> {
  if (!namesOpen(e, open) || !("consent_revocation" in e.entry.event)) return null;
  const id = toHex(e.entry.event.consent_revocation.consent);
  // Signed by this account, about the consent's conversation, in the log this customer accepted.
  const checked = await host.checkEntry(e.index, e.entry);
  if (checked === null || checked.failure !== null) return "unproven";
  await host.store.put(`${REVOKED_PREFIX}${id}`, toCbor({ index: e.index, entry: e.raw, elsewhere: true }));
  return id;
}
