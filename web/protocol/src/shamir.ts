/**
 * Shamir secret sharing over GF(2^8) with the AES polynomial 0x11b (PROTOCOL §8.2), constant
 * time: multiplication is a fixed 8-round shift-and-add with masks, inversion is `a^254`; no table
 * is indexed by secret data and no branch depends on it. Mirrors `protocol/src/shamir.rs`.
 */
import { ProtocolError } from "./errors.js";

/** Size of a secret and of a share's values. */
export const SECRET_LEN = 32;
/** Size of an encoded share: index, then 32 values. */
export const SHARE_LEN = 33;

/** `a · b` in GF(2^8) mod 0x11b, constant time. */
export function gfMul(a: number, b: number): number {
  let p = 0;
  let x = a & 0xff;
  let y = b & 0xff;
  for (let i = 0; i < 8; i++) {
    p ^= x & -(y & 1);
    const carry = -((x >> 7) & 1);
    x = ((x << 1) ^ (0x1b & carry)) & 0xff;
    y >>= 1;
  }
  return p & 0xff;
}

/** `a^-1` in GF(2^8) (`a^254`; 0 maps to 0), constant time. */
export function gfInv(a: number): number {
  let r = 1;
  let base = a & 0xff;
  // 254 = 0b11111110: square-and-multiply with a fixed exponent.
  for (let bit = 7; bit >= 0; bit--) {
    r = gfMul(r, r);
    if ((254 >> bit) & 1) r = gfMul(r, base);
  }
  base = 0;
  return r;
}

/** One share: index `x` (1–255) and 32 values. */
export interface Share {
  x: number;
  values: Uint8Array;
}

/** Splits `secret` into `n` shares with threshold `t`, using the `t − 1` given 32-byte coefficients. */
export function split(secret: Uint8Array, t: number, n: number, coefficients: readonly Uint8Array[]): Share[] {
  if (secret.length !== SECRET_LEN) throw new ProtocolError("bad_length", "shamir secret");
  if (t < 1 || t > n || n > 255 || coefficients.length !== t - 1) throw new ProtocolError("out_of_range", "shamir parameters");
  for (const c of coefficients) if (c.length !== SECRET_LEN) throw new ProtocolError("bad_length", "shamir coefficient");
  const shares: Share[] = [];
  for (let x = 1; x <= n; x++) {
    const values = new Uint8Array(SECRET_LEN);
    for (let j = 0; j < SECRET_LEN; j++) {
      // Horner: ((c_{t-1} x + c_{t-2}) x + …) x + s.
      let acc = 0;
      for (let k = coefficients.length - 1; k >= 0; k--) acc = gfMul(acc ^ (coefficients[k]?.[j] ?? 0), x);
      values[j] = acc ^ (secret[j] ?? 0);
    }
    shares.push({ x, values });
  }
  return shares;
}

/** Recombines the first `t` shares (all supplied indices distinct and non-zero): Lagrange at 0. */
export function combine(shares: readonly Share[], t: number): Uint8Array {
  if (t < 1 || shares.length < t) throw new ProtocolError("out_of_range", "not enough shares");
  const xs = shares.map((s) => s.x);
  if (xs.some((x) => x < 1 || x > 255) || new Set(xs).size !== xs.length) throw new ProtocolError("malformed", "share indices");
  const used = shares.slice(0, t);
  const out = new Uint8Array(SECRET_LEN);
  for (let i = 0; i < used.length; i++) {
    const si = used[i];
    if (si === undefined) continue;
    let coeff = 1;
    for (let m = 0; m < used.length; m++) {
      const sm = used[m];
      if (m === i || sm === undefined) continue;
      coeff = gfMul(coeff, gfMul(sm.x, gfInv(sm.x ^ si.x)));
    }
    for (let j = 0; j < SECRET_LEN; j++) out[j] = (out[j] ?? 0) ^ gfMul(si.values[j] ?? 0, coeff);
  }
  return out;
}

/** The 33-byte encoding: `x ‖ values`. */
export function encodeShare(s: Share): Uint8Array {
  const out = new Uint8Array(SHARE_LEN);
  out[0] = s.x;
  out.set(s.values, 1);
  return out;
}

/** Decodes a 33-byte share; index 0 is refused. */
export function decodeShare(b: Uint8Array): Share {
  if (b.length !== SHARE_LEN) throw new ProtocolError("bad_length", "share");
  const x = b[0] ?? 0;
  if (x === 0) throw new ProtocolError("malformed", "share index 0");
  return { x, values: b.slice(1) };
}
