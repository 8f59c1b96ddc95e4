/**
 * The audit log (PROTOCOL §12): events and their layout, entries (signed bytes, leaf, leaf hash),
 * signed tree heads and witness cosignatures. Mirrors `protocol/src/audit.rs`.
 */
import { Writer } from "./codec.js";
import { ProtocolError } from "./errors.js";
import { verifySignature } from "./keys.js";
import { AUDIT_ENTRY, COSIGNATURE, TREE_HEAD } from "./labels.js";
import { leafHash } from "./merkle.js";
import type { EpochRange, Scope } from "./release.js";
import { SCOPES } from "./release.js";

/** What a release was based on. */
export type ReleaseBasis = { consent: { id: Uint8Array; scope: Scope; issuedAt: number } } | { dispute: { id: Uint8Array; approvers: Uint8Array[] } };

/** An audit event (§12.1). */
export type AuditEvent =
  | { release: { org: string; requestHash: Uint8Array; conversation: Uint8Array; epochs: EpochRange; basis: ReleaseBasis; master: Uint8Array } }
  | { erasure: { conversation: Uint8Array; reason: "retention" | "customer request" } }
  | { consent_revocation: { conversation: Uint8Array; consent: Uint8Array } }
  | { policy_change: { org: string; version: number; policyHash: Uint8Array } }
  | { dispute_closed: { org: string; conversation: Uint8Array; ticket: Uint8Array; because: ClosedBecause } }
  /**
   * A kind a later version adds (§12.1): its code and the rest of its canonical layout as
   * served. A reader passes over it (counted and said), never reads it as a kind above.
   */
  | { extension: { code: number; body: Uint8Array } };

/** Why a dispute ticket was closed (§10.5a): the master's reason, or the relay's own close. */
export type ClosedBecause = { master: string } | "released" | "rejected";

/** Event codes of the layout. */
export const EVENT_CODES = { release: 1, erasure: 2, consent_revocation: 3, policy_change: 4, dispute_closed: 5 } as const;

/** The lowest event code a later version may add (`1..=5` are the kinds above). */
export const FIRST_EXTENSION_CODE = 6;

/**
 * An event of a kind this version cannot read, from the CBOR body of `{ extension: … }`.
 *
 * # Errors
 * `ProtocolError` (`malformed`) for a code this version reads (or 0, or not a byte): served in
 * this form it would be passed over unread with its genuine leaf, a release hidden.
 */
export function extensionEvent(code: number, body: Uint8Array): AuditEvent {
  if (!Number.isInteger(code) || code < FIRST_EXTENSION_CODE || code > 255) {
    throw new ProtocolError("malformed", `an event of code ${code} served as a kind this version cannot read: codes 1 to 5 are kinds it reads, and 0 is none`);
  }
  return { extension: { code, body } };
}

/** Appends an event's canonical layout. */
export function writeEvent(w: Writer, e: AuditEvent): Writer {
  if ("extension" in e) return w.u8(e.extension.code).fixed(e.extension.body);
  if ("release" in e) {
    const r = e.release;
    w.u8(1).str(r.org).fixed(r.requestHash).fixed(r.conversation).u32(r.epochs.first).u32(r.epochs.last);
    if ("consent" in r.basis) w.u8(1).fixed(r.basis.consent.id).u8(SCOPES[r.basis.consent.scope]).u64(r.basis.consent.issuedAt);
    else {
      w.u8(2).fixed(r.basis.dispute.id).count(r.basis.dispute.approvers.length);
      for (const a of r.basis.dispute.approvers) w.fixed(a);
    }
    return w.fixed(r.master);
  }
  if ("erasure" in e) return w.u8(2).fixed(e.erasure.conversation).str(e.erasure.reason);
  if ("consent_revocation" in e) return w.u8(3).fixed(e.consent_revocation.conversation).fixed(e.consent_revocation.consent);
  if ("dispute_closed" in e) {
    const d = e.dispute_closed;
    w.u8(5).str(d.org).fixed(d.conversation).fixed(d.ticket);
    if (typeof d.because === "object") return w.u8(1).str(d.because.master);
    return w.u8(d.because === "released" ? 2 : 3);
  }
  return w.u8(4).str(e.policy_change.org).u32(e.policy_change.version).fixed(e.policy_change.policyHash);
}

/** An audit-log entry. */
export interface AuditEntry {
  event: AuditEvent;
  at: number;
  signer: Uint8Array;
  signature: Uint8Array;
}

/** `str(AUDIT_ENTRY) ‖ event ‖ u64(at) ‖ signer[32]`. */
export function entrySignedBytes(e: Omit<AuditEntry, "signature">): Uint8Array {
  return writeEvent(Writer.withLabel(AUDIT_ENTRY), e.event).u64(e.at).fixed(e.signer).toBytes();
}

/** `bytes(signed bytes) ‖ signature`: the Merkle leaf. */
export function entryLeaf(e: AuditEntry): Uint8Array {
  return new Writer().bytes(entrySignedBytes(e)).fixed(e.signature).toBytes();
}

/** The entry's leaf hash. */
export function entryLeafHash(e: AuditEntry): Uint8Array {
  return leafHash(entryLeaf(e));
}

/** Checks the entry's signature (the signer's role is the reader's check, §12.3). */
export function verifyEntry(e: AuditEntry): AuditEntry {
  verifySignature(e.signer, entrySignedBytes(e), e.signature, "audit entry");
  return e;
}

/** The event kind named by the code after the label of an entry's signed bytes. */
export function eventKindOf(signed: Uint8Array): keyof typeof EVENT_CODES {
  const labelLen = 4 + AUDIT_ENTRY.length;
  const code = signed[labelLen];
  const kind = (Object.keys(EVENT_CODES) as (keyof typeof EVENT_CODES)[]).find((k) => EVENT_CODES[k] === code);
  if (kind === undefined) throw new ProtocolError("malformed", "audit event code");
  return kind;
}

/** A signed tree head (§12.3). */
export interface TreeHead {
  size: number;
  root: Uint8Array;
  timestamp: number;
  logKey: Uint8Array;
  signature: Uint8Array;
}

/** `str(TREE_HEAD) ‖ u64(size) ‖ root ‖ u64(timestamp) ‖ log_key`. */
export function treeHeadSignedBytes(t: Omit<TreeHead, "signature">): Uint8Array {
  return Writer.withLabel(TREE_HEAD).u64(t.size).fixed(t.root).u64(t.timestamp).fixed(t.logKey).toBytes();
}

/** Checks a head against the pinned log key. */
export function verifyTreeHead(t: TreeHead, pinnedLogKey: Uint8Array): TreeHead {
  verifySignature(pinnedLogKey, treeHeadSignedBytes(t), t.signature, "tree head");
  return t;
}

/** A witness cosignature (§12.4). */
export interface Cosignature {
  witness: Uint8Array;
  logKey: Uint8Array;
  size: number;
  root: Uint8Array;
  timestamp: number;
  signature: Uint8Array;
}

/** `str(COSIGNATURE) ‖ log_key ‖ u64(size) ‖ root ‖ u64(timestamp) ‖ witness`. */
export function cosignatureSignedBytes(c: Omit<Cosignature, "signature">): Uint8Array {
  return Writer.withLabel(COSIGNATURE).fixed(c.logKey).u64(c.size).fixed(c.root).u64(c.timestamp).fixed(c.witness).toBytes();
}

/** Checks a cosignature's signature under its witness. */
export function verifyCosignature(c: Cosignature): Cosignature {
  verifySignature(c.witness, cosignatureSignedBytes(c), c.signature, "cosignature");
  return c;
}
