/**
 * Revocations of this browser's consents made elsewhere — another browser or device holding the
 * same account — learned from the audit log as the Rust client's `consent list` learns them
 * (`client/src/escrow/consent.rs`, `consent_log`). The relay makes no notice of a revocation, so
 * the customer reads the log's entries (`get_entries`: the relay serves a customer the entries
 * about its own conversations and withholds the others' as leaf hashes), from where the last
 * read stopped (`rights/scan`), and takes a `consent_revocation` of a consent granted here only
 * once `checkEntry` holds: signed by this account's own key, about the consent's conversation,
 * proven included in a signed tree head consistent with the last one this customer accepted.
 * The relay's word is never enough: an entry it forges or cannot prove is not taken (the reading
 * stops there and starts again from it at the next look), and one it withholds leaves the
 * consent as it was.
 */
import { ProtocolError, equal, fromCbor, toCbor, toHex, type CborValue } from "@sealdesk/protocol";
import { CONSENT_PREFIX, REVOKED_PREFIX, type RightsHost } from "./customer-rights.js";
import { auditEntryFromCbor, treeHeadFromCbor } from "./notice.js";

/** Where the customer's reading of the log for revocations stopped: `rights/scan` → the next index. */
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
 * The session's errors; a `ProtocolError` (`malformed`) for an answer of the wrong kind.
 */
export async function learnRevocations(host: RightsHost): Promise<string[]> {
  const s = host.session();
  if (s === null || host.conversation() === null) return [];
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
  if (h.kind !== "tree_head") throw new ProtocolError("malformed", `unexpected answer ${h.kind}`);
  const size = treeHeadFromCbor(h.head).size;
  const kept = await host.store.get(REVOCATION_SCAN_KEY);
  const v = kept === undefined ? 0 : fromCbor(kept);
  let next = typeof v === "number" ? v : 0;
  const learned: string[] = [];
  pages: while (next < size) {
    const r = await s.call({ kind: "get_entries", from: next, limit: Math.min(PAGE, size - next) });
    if (r.kind !== "entries" || r.from !== next) throw new ProtocolError("malformed", `unexpected answer ${r.kind}`);
    const slots = r.entries.length + r.withheld.length;
    if (slots === 0) break;
    const withheld = new Set(r.withheld);
    let i = r.from;
    for (const raw of r.entries) {
      while (withheld.has(i)) i += 1;
      // Past the head read: not this look's (a slot the relay made up is not counted).
      if (i >= size) break;
      const id = await revocationOf(host, raw, open, i);
      if (id === "unproven") {
        // Read again from here at the next look (a head that does not hold it yet, a relay
        // that answered badly): never taken on the relay's word.
        next = i;
        break pages;
      }
      if (id !== null) {
        open.delete(id);
        learned.push(id);
      }
      i += 1;
    }
    next = Math.min(r.from + slots, size);
  }
  await host.store.put(REVOCATION_SCAN_KEY, toCbor(next));
  return learned;
}

/**
 * The consent (hex) that entry `raw` at `index` revokes, once proven (`checkEntry`); null when it
 * names none of `open`; "unproven" when it names one of them but does not hold up (offline, not
 * signed by this account, not proven in the log): the entry served at that index may be the
 * relay's, in place of a genuine one, so it is read again at the next look.
 */
async function revocationOf(host: RightsHost, raw: CborValue, open: Map<string, { conversation: Uint8Array; id: Uint8Array }>, index: number): Promise<string | "unproven" | null> {
  let entry;
  try {
    entry = auditEntryFromCbor(raw);
  } catch {
    return null;
  }
  const e = entry.event;
  if (!("consent_revocation" in e)) return null;
  const id = toHex(e.consent_revocation.consent);
  const mine = open.get(id);
  if (mine === undefined || !equal(mine.conversation, e.consent_revocation.conversation)) return null;
  // Signed by this account, about the consent's conversation, in the log this customer accepted.
  const checked = await host.checkEntry(index, entry);
  if (checked === null || checked.failure !== null) return "unproven";
  await host.store.put(`${REVOKED_PREFIX}${id}`, toCbor({ index, entry: raw, elsewhere: true }));
  return id;
}
