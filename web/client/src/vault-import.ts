/**
 * Importing an account the `sealdesk` CLI created into a browser (the agent console): the CLI's
 * vault files are read as they are on disk and opened with the vault's passphrase, exactly as
 * `client/src/vault/` does it, so the browser gets the same identity (same keys, same card) and
 * nothing new has to be exported by the CLI.
 *
 * The files: `vault.json` (the header: format, version, Argon2id m/t/p, salt, check value),
 * `records/identity.rec` (the 64-byte identity secret) and `records/profile.rec` (the CBOR
 * profile `{ card }`). The vault key is Argon2id(passphrase, salt, m, t, p) → 32 bytes
 * (version 0x13); a sealed value is `1 ‖ nonce[12] ‖ AES-256-GCM(body) ‖ tag[16]`, with the
 * associated data `"sealdesk/v1/vault-check"` for the header's check value and
 * `"sealdesk/v1/vault-record" ‖ 0x00 ‖ name` for a record. A wrong passphrase fails the check
 * value and is reported as such, not as damage.
 *
 * The caller stores the result under its own store (IndexedDB under a non-extractable
 * WebCrypto key) and forgets the passphrase; the vault key is wiped here.
 */
import { gcm } from "@noble/ciphers/aes.js";
import { argon2idAsync } from "@noble/hashes/argon2.js";
import { IdentityKeys, cardFromCbor, equal, fromCbor, verifyCard, type CborValue, type IdentityCard } from "@sealdesk/protocol";

/** The vault format this code reads (`client/src/vault/mod.rs` `FORMAT_VERSION`). */
export const VAULT_FORMAT_VERSION = 1;
/** The header's format name. */
export const VAULT_FORMAT_NAME = "sealdesk-vault";
/** Associated data of the header's check value. */
export const VAULT_CHECK_AAD = "sealdesk/v1/vault-check";
/** The plaintext of the header's check value. */
export const VAULT_CHECK_PLAINTEXT = "sealdesk vault passphrase check";
/** Associated-data prefix of a record (then 0x00 and the record's name). */
export const VAULT_RECORD_AAD = "sealdesk/v1/vault-record";
/** The largest Argon2id memory cost accepted from a header (1 GiB), so a hostile file cannot exhaust the tab. */
export const MAX_IMPORT_MEMORY_KIB = 1024 * 1024;
/** The largest number of Argon2id passes accepted from a header. */
export const MAX_IMPORT_ITERATIONS = 64;

/** Why an import failed. */
export type VaultImportFailure = "not_a_vault" | "unsupported_version" | "wrong_passphrase" | "corrupt" | "missing_file" | "card_mismatch" | "too_costly";

/** The vault could not be imported; `failure` says why. */
export class VaultImportError extends Error {
  constructor(
    readonly failure: VaultImportFailure,
    detail?: string,
  ) {
    super(detail === undefined ? failure : `${failure}: ${detail}`);
    this.name = "VaultImportError";
  }
}

/** The files of a CLI home the import reads. */
export interface VaultFiles {
  /** `vault.json`, as text. */
  header: string;
  /** `records/identity.rec`. */
  identity: Uint8Array;
  /** `records/profile.rec`. */
  profile: Uint8Array;
}

/** What an import yields: the account's keys and its own card (checked against the keys). */
export interface ImportedAccount {
  keys: IdentityKeys;
  card: IdentityCard;
}

interface Header {
  memoryKib: number;
  iterations: number;
  parallelism: number;
  salt: Uint8Array;
  check: Uint8Array;
}

const enc = new TextEncoder();

function unhex(s: unknown, what: string): Uint8Array {
  if (typeof s !== "string" || s.length % 2 !== 0 || !/^[0-9a-f]*$/i.test(s)) throw new VaultImportError("corrupt", `${what} is not hex`);
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function positive(v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1 || v > 0xffff_ffff) throw new VaultImportError("corrupt", `${what} is not a positive integer`);
  return v;
}

