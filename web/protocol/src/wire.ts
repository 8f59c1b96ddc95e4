/**
 * Wire frames (PROTOCOL §1.4, §13): `version:u8 (= 1) ‖ CBOR(Frame)`, at most 65,536 bytes, the
 * CBOR being what serde derives through ciborium — definite lengths, shortest integers, struct
 * fields as text-keyed maps in declaration order, enums as a text string (unit variant) or a
 * one-entry map. Also the CBOR forms of the protocol objects (cards, policies, epoch records,
 * message envelopes) with the field names of PROTOCOL.md. Mirrors `protocol/src/wire.rs`.
 */
import { decode, encode } from "cbor2";
import type { IdentityCard } from "./card.js";
import { isRole } from "./card.js";
import type { EpochRecord } from "./epoch.js";
import { ProtocolError } from "./errors.js";
import type { Envelope } from "./message.js";
import type { Policy } from "./policy.js";
import type { Sealed } from "./seal.js";

/** The wire version byte. */
export const WIRE_VERSION = 1;
/** Largest frame, version byte included. */
export const MAX_FRAME = 65_536;

/** A CBOR value as this library writes and reads it. */
export type CborValue = null | boolean | number | bigint | string | Uint8Array | CborValue[] | { [key: string]: CborValue };

/** The CBOR of `value` (no version byte): a stored object (`wire::to_cbor`). */
export function toCbor(value: CborValue): Uint8Array {
  return encode(value, { sortKeys: null });
}

/** Decodes exactly one CBOR item; trailing bytes and malformed input are typed errors. */
export function fromCbor(bytes: Uint8Array): CborValue {
  let v: unknown;
  try {
    v = decode(bytes, { preferMap: false, rejectDuplicateKeys: true });
  } catch (e) {
    const msg = e instanceof Error ? e.message : "";
    throw new ProtocolError(/extra|trailing|unexpected data/i.test(msg) ? "trailing_bytes" : "malformed", msg);
  }
  return v as CborValue;
}

/** `0x01 ‖ CBOR(frame)`, refused when longer than `MAX_FRAME`. */
export function encodeFrame(frame: CborValue): Uint8Array {
  const body = toCbor(frame);
  if (body.length + 1 > MAX_FRAME) throw new ProtocolError("frame_too_large", `${body.length + 1} bytes`);
  const out = new Uint8Array(body.length + 1);
  out[0] = WIRE_VERSION;
  out.set(body, 1);
  return out;
}

/** Decodes a frame: size first, then the version byte, then exactly one CBOR item. */
export function decodeFrame(bytes: Uint8Array): CborValue {
  if (bytes.length > MAX_FRAME) throw new ProtocolError("frame_too_large", `${bytes.length} bytes`);
  if (bytes.length === 0) throw new ProtocolError("malformed", "empty frame");
  if (bytes[0] !== WIRE_VERSION) throw new ProtocolError("unknown_version", String(bytes[0]));
  return fromCbor(bytes.subarray(1));
}

/** A request frame: `{ request: { id, body } }`. */
export function requestFrame(id: number, body: CborValue): CborValue {
  return { request: { id, body } };
}

/** A response frame: `{ response: { id, body } }`. */
export function responseFrame(id: number, body: CborValue): CborValue {
  return { response: { id, body } };
}

/** A push frame: `{ push: <push> }`. */
export function pushFrame(push: CborValue): CborValue {
  return { push };
}

/** A card's CBOR map. */
export function cardToCbor(c: IdentityCard): CborValue {
  return { name: c.name, role: c.role, signing_key: c.signingKey, agreement_key: c.agreementKey, created_at: c.createdAt, signature: c.signature };
}

function field(m: CborValue, key: string): CborValue {
  if (m === null || typeof m !== "object" || m instanceof Uint8Array || Array.isArray(m) || !Object.hasOwn(m, key)) {
    throw new ProtocolError("malformed", `missing field ${key}`);
  }
  const v = m[key];
  if (v === undefined) throw new ProtocolError("malformed", `missing field ${key}`);
  return v;
}
function bstr(m: CborValue, key: string, len?: number): Uint8Array {
  const v = field(m, key);
  if (!(v instanceof Uint8Array) || (len !== undefined && v.length !== len)) throw new ProtocolError("malformed", `${key}: expected ${len ?? ""} bytes`);
  return v;
}
function uint(m: CborValue, key: string): number {
  const v = field(m, key);
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw new ProtocolError("malformed", `${key}: expected an unsigned integer`);
  return v;
}
function text(m: CborValue, key: string): string {
  const v = field(m, key);
  if (typeof v !== "string") throw new ProtocolError("malformed", `${key}: expected text`);
  return v;
}

