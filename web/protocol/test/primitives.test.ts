/** Unit tests of the codec and of Shamir over GF(2^8), beyond the vector files. */
import { describe, expect, it } from "vitest";
import { toHex } from "../src/bytes.js";
import { Writer } from "../src/codec.js";
import { ProtocolError } from "../src/errors.js";
import { combine, decodeShare, encodeShare, gfInv, gfMul, split } from "../src/shamir.js";

/** Reference multiplication (Russian peasant with branches; test only). */
function refMul(a: number, b: number): number {
  let p = 0;
  for (let i = 0; i < 8; i++) {
    if (b & 1) p ^= a;
    const hi = a & 0x80;
    a = (a << 1) & 0xff;
    if (hi) a ^= 0x1b;
    b >>= 1;
  }
  return p;
}

/** A deterministic byte source for tests. */
function bytes(seed: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

describe("codec", () => {
  it("writes the PROTOCOL §1.1 example label and every field type", () => {
    expect(toHex(Writer.withLabel("sealdesk/v1/card").toBytes())).toBe("000000107365616c6465736b2f76312f63617264");
    const w = new Writer().u8(1).u16(0x0203).u32(0x04050607).u64(0x08090a0b0c0d0en).bool(true).bool(false).bytes(new Uint8Array([0xaa]));
    w.option(null, () => undefined).option(7, (w, v) => w.u8(v));
    expect(toHex(w.toBytes())).toBe("010203040506070008090a0b0c0d0e010000000001aa000107");
    expect(toHex(new Writer().u64(Number.MAX_SAFE_INTEGER).toBytes())).toBe("001fffffffffffff");
    expect(toHex(new Writer().u64(2n ** 64n - 1n).toBytes())).toBe("ffffffffffffffff");
  });
  it("refuses values out of range with a typed error", () => {
    expect(() => new Writer().u8(256)).toThrowError(ProtocolError);
    expect(() => new Writer().u32(-1)).toThrowError(expect.objectContaining({ code: "out_of_range" }));
    expect(() => new Writer().u64(2 ** 60)).toThrowError(expect.objectContaining({ code: "out_of_range" }));
    expect(() => new Writer().u64(2n ** 64n)).toThrowError(expect.objectContaining({ code: "out_of_range" }));
  });
});

describe("shamir", () => {
  it("GF(2^8) multiplication matches the reference on every pair; inverses invert", () => {
    for (let a = 0; a < 256; a++) {
      for (let b = 0; b < 256; b++) if (gfMul(a, b) !== refMul(a, b)) throw new Error(`${a}·${b}`);
      if (a !== 0) expect(gfMul(a, gfInv(a))).toBe(1);
    }
    expect(gfInv(0)).toBe(0);
    expect(gfMul(0x57, 0x83)).toBe(0xc1); // FIPS 197 §4.2
  });
  it("any t of n shares recombine; fewer do not; t = 1 shares hold the secret", () => {
    for (const [t, n] of [
      [1, 1],
      [1, 3],
      [2, 3],
      [3, 5],
      [5, 5],
    ] as const) {
      const secret = bytes(t * 31 + n, 32);
      const coeffs = Array.from({ length: t - 1 }, (_, i) => bytes(1000 + i, 32));
      const shares = split(secret, t, n, coeffs);
      expect(shares.map((s) => s.x)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      if (t === 1) for (const s of shares) expect(toHex(s.values)).toBe(toHex(secret));
      for (let start = 0; start + t <= n; start++) {
        const subset = shares.slice(start, start + t).map((s) => decodeShare(encodeShare(s)));
        expect(toHex(combine(subset.reverse(), t))).toBe(toHex(secret));
      }
      if (t > 1) expect(toHex(combine(shares.slice(0, t - 1), t - 1))).not.toBe(toHex(secret));
    }
  });
  it("refuses bad shares and parameters with typed errors", () => {
    const shares = split(bytes(1, 32), 2, 3, [bytes(2, 32)]);
    expect(() => combine([shares[0]!, shares[0]!], 2)).toThrowError(expect.objectContaining({ code: "malformed" }));
    expect(() => combine(shares.slice(0, 1), 2)).toThrowError(expect.objectContaining({ code: "out_of_range" }));
    expect(() => decodeShare(new Uint8Array(33))).toThrowError(expect.objectContaining({ code: "malformed" }));
    expect(() => decodeShare(new Uint8Array(32))).toThrowError(expect.objectContaining({ code: "bad_length" }));
    expect(() => split(bytes(1, 32), 3, 2, [bytes(2, 32), bytes(3, 32)])).toThrowError(ProtocolError);
  });
});
