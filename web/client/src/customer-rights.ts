/**
 * What a customer may do about its own conversation besides chatting, as the Rust client does it
 * (`client/src/escrow/consent.rs`): list the consents granted from this browser with where each
 * stands, revoke one, erase the conversation on the relay, and export its own verified history.
 *
 * - **Where a consent stands** is read from this conversation's notices (every release and
 *   revocation entry about the conversation reaches its customer as a `notice` item, checked in
 *   `customer-notices.ts`): *used* once a release notice under it is genuine or not yet
 *   witnessed; *revoked* once a revocation signed by this account's key was proven in the log
 *   — made here, or on another device and read from the log (`customer-revocations.ts`, as the
 *   Rust client reads it with `get_entries`; the relay makes no notice of a revocation: the
 *   record is kept here with its entry); *expired* past its validity; else *active*.
 * - **Revoking** signs a `consent_revocation` entry (PROTOCOL §12.1) and appends it; it says
 *   "revoked" only once the entry is proven in a signed head consistent with the last one this
 *   customer accepted (`checkEntry`), and "witnessed" only once enough of the org's trustees
 *   cosigned a log holding it. A consent already used is not revoked (nothing logged).
 * - **Erasing** sends the customer's signed `ErasureRequest` with its own signed `statement`
 *   (the erasure entry the relay logs unchanged, §10.7). The local copy stays readable.
 * - **Export** is the JSON the CLI writes with `sealdesk history --export` (its `lines` the
 *   same `{ line: "item", entry: { type, … } }` shape), with `format` and `exported_at` added.
 */
import { ProtocolError, consentSignedBytes, entrySignedBytes, erasureSignedBytes, fromCbor, toCbor, toHex, type AuditEntry, type CborValue, type IdentityKeys, type Policy } from "@sealdesk/protocol";
import { CustomerError } from "./customer-model.js";
import { consentToCbor } from "./frames.js";
import type { ChatLine } from "./customer.js";
import type { ShownNotice } from "./customer-notices.js";
import { auditEntryFromCbor, type checkNotice } from "./notice.js";
import { SessionError, type Session } from "./session.js";
import type { Store } from "./store.js";

/** Where a consent stands (the words the CLI's `consent list` prints). */
export type ConsentState = "active" | "used" | "expired" | "revoked";

/** A consent granted from this browser, with where it stands. */
export interface ConsentStatus {
  /** The consent's id (hex), as given to the business. */
  id: string;
  purpose: string;
  issuedAt: number;
  expiresAt: number;
  state: ConsentState;
  /** The audit-log entry that used or revoked it, when known. */
  entry: number | null;
}

/** What revoking did. */
export type RevokeOutcome =
  /** Revoked (now, or `already` before): the entry at `index` is proven in the log; `witnessed` once enough trustees vouch for it. */
  | { state: "revoked"; index: number; witnessed: boolean; already: boolean }
  /** A trustee already released under it (entry `index`): a revocation cannot undo that, so none was logged. */
  | { state: "used"; index: number };

/** Why a customer's request about its rights failed. */
export type RightsFailure = "unknown_consent" | "not_open" | "offline" | "not_proven" | "refused";

/** A consent, revocation or erasure request failed; `failure` says why. */
export class RightsError extends Error {
  constructor(
    readonly failure: RightsFailure,
    detail?: string,
  ) {
    super(detail === undefined ? failure : `${failure}: ${detail}`);
    this.name = "RightsError";
  }
}

/** What these functions need from the customer. */
export interface RightsHost {
  store: Store;
  keys: IdentityKeys;
  now: () => number;
  org: string;
  /** The conversation id, once open. */
  conversation: () => Uint8Array | null;
  session: () => Session | null;
  /** The relay's pinned key (it signs the tree heads), once connected. */
  relayKey: () => Uint8Array | null;
  /** The notices shown so far. */
  notices: () => readonly ShownNotice[];
  /** Checks an entry just appended, as a notice (null when offline). */
  checkEntry: (index: number, entry: AuditEntry) => Promise<Awaited<ReturnType<typeof checkNotice>> | null>;
}

/** What granting a consent needs besides the host. */
export interface GrantFrom {
  /** The org's latest policy, if checked. */
  policy: Policy | null;
  /** The conversation's newest epoch, if any. */
  lastEpoch: number | null;
  random: (n: number) => Uint8Array;
}

/**
 * Grants the org's master a single-use consent to read epochs 0 to the newest of the
 * conversation for `purpose`, valid for `validSecs` (at most the policy's longest), signed by the
 * customer, kept in the store and shared with the relay; its id (hex).
 */
