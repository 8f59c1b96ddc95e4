/**
 * Identity keys (PROTOCOL §3.1): an Ed25519 signing key and an independent X25519 agreement key,
 * public-key validation, and fingerprints (§3.3). Mirrors `protocol/src/keys.rs`.
 */
import { x25519 } from "@noble/curves/ed25519.js";
import { equal, fixedLength } from "./bytes.js";
import { Writer } from "./codec.js";
import { decodePublicKey, publicKeyOf, sign, verifyStrict } from "./ed25519.js";
import { ProtocolError } from "./errors.js";
import { FINGERPRINT } from "./labels.js";

/** An Ed25519 public key: 32 bytes that decode to a point not of small order (as the Rust crate decodes it). */
export function checkSigningKey(bytes: Uint8Array): Uint8Array {
  fixedLength(bytes, 32, "Ed25519 public key");
  if (decodePublicKey(bytes) === null) throw new ProtocolError("weak_key", "Ed25519");
  return bytes;
}

/** The seven X25519 u-coordinates (top bit ignored) whose Diffie–Hellman output is all zero. */
const SMALL_ORDER_U: readonly Uint8Array[] = (() => {
  const pPlus = (low: number): Uint8Array => {
    const b = new Uint8Array(32).fill(0xff);
    b[0] = low;
    b[31] = 0x7f;
    return b;
  };
  const one = new Uint8Array(32);
  one[0] = 1;
  const hex = (h: string): Uint8Array => Uint8Array.from(h.match(/../g) ?? [], (x) => parseInt(x, 16));
  return [
    new Uint8Array(32),
    one,
    hex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    hex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    pPlus(0xec),
    pPlus(0xed),
    pPlus(0xee),
  ];
})();

/** An X25519 public key, refused when not contributory (a small-order point, §3.1). */
export function checkAgreementKey(bytes: Uint8Array): Uint8Array {
  fixedLength(bytes, 32, "X25519 public key");
  const masked = bytes.slice();
  masked[31] = (masked[31] ?? 0) & 0x7f;
  let found = false;
  for (const bad of SMALL_ORDER_U) found = equal(bad, masked) || found;
  if (found) throw new ProtocolError("weak_key", "X25519");
  return bytes;
}

/** An account's two secret keys (the 64-byte exported form is `seed ‖ scalar`). */
export class IdentityKeys {
  /** Ed25519 public key. */
  readonly signingPublic: Uint8Array;
  /** X25519 public key. */
  readonly agreementPublic: Uint8Array;

  private constructor(
    private readonly seed: Uint8Array,
    private readonly scalar: Uint8Array,
  ) {
    this.signingPublic = publicKeyOf(seed);
    this.agreementPublic = x25519.getPublicKey(scalar);
  }

  /** Keys from their 64-byte secret form. */
  static fromSecretBytes(bytes: Uint8Array): IdentityKeys {
    fixedLength(bytes, 64, "identity secret");
    return new IdentityKeys(bytes.slice(0, 32), bytes.slice(32, 64));
  }

  /** Fresh keys from `random` (the caller passes its randomness source). */
  static generate(random: (n: number) => Uint8Array): IdentityKeys {
    return IdentityKeys.fromSecretBytes(random(64));
  }

  /** The 64-byte secret form (a copy; wipe it after use). */
  toSecretBytes(): Uint8Array {
    const out = new Uint8Array(64);
    out.set(this.seed, 0);
    out.set(this.scalar, 32);
    return out;
  }

  /** The X25519 secret scalar (a copy; for HPKE open). */
  agreementSecret(): Uint8Array {
    return this.scalar.slice();
  }

  /** An Ed25519 signature of `message`. */
  sign(message: Uint8Array): Uint8Array {
    return sign(this.seed, message);
  }

  /** Overwrites the secret bytes held by this object. */
  wipe(): void {
    this.seed.fill(0);
    this.scalar.fill(0);
  }
}

/** Checks `signature` strictly; throws `bad_signature` naming `what` when it does not verify. */
export function verifySignature(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array, what: string): void {
  if (!verifyStrict(publicKey, message, signature)) throw new ProtocolError("bad_signature", what);
}

/** `SHA-256(str(FINGERPRINT) ‖ signing[32] ‖ agreement[32])` (§3.3). */
export function fingerprint(signing: Uint8Array, agreement: Uint8Array): Uint8Array {
  return Writer.withLabel(FINGERPRINT).fixed(fixedLength(signing, 32, "signing key")).fixed(fixedLength(agreement, 32, "agreement key")).sha256();
}

/** The printed fingerprint: six space-separated groups of five digits. */
export function formatFingerprint(fp: Uint8Array): string {
  const groups: string[] = [];
  for (let i = 0; i < 6; i++) {
    let v = 0n;
    for (const b of fp.subarray(5 * i, 5 * i + 5)) v = (v << 8n) | BigInt(b);
    groups.push((v % 100000n).toString().padStart(5, "0"));
  }
  return groups.join(" ");
}

/** Whether a printed fingerprint (whitespace and `-` ignored) names `fp`. */
export function fingerprintMatches(fp: Uint8Array, printed: string): boolean {
  const enc = new TextEncoder();
  const digits = printed.replace(/[\s-]/g, "");
  return equal(enc.encode(digits), enc.encode(formatFingerprint(fp).replace(/ /g, "")));
}
