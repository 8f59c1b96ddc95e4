/** Identity cards (PROTOCOL §3.2): an account's public identity, signed by its own key. */
import { Writer } from "./codec.js";
import { ProtocolError } from "./errors.js";
import { checkAgreementKey, checkSigningKey, fingerprint, verifySignature } from "./keys.js";
import type { IdentityKeys } from "./keys.js";
import { CARD } from "./labels.js";

/** Account roles; the code is the byte used in layouts. */
export const ROLES = { customer: 1, agent: 2, master: 3, trustee: 4, arbiter: 5 } as const;
/** A role's lowercase name. */
export type Role = keyof typeof ROLES;

/** Whether `s` names a role. */
export function isRole(s: string): s is Role {
  return Object.hasOwn(ROLES, s);
}

/** Whether `name` is a valid account or org name: 1–64 bytes of `[A-Za-z0-9._-]`. */
export function isValidName(name: string): boolean {
  return /^[A-Za-z0-9._-]{1,64}$/.test(name);
}

/** An identity card as carried on the wire. */
export interface IdentityCard {
  name: string;
  role: Role;
  signingKey: Uint8Array;
  agreementKey: Uint8Array;
  createdAt: number;
  signature: Uint8Array;
}

/** The bytes a card's signature covers. */
export function cardSignedBytes(c: Omit<IdentityCard, "signature">): Uint8Array {
  return cardWriter(c).toBytes();
}

function cardWriter(c: Omit<IdentityCard, "signature">): Writer {
  return Writer.withLabel(CARD).str(c.name).u8(ROLES[c.role]).fixed(c.signingKey).fixed(c.agreementKey).u64(c.createdAt);
}

/** Appends a card as embedded in other layouts: `bytes(signed bytes) ‖ signature[64]`. */
export function writeCardBlob(w: Writer, c: IdentityCard): Writer {
  return w.bytes(cardSignedBytes(c)).fixed(c.signature);
}

/** Issues a card for `keys`. */
export function issueCard(keys: IdentityKeys, name: string, role: Role, now: number): IdentityCard {
  if (!isValidName(name)) throw new ProtocolError("invalid_name", name);
  const unsigned = { name, role, signingKey: keys.signingPublic, agreementKey: keys.agreementPublic, createdAt: now };
  return { ...unsigned, signature: keys.sign(cardSignedBytes(unsigned)) };
}

/** Checks a card: valid name, valid keys, strict signature; and the role when `role` is given. */
export function verifyCard(c: IdentityCard, role?: Role): IdentityCard {
  if (!isValidName(c.name)) throw new ProtocolError("invalid_name", c.name);
  checkSigningKey(c.signingKey);
  checkAgreementKey(c.agreementKey);
  verifySignature(c.signingKey, cardSignedBytes(c), c.signature, "identity card");
  if (role !== undefined && c.role !== role) throw new ProtocolError("wrong_role", `${c.name} is ${c.role}, expected ${role}`);
  return c;
}

/** The card's key fingerprint (§3.3). */
export function cardFingerprint(c: IdentityCard): Uint8Array {
  return fingerprint(c.signingKey, c.agreementKey);
}