export async function grantConsent(host: RightsHost, from: GrantFrom, purpose: string, validSecs: number): Promise<string> {
  const conversation = host.conversation();
  const { policy, lastEpoch } = from;
  if (conversation === null || lastEpoch === null) throw new CustomerError("not_open");
  if (policy === null || !policy.allowConsent) throw new CustomerError("bad_answer", "this org's policy allows no consent");
  const issuedAt = host.now();
  const unsigned = {
    id: from.random(16),
    org: policy.org,
    conversation,
    epochs: { first: 0, last: lastEpoch },
    grantee: policy.master.signingKey,
    scope: "full" as const,
    purpose,
    issuedAt,
    expiresAt: issuedAt + Math.min(validSecs, policy.maxReleaseValiditySecs),
    customer: host.keys.signingPublic,
  };
  const token = { ...unsigned, signature: host.keys.sign(consentSignedBytes(unsigned)) };
  await host.store.put(`${CONSENT_PREFIX}${toHex(token.id)}`, toCbor(consentToCbor(token)));
  const s = host.session();
  if (s === null) throw new SessionError("closed", "offline");
  const r = await s.call({ kind: "share_consent", token });
  if (r.kind !== "stored") throw new CustomerError("bad_answer", r.kind);
  return toHex(token.id);
}

/** The ids (hex) of the consents granted from this browser. */
export async function consentIds(store: Store): Promise<string[]> {
  return (await store.keys(CONSENT_PREFIX)).map((k) => k.slice(CONSENT_PREFIX.length));
}

/** The record of a consent granted here (the token's CBOR, `consent/<id>`). */
export const CONSENT_PREFIX = "consent/";
/**
 * A revocation this browser confirmed: `revoked/<id>` → `{ index, entry }` (with `elsewhere:
 * true` when it was made on another device and learned from the log, `customer-revocations.ts`).
 */
export const REVOKED_PREFIX = "revoked/";
/** The conversation was erased on the relay at the customer's request: `{ at }`. */
export const ERASED_KEY = "erased";

type M = { [k: string]: CborValue };
function asMap(v: CborValue): M {
  if (v === null || typeof v !== "object" || v instanceof Uint8Array || Array.isArray(v)) throw new ProtocolError("malformed", "stored record");
  return v;
}
const num = (v: CborValue | undefined): number => (typeof v === "number" ? v : typeof v === "bigint" ? Number(v) : 0);

function entryToCbor(e: AuditEntry): CborValue {
  const ev = e.event;
  let event: CborValue;
  if ("consent_revocation" in ev) event = { consent_revocation: { conversation: ev.consent_revocation.conversation, consent: ev.consent_revocation.consent } };
  else if ("erasure" in ev) event = { erasure: { conversation: ev.erasure.conversation, reason: ev.erasure.reason } };
  else throw new ProtocolError("malformed", "only a customer's own entries are written here");
  return { event, at: e.at, signer: e.signer, signature: e.signature };
}

function sign(keys: IdentityKeys, event: AuditEntry["event"], at: number): AuditEntry {
  const unsigned = { event, at, signer: keys.signingPublic };
  return { ...unsigned, signature: keys.sign(entrySignedBytes(unsigned)) };
}

/** The consents granted from this browser, each with where it stands. */
export async function consentStates(host: RightsHost): Promise<ConsentStatus[]> {
  const out: ConsentStatus[] = [];
  const notices = host.notices();
  const now = host.now();
  for (const k of await host.store.keys(CONSENT_PREFIX)) {
    const b = await host.store.get(k);
    if (b === undefined) continue;
    const t = asMap(fromCbor(b));
    const id = k.slice(CONSENT_PREFIX.length);
    const expiresAt = num(t.expires_at);
    // A release that passed every check (witnessed or not yet) used it: single use.
    const used = notices.find((n) => n.kind === "release" && n.consent === id && (n.verified || n.unwitnessed !== null));
    const mine = await host.store.get(`${REVOKED_PREFIX}${id}`);
    let state: ConsentState;
    let entry: number | null = null;
    if (used !== undefined) [state, entry] = ["used", used.index];
    else if (mine !== undefined) [state, entry] = ["revoked", num(asMap(fromCbor(mine)).index)];
    else if (expiresAt <= now) state = "expired";
    else state = "active";
    out.push({ id, purpose: typeof t.purpose === "string" ? t.purpose : "", issuedAt: num(t.issued_at), expiresAt, state, entry });
  }
  return out;
}

/**
 * Revokes consent `id` (hex): see the module documentation. Throws `RightsError` —
 * `unknown_consent`, `offline`, `refused` (the relay's error), `not_proven` (the relay answered
 * "appended" but the log does not prove it: nothing is said revoked).
 */
