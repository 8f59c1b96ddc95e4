/**
 * Recovery records (PROTOCOL §3.5), the twin of `protocol/src/recovery_record.rs`: an account's
 * identity keys sealed under a replaceable recovery code (version byte 2), as the relay keeps them.
 *
 * ```text
 * key      = HKDF-SHA256(salt = str(RECOVERY_CODE_SALT), ikm = entropy, info = str(RECOVERY_RECORD_KEY), 32)
 * proof    = HKDF-SHA256(same salt and ikm, info = str(RECOVERY_RECORD_PROOF), 32)
 * verifier = SHA-256(str(RECOVERY_RECORD_VERIFIER) ‖ bytes(proof))
 * aad      = str(RECOVERY_RECORD_AAD) ‖ str(card.name) ‖ verifier
 * sealed   = AES-256-GCM(key, nonce, aad, identity secret (64 bytes))
 * ```
 */
import { gcm } from "@noble/ciphers/aes.js";
import { expand, extract } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import type { IdentityCard } from "./card.js";
import { Writer } from "./codec.js";
import { ProtocolError } from "./errors.js";
import { IdentityKeys } from "./keys.js";
import { RECOVERY_CODE_SALT, RECOVERY_RECORD_AAD, RECOVERY_RECORD_KEY, RECOVERY_RECORD_PROOF, RECOVERY_RECORD_VERIFIER } from "./labels.js";
import type { RecoveryCode } from "./recovery.js";
import { RECORD_CODE_VERSION, RECOVERY_CODE_VERSION } from "./recovery.js";
import type { CborValue } from "./wire.js";
import { cardFromCbor, cardToCbor } from "./wire.js";

/** The version of the records known here. */
export const RECOVERY_RECORD_VERSION = 1;
const SEALED_LEN = 64 + 16;
const ENTROPY_LEN = 16;
const NONCE_LEN = 12;

/** A recovery record as the relay hands it out (`recovery` response). */
export interface RecoveryRecord {
  readonly version: number;
  /** The account's card (public; the sealed keys must be its keys). */
  readonly card: IdentityCard;
  /** SHA-256 of the code's proof. */
  readonly verifier: Uint8Array;
  /** The AES-GCM nonce (12 bytes). */
  readonly nonce: Uint8Array;
  /** The sealed identity secret (80 bytes). */
  readonly sealed: Uint8Array;
}

function recordCode(code: RecoveryCode): RecoveryCode {
  if ((code.version ?? RECOVERY_CODE_VERSION) !== RECORD_CODE_VERSION) throw new ProtocolError("recovery_code_kind", "this code stands for its keys and opens no recovery record");
  return code;
}

function derive(code: RecoveryCode, info: string): Uint8Array {
  const prk = extract(sha256, recordCode(code).entropy, Writer.withLabel(RECOVERY_CODE_SALT).toBytes());
  return expand(sha256, prk, Writer.withLabel(info).toBytes(), 32);
}

/** The AES-256-GCM key of a replaceable code's record. */
export function recoveryRecordKey(code: RecoveryCode): Uint8Array {
  return derive(code, RECOVERY_RECORD_KEY);
}

/** The proof a replaceable code shows the relay (`get_recovery`). Secret: do not log it. */
export function recoveryProof(code: RecoveryCode): Uint8Array {
  return derive(code, RECOVERY_RECORD_PROOF);
}

/** The verifier the relay keeps for a proof. */
export function recoveryVerifier(proof: Uint8Array): Uint8Array {
  return Writer.withLabel(RECOVERY_RECORD_VERIFIER).bytes(proof).sha256();
}

/** The associated data of the sealed keys: the label, the account's name and the verifier. */
export function recoveryRecordAad(name: string, verifier: Uint8Array): Uint8Array {
  return Writer.withLabel(RECOVERY_RECORD_AAD).str(name).fixed(verifier).toBytes();
}

function bytesOf(m: Record<string, CborValue>, key: string, len: number): Uint8Array {
  const v = m[key];
  if (!(v instanceof Uint8Array) || v.length !== len) throw new ProtocolError("malformed", `recovery record ${key}`);
  return v;
}

