/**
 * Ed25519 signing and *strict* verification, matching ed25519-dalek's `verify_strict` exactly
 * (PROTOCOL §1.2), written on noble's point arithmetic because neither WebCrypto nor noble's own
 * `verify` options refuse everything `verify_strict` refuses.
 *
 * A signature `R ‖ S` on `M` under `A` is valid exactly when:
 * 1. `A` decodes to a curve point (as curve25519-dalek decodes: a `y` in `[p, 2^255)` is taken
 *    mod `p`, so the few non-canonical encodings of points are accepted, and `k` hashes the bytes
 *    as received) and is not of small order;
 * 2. `S < L` (no reduction);
 * 3. `R` is a canonical encoding of a curve point and is not of small order;
 * 4. with `k = SHA-512(R ‖ A ‖ M) mod L`, `encode([S]B − [k]A)` equals the 32 bytes of `R`
 *    (cofactorless, compared as bytes).
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import { sha512 } from "@noble/hashes/sha2.js";
import { concat, equal } from "./bytes.js";

const Point = ed25519.Point;
/** The order `L` of the base point. */
export const L = Point.Fn.ORDER;

type EdPoint = InstanceType<typeof Point>;

function le(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i] ?? 0);
  return n;
}

/**
 * A point that is not of small order, or `null`. With `canonical`, the encoding must be the
 * RFC 8032 one (`y < p`, and not `x = 0` with the sign bit set); without, a `y` in `[p, 2^255)`
 * is accepted as curve25519-dalek's `decompress` accepts it (every such encoding with `x = 0` is
 * of small order and refused anyway).
 */
export function decodeStrictPoint(bytes: Uint8Array, canonical = true): EdPoint | null {
  if (bytes.length !== 32) return null;
  let p: EdPoint;
  try {
    p = Point.fromBytes(bytes, !canonical);
  } catch {
    return null;
  }
  if (p.isSmallOrder()) return null;
  return p;
}

/** A public key as ed25519-dalek's `VerifyingKey::from_bytes` and `is_weak` accept it, or `null`. */
export function decodePublicKey(bytes: Uint8Array): EdPoint | null {
  return decodeStrictPoint(bytes, false);
}

/** Whether `signature` is a valid strict Ed25519 signature of `message` under `publicKey`. */
export function verifyStrict(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  const a = decodePublicKey(publicKey);
  if (a === null) return false;
  const rBytes = signature.subarray(0, 32);
  const s = le(signature.subarray(32, 64));
  if (s >= L) return false;
  // A non-canonical R can never equal the canonical encoding compared below; refusing it here
  // gives the same answer sooner.
  if (decodeStrictPoint(rBytes) === null) return false;
  const k = le(sha512(concat(rBytes, publicKey, message))) % L;
  const expected = Point.BASE.multiplyUnsafe(s).subtract(a.multiplyUnsafe(k));
  return equal(expected.toBytes(), rBytes);
}

/** The Ed25519 public key of a 32-byte seed. */
export function publicKeyOf(seed: Uint8Array): Uint8Array {
  return ed25519.getPublicKey(seed);
}

/** The deterministic RFC 8032 signature of `message` with the 32-byte `seed`. */
export function sign(seed: Uint8Array, message: Uint8Array): Uint8Array {
  return ed25519.sign(message, seed);
}
