/**
 * Recovery codes (PROTOCOL §3.5), the twin of `protocol/src/recovery.rs`: a customer's identity
 * keys derived from a code shown once when the account is made. The code is Crockford base32 of
 * `version ‖ entropy[16] ‖ u32(card created_at) ‖ checksum[4]`, the checksum the first four bytes
 * of `SHA-256(str(RECOVERY_CODE_CHECKSUM) ‖ payload)`, the keys
 * `HKDF-SHA256(salt = str(RECOVERY_CODE_SALT), ikm = entropy, info = str(RECOVERY_CODE_IDENTITY))`.
 * A code with version byte 2 is replaceable: it opens a recovery record (`recovery_record.ts`).
 */
import { expand, extract } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { Writer } from "./codec.js";
import { ProtocolError } from "./errors.js";
import { IdentityKeys } from "./keys.js";
import { RECOVERY_CODE_CHECKSUM, RECOVERY_CODE_IDENTITY, RECOVERY_CODE_SALT } from "./labels.js";

/** The version byte of the codes `init` writes: the identity keys are derived from the code. */
export const RECOVERY_CODE_VERSION = 1;
/** The version byte of a replaceable code, which opens a recovery record (PROTOCOL §3.5). */
export const RECORD_CODE_VERSION = 2;
/** Crockford's base32 alphabet (no I, L, O, U). */
export const RECOVERY_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const PAYLOAD = 21;
const CODE_BYTES = 25;
/** Characters in a code, hyphens not counted. */
export const RECOVERY_CODE_CHARS = 40;

/** A parsed, checksum-verified recovery code. */
export interface RecoveryCode {
  /** The 16 secret bytes. */
  readonly entropy: Uint8Array;
  /** The card's creation time (for a replaceable code: when the code was made). */
  readonly createdAt: number;
  /** The version byte: `RECOVERY_CODE_VERSION` when absent, `RECORD_CODE_VERSION` for a replaceable code. */
  readonly version?: number;
}

function checksum(payload: Uint8Array): Uint8Array {
  return Writer.withLabel(RECOVERY_CODE_CHECKSUM).fixed(payload).sha256().slice(0, 4);
}

function payloadOf(code: RecoveryCode): Uint8Array {
  const p = new Uint8Array(PAYLOAD);
  p[0] = code.version ?? RECOVERY_CODE_VERSION;
  p.set(code.entropy, 1);
  new DataView(p.buffer).setUint32(17, code.createdAt, false);
  return p;
}

/** The code as shown: 40 characters in eight groups of five, joined by `-`. */
export function formatRecoveryCode(code: RecoveryCode): string {
  const p = payloadOf(code);
  const bytes = new Uint8Array(CODE_BYTES);
  bytes.set(p, 0);
  bytes.set(checksum(p), PAYLOAD);
  let out = "";
  let acc = 0;
  let bits = 0;
  let n = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      if (n > 0 && n % 5 === 0) out += "-";
      out += RECOVERY_ALPHABET[(acc >> bits) & 0x1f];
      n++;
    }
    acc &= (1 << bits) - 1;
  }
  return out;
}

/**
 * Parses a code as typed (case, hyphens and spaces ignored; O read as 0, I and L as 1) and checks
 * its length, checksum and version; throws a `ProtocolError` saying which failed.
 */
export function parseRecoveryCode(text: string): RecoveryCode {
  const values: number[] = [];
  for (const c of text) {
    if (c === "-" || /\s/.test(c)) continue;
    const u = c.toUpperCase();
    const v = u === "O" ? 0 : u === "I" || u === "L" ? 1 : RECOVERY_ALPHABET.indexOf(u);
    if (v < 0) throw new ProtocolError("recovery_code_character", `${JSON.stringify(c)} at ${values.length + 1}`);
    values.push(v);
  }
  if (values.length !== RECOVERY_CODE_CHARS) throw new ProtocolError("recovery_code_length", `${values.length} characters, not ${RECOVERY_CODE_CHARS}`);
  const bytes = new Uint8Array(CODE_BYTES);
  let acc = 0;
  let bits = 0;
  let at = 0;
  for (const v of values) {
    acc = (acc << 5) | v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      bytes[at++] = (acc >> bits) & 0xff;
      acc &= (1 << bits) - 1;
    }
  }
  const payload = bytes.subarray(0, PAYLOAD);
  const sum = checksum(payload);
  if (!sum.every((b, i) => b === bytes[PAYLOAD + i])) throw new ProtocolError("recovery_code_checksum");
  const version = payload[0] ?? 0;
  if (version !== RECOVERY_CODE_VERSION && version !== RECORD_CODE_VERSION) throw new ProtocolError("unknown_version", `recovery code version ${version}`);
  return { entropy: payload.slice(1, 17), createdAt: new DataView(payload.buffer, payload.byteOffset).getUint32(17, false), version };
}

/**
 * The identity keys a recovery code stands for. A replaceable code stands for no keys of its own
 * (it opens a recovery record: `openRecoveryRecord`) and is refused as `recovery_code_kind`.
 */
export function recoveryIdentityKeys(code: RecoveryCode): IdentityKeys {
  if ((code.version ?? RECOVERY_CODE_VERSION) !== RECOVERY_CODE_VERSION) throw new ProtocolError("recovery_code_kind", "a replaceable code opens a recovery record");
  const prk = extract(sha256, code.entropy, Writer.withLabel(RECOVERY_CODE_SALT).toBytes());
  return IdentityKeys.fromSecretBytes(expand(sha256, prk, Writer.withLabel(RECOVERY_CODE_IDENTITY).toBytes(), 64));
}