/** A record from its CBOR map; checks the version and the fields' lengths. */
export function recoveryRecordFromCbor(value: CborValue): RecoveryRecord {
  if (typeof value !== "object" || value === null || value instanceof Uint8Array || Array.isArray(value)) throw new ProtocolError("malformed", "recovery record");
  const m = value as Record<string, CborValue>;
  if (m.version !== RECOVERY_RECORD_VERSION) throw new ProtocolError("unknown_version", `recovery record version ${String(m.version)}`);
  return { version: RECOVERY_RECORD_VERSION, card: cardFromCbor(m.card ?? null), verifier: bytesOf(m, "verifier", 32), nonce: bytesOf(m, "nonce", 12), sealed: bytesOf(m, "sealed", SEALED_LEN) };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

/**
 * A fresh replaceable code (version byte 2), made at `now` (Unix seconds), as
 * `RecoveryCode::generate_for_record` makes it: 16 random bytes.
 */
export function generateRecordCode(random: (n: number) => Uint8Array, now: number): RecoveryCode {
  if (!Number.isInteger(now) || now < 0 || now > 0xffffffff) throw new ProtocolError("malformed", "a recovery code's time past 2106");
  const entropy = random(ENTROPY_LEN);
  if (entropy.length !== ENTROPY_LEN) throw new ProtocolError("malformed", "recovery code entropy");
  return { entropy, createdAt: now, version: RECORD_CODE_VERSION };
}

/**
 * Seals `keys` (which must be `card`'s) under the replaceable `code` with the 12-byte `nonce`
 * (random; given, so the vector can be reproduced): the record `put_recovery` sends, the twin of
 * `RecoveryRecord::seal`. Throws `card_mismatch` for keys that are not the card's and
 * `recovery_code_kind` for an `init` code.
 */
export function sealRecoveryRecord(code: RecoveryCode, card: IdentityCard, keys: IdentityKeys, nonce: Uint8Array): RecoveryRecord {
  if (nonce.length !== NONCE_LEN) throw new ProtocolError("malformed", "recovery record nonce");
  if (!sameBytes(keys.signingPublic, card.signingKey) || !sameBytes(keys.agreementPublic, card.agreementKey)) throw new ProtocolError("card_mismatch", "the keys to seal are not the card's");
  const verifier = recoveryVerifier(recoveryProof(code));
  const secret = keys.toSecretBytes();
  try {
    const sealed = gcm(recoveryRecordKey(code), nonce, recoveryRecordAad(card.name, verifier)).encrypt(secret);
    return { version: RECOVERY_RECORD_VERSION, card, verifier, nonce: nonce.slice(), sealed };
  } finally {
    secret.fill(0);
  }
}

/** A record's CBOR map (`put_recovery`, the `recovery` response). */
export function recoveryRecordToCbor(r: RecoveryRecord): CborValue {
  return { version: r.version, card: cardToCbor(r.card), verifier: r.verifier, nonce: r.nonce, sealed: r.sealed };
}

/**
 * Opens the record of the account `name` with a replaceable `code`: its identity keys, which are
 * its card's. Throws a `ProtocolError`: `recovery_code_kind` (an `init` code), `wrong_name`,
 * `open` (another code's record, or one moved or tampered with), `card_mismatch` (the sealed keys
 * are not the card's: a relay substituting keys). The card itself is verified by the caller.
 */
export function openRecoveryRecord(record: RecoveryRecord, code: RecoveryCode, name: string): IdentityKeys {
  if (record.card.name !== name) throw new ProtocolError("wrong_name", `the record is for ${JSON.stringify(record.card.name)}, not ${JSON.stringify(name)}`);
  if (!sameBytes(recoveryVerifier(recoveryProof(code)), record.verifier)) throw new ProtocolError("open", "this recovery code does not open the record");
  let secret: Uint8Array;
  try {
    secret = gcm(recoveryRecordKey(code), record.nonce, recoveryRecordAad(record.card.name, record.verifier)).decrypt(record.sealed);
  } catch {
    throw new ProtocolError("open", "the recovery record does not open under this code");
  }
  const keys = IdentityKeys.fromSecretBytes(secret);
  secret.fill(0);
  if (!sameBytes(keys.signingPublic, record.card.signingKey) || !sameBytes(keys.agreementPublic, record.card.agreementKey)) throw new ProtocolError("card_mismatch", "the keys in the recovery record are not its card's");
  return keys;
}