/** A card from its CBOR map (unknown keys ignored; the card is not verified here). */
export function cardFromCbor(m: CborValue): IdentityCard {
  const role = text(m, "role");
  if (!isRole(role)) throw new ProtocolError("malformed", `role ${role}`);
  return { name: text(m, "name"), role, signingKey: bstr(m, "signing_key", 32), agreementKey: bstr(m, "agreement_key", 32), createdAt: uint(m, "created_at"), signature: bstr(m, "signature", 64) };
}

/** A policy's CBOR map. */
export function policyToCbor(p: Policy): CborValue {
  return {
    org: p.org,
    version: p.version,
    master: cardToCbor(p.master),
    trustees: p.trustees.map(cardToCbor),
    trustee_threshold: p.trusteeThreshold,
    arbiters: p.arbiters.map(cardToCbor),
    arbiter_threshold: p.arbiterThreshold,
    allow_consent: p.allowConsent,
    allow_dispute: p.allowDispute,
    max_release_validity_secs: p.maxReleaseValiditySecs,
    rotate_after_messages: p.rotateAfterMessages,
    rotate_after_secs: p.rotateAfterSecs,
    retention_secs: p.retentionSecs,
    history_handoff: p.historyHandoff,
    created_at: p.createdAt,
    signature: p.signature,
    ...(p.requireOpenToken === true ? { require_open_token: true } : {}),
  };
}

/** A sealed blob's CBOR map. */
export function sealedToCbor(s: Sealed): CborValue {
  return { enc: s.enc, ciphertext: s.ciphertext };
}

/** An epoch record's CBOR map. */
export function epochToCbor(r: EpochRecord): CborValue {
  return {
    version: r.version,
    org: r.org,
    conversation: r.conversation,
    epoch: r.epoch,
    policy_version: r.policyVersion,
    policy_hash: r.policyHash,
    previous: r.previous,
    created_at: r.createdAt,
    creator: r.creator,
    members: r.members.map(cardToCbor),
    sealed_secrets: r.sealedSecrets.map(sealedToCbor),
    escrow: { master: sealedToCbor(r.escrow.master), trustees: r.escrow.trustees.map(sealedToCbor) },
    commitment: r.commitment,
    signature: r.signature,
  };
}

/** A message envelope's CBOR map. */
export function envelopeToCbor(e: Envelope): CborValue {
  const h = e.header;
  return {
    header: { version: h.version, conversation: h.conversation, epoch: h.epoch, sender: h.sender, counter: h.counter, kind: h.kind, sent_at: h.sentAt, commitment: h.commitment },
    ciphertext: e.ciphertext,
    signature: e.signature,
  };
}

/** A warning ahead of a stored-bytes quota (§9.8, §13.12): from 80% of it on, whose bytes and how many. */
export interface ByteQuota {
  /** Whose bytes: the account's own, or its org's (every conversation of the org). */
  scope: "account" | "org";
  /** Bytes stored now. */
  used: number;
  /** The relay's most. */
  most: number;
}

/** The `quota_warning` push (§13.12): `org` names the org for an org's quota, `null` for the account's own. */
export interface QuotaWarning {
  org: string | null;
  quota: ByteQuota;
}

/** A stored-bytes quota warning from its CBOR map (`{ scope, used, most }`); anything else is `malformed`. */
export function byteQuotaFromCbor(m: CborValue): ByteQuota {
  const scope = text(m, "scope");
  if (scope !== "account" && scope !== "org") throw new ProtocolError("malformed", `quota scope ${scope}`);
  return { scope, used: uint(m, "used"), most: uint(m, "most") };
}

/** The body of a `quota_warning` push from its CBOR map (`{ org: text|null, quota }`); anything else is `malformed`. */
export function quotaWarningFromCbor(m: CborValue): QuotaWarning {
  const org = field(m, "org");
  if (org !== null && typeof org !== "string") throw new ProtocolError("malformed", "org: expected text or null");
  return { org, quota: byteQuotaFromCbor(field(m, "quota")) };
}