/** Parses `vault.json` as `client/src/vault/format.rs` does (format first, then the rest). */
export function parseVaultHeader(text: string): Header {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    throw new VaultImportError("not_a_vault", "vault.json is not JSON");
  }
  if (j === null || typeof j !== "object" || Array.isArray(j)) throw new VaultImportError("not_a_vault", "vault.json is not an object");
  const h = j as Record<string, unknown>;
  if (h.format !== VAULT_FORMAT_NAME) throw new VaultImportError("not_a_vault", "vault.json is not a sealdesk vault header");
  if (h.version !== VAULT_FORMAT_VERSION) throw new VaultImportError("unsupported_version", `vault format ${String(h.version)}`);
  const kdf = h.kdf as Record<string, unknown> | undefined;
  if (kdf === undefined || kdf === null || typeof kdf !== "object" || kdf.algorithm !== "argon2id") throw new VaultImportError("corrupt", "the header names an unknown key-derivation function");
  const header: Header = {
    memoryKib: positive(kdf.memory_kib, "memory_kib"),
    iterations: positive(kdf.iterations, "iterations"),
    parallelism: positive(kdf.parallelism, "parallelism"),
    salt: unhex(h.salt, "salt"),
    check: unhex(h.check, "check"),
  };
  if (header.salt.length !== 16) throw new VaultImportError("corrupt", "the salt is not 16 bytes");
  if (header.memoryKib > MAX_IMPORT_MEMORY_KIB || header.iterations > MAX_IMPORT_ITERATIONS || header.parallelism > 16) {
    throw new VaultImportError("too_costly", "the header asks for more key-derivation work than a browser tab should do");
  }
  return header;
}

/** Opens one sealed value (`1 ‖ nonce ‖ ciphertext ‖ tag`) under `key` with `aad`; null when it does not authenticate. */
function openSealed(key: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | null {
  if (sealed.length < 1 + 12 + 16) throw new VaultImportError("corrupt", "a sealed value is too short");
  if (sealed[0] !== VAULT_FORMAT_VERSION) throw new VaultImportError("unsupported_version", `sealed value version ${String(sealed[0])}`);
  try {
    return gcm(key, sealed.subarray(1, 13), aad).decrypt(sealed.subarray(13));
  } catch {
    return null;
  }
}

function recordAad(name: string): Uint8Array {
  const label = enc.encode(VAULT_RECORD_AAD);
  const n = enc.encode(name);
  const out = new Uint8Array(label.length + 1 + n.length);
  out.set(label);
  out.set(n, label.length + 1);
  return out;
}

/**
 * Opens the CLI vault's identity with `passphrase`: the Argon2id key from the header's
 * parameters, the check value (a wrong passphrase is `wrong_passphrase`), the identity secret
 * and the profile's card, which must be the keys' own card.
 */
export async function importCliVault(files: VaultFiles, passphrase: string): Promise<ImportedAccount> {
  const h = parseVaultHeader(files.header);
  const key = await argon2idAsync(enc.encode(passphrase), h.salt, { m: h.memoryKib, t: h.iterations, p: h.parallelism, dkLen: 32, version: 0x13 });
  try {
    const check = openSealed(key, enc.encode(VAULT_CHECK_AAD), h.check);
    if (check === null) throw new VaultImportError("wrong_passphrase");
    if (!equal(check, enc.encode(VAULT_CHECK_PLAINTEXT))) throw new VaultImportError("corrupt", "the check value holds an unexpected label");
    const secret = openSealed(key, recordAad("identity"), files.identity);
    if (secret === null) throw new VaultImportError("corrupt", "identity.rec does not authenticate under this vault's key");
    if (secret.length !== 64) throw new VaultImportError("corrupt", "the identity secret is not 64 bytes");
    const profileBytes = openSealed(key, recordAad("profile"), files.profile);
    if (profileBytes === null) throw new VaultImportError("corrupt", "profile.rec does not authenticate under this vault's key");
    const keys = IdentityKeys.fromSecretBytes(secret);
    secret.fill(0);
    let card: IdentityCard;
    try {
      const profile: CborValue = fromCbor(profileBytes);
      if (profile === null || typeof profile !== "object" || profile instanceof Uint8Array || Array.isArray(profile) || profile.card === undefined) throw new Error("no card");
      card = verifyCard(cardFromCbor(profile.card));
    } catch (e) {
      throw new VaultImportError("corrupt", `the profile's card: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (!equal(card.signingKey, keys.signingPublic) || !equal(card.agreementKey, keys.agreementPublic)) throw new VaultImportError("card_mismatch");
    return { keys, card };
  } finally {
    key.fill(0);
  }
}