export async function revokeConsent(host: RightsHost, id: string): Promise<RevokeOutcome> {
  const stored = await host.store.get(`${CONSENT_PREFIX}${id}`);
  if (stored === undefined) throw new RightsError("unknown_consent", id);
  const token = asMap(fromCbor(stored));
  const conversation = token.conversation;
  const consent = token.id;
  if (!(conversation instanceof Uint8Array) || !(consent instanceof Uint8Array)) throw new ProtocolError("malformed", "stored consent");
  const status = (await consentStates(host)).find((c) => c.id === id);
  if (status?.state === "used" && status.entry !== null) return { state: "used", index: status.entry };
  const s = host.session();
  if (s === null) throw new RightsError("offline");
  // Already revoked from here: not logged again, but checked again — proven, and witnessed yet?
  const kept = await host.store.get(`${REVOKED_PREFIX}${id}`);
  if (kept !== undefined) {
    const m = asMap(fromCbor(kept));
    const index = num(m.index);
    const earlier = m.entry === undefined ? null : auditEntryFromCbor(m.entry);
    const checked = earlier === null ? null : await host.checkEntry(index, earlier);
    if (checked === null) throw new RightsError("offline");
    if (checked.failure !== null) throw new RightsError("not_proven", checked.text);
    return { state: "revoked", index, witnessed: checked.unwitnessed === null, already: true };
  }
  const entry = sign(host.keys, { consent_revocation: { conversation, consent } }, host.now());
  const r = await s.call({ kind: "append_audit", entry: entryToCbor(entry) });
  if (r.kind === "error") throw new RightsError("refused", `${r.code}: ${r.message}`);
  if (r.kind !== "appended") throw new RightsError("refused", `unexpected answer ${r.kind}`);
  // Said "revoked" only once the entry is proven in the log this customer has been shown.
  const checked = await host.checkEntry(r.index, entry);
  if (checked === null) throw new RightsError("offline");
  if (checked.failure !== null) throw new RightsError("not_proven", checked.text);
  const witnessed = checked.unwitnessed === null;
  await host.store.put(`${REVOKED_PREFIX}${id}`, toCbor({ index: r.index, entry: entryToCbor(entry) }));
  return { state: "revoked", index: r.index, witnessed, already: false };
}

/**
 * Asks the relay to erase the conversation (refused `legal_hold` while a dispute is open): the
 * customer's signed `ErasureRequest` with its own erasure entry as `statement`. The local copy
 * is kept and marked erased. Throws `RightsError` (`not_open`, `offline`, `refused`).
 */
export async function eraseConversation(host: RightsHost): Promise<void> {
  const conversation = host.conversation();
  if (conversation === null) throw new RightsError("not_open");
  const s = host.session();
  if (s === null) throw new RightsError("offline");
  const at = host.now();
  const statement = sign(host.keys, { erasure: { conversation, reason: "customer request" } }, at);
  const unsigned = { conversation, requestedAt: at, customer: host.keys.signingPublic };
  const signature = host.keys.sign(erasureSignedBytes(unsigned));
  const r = await s.call({ kind: "erase", request: { conversation, requested_at: at, customer: unsigned.customer, signature, statement: entryToCbor(statement) } });
  if (r.kind === "error") throw new RightsError("refused", `${r.code}: ${r.message}`);
  if (r.kind !== "ok") throw new RightsError("refused", `unexpected answer ${r.kind}`);
  await host.store.put(ERASED_KEY, toCbor({ at }));
}

/** The customer's own verified history as the JSON the CLI's `history --export` writes. */
export interface HistoryExport {
  format: "sealdesk-history/1";
  conversation: string;
  org: string;
  summary: string | null;
  erased: boolean;
  exported_at: number;
  lines: { line: "item"; entry: Record<string, unknown>; delivery?: "sent" | "delivered" | "read"; number?: number }[];
}

/** Builds the export from the verified lines and notices shown. */
export function historyExport(
  conversation: string,
  org: string,
  summary: string | null,
  erased: boolean,
  now: number,
  lines: readonly ChatLine[],
  notices: readonly ShownNotice[],
  marks: { read: number; delivered: number },
): HistoryExport {
  const items: { seq: number; line: HistoryExport["lines"][number] }[] = [];
  let number = 0;
  for (const l of [...lines].sort((a, b) => a.seq - b.seq)) {
    number += 1;
    const entry = { type: "message", seq: l.seq, stored_at: l.storedAt, sent_at: l.sentAt, epoch: l.epoch, counter: l.counter, sender: l.sender, mine: l.mine, kind: l.attachment === undefined ? "text" : "attachment", text: l.text };
    const delivery = !l.mine ? undefined : l.seq <= marks.read ? "read" : l.seq <= marks.delivered ? "delivered" : "sent";
    items.push({ seq: l.seq, line: { line: "item", entry, ...(delivery === undefined ? {} : { delivery }), number } });
  }
  for (const n of notices) {
    items.push({ seq: n.seq, line: { line: "item", entry: { type: "notice", seq: n.seq, stored_at: n.storedAt, text: n.text, verified: n.verified, index: n.index } } });
  }
  items.sort((a, b) => a.seq - b.seq);
  return { format: "sealdesk-history/1", conversation, org, summary, erased, exported_at: now, lines: items.map((i) => i.line) };
}

/** Whether the conversation was erased at this customer's request (kept locally). */
export async function isErased(store: Store): Promise<boolean> {
  return (await store.get(ERASED_KEY)) !== undefined;
}
