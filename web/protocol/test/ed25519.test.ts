/** `ed25519_strict.json`: the strict verifier agrees with `verify_strict` on every case. */
import { ed25519 } from "@noble/curves/ed25519.js";
import { describe, expect, it } from "vitest";
import { decodePublicKey, decodeStrictPoint, L, verifyStrict } from "../src/ed25519.js";
import { h, loadVector } from "./vectors.js";

const v = loadVector("ed25519_strict.json");

describe("ed25519_strict.json", () => {
  for (const c of v.cases) {
    it(`${c.name}: verify_strict = ${c.verify_strict}`, () => {
      expect(verifyStrict(h(c.public_key), h(c.message), h(c.signature))).toBe(c.verify_strict);
    });
  }
  it("noble's own verify is laxer than verify_strict on at least one case (why the check exists)", () => {
    const lax = v.cases.filter((c: { verify_strict: boolean; public_key: string; message: string; signature: string }) => {
      let ok = false;
      try {
        ok = ed25519.verify(h(c.signature), h(c.message), h(c.public_key), { zip215: false });
      } catch {
        ok = false;
      }
      return ok !== c.verify_strict;
    });
    expect(lax.length).toBeGreaterThan(0);
  });
});

describe("decoding as curve25519-dalek decodes", () => {
  const P = 2n ** 255n - 19n;
  const le32 = (n: bigint): Uint8Array => {
    const out = new Uint8Array(32);
    for (let i = 0; i < 32; i++) out[i] = Number((n >> BigInt(8 * i)) & 0xffn);
    return out;
  };
  it("a non-canonical y (y ≥ p) of a point not of small order is a key, as dalek's from_bytes + is_weak accept it", () => {
    let found = 0;
    for (let i = 0n; i < 19n; i++) {
      const canonical = decodePublicKey(le32(i));
      const nonCanonical = decodePublicKey(le32(P + i));
      expect(nonCanonical === null).toBe(canonical === null);
      if (nonCanonical !== null && canonical !== null) {
        expect(nonCanonical.equals(canonical)).toBe(true);
        // As R, the same bytes are refused: the recomputed R is always canonical.
        expect(decodeStrictPoint(le32(P + i))).toBeNull();
        found++;
      }
    }
    expect(found).toBeGreaterThan(0);
  });
  it("small-order points are refused in every encoding", () => {
    expect(decodePublicKey(le32(1n))).toBeNull();
    expect(decodePublicKey(le32(P + 1n))).toBeNull();
    expect(decodePublicKey(le32(P - 1n))).toBeNull();
    expect(decodePublicKey(le32(0n))).toBeNull();
  });
  it("S + L in place of S is refused; the valid signature still verifies", () => {
    const c = v.cases.find((x: { name: string }) => x.name === "valid");
    const sig = h(c.signature);
    expect(verifyStrict(h(c.public_key), h(c.message), sig)).toBe(true);
    let s = 0n;
    for (let i = 31; i >= 0; i--) s = (s << 8n) | BigInt(sig[32 + i] ?? 0);
    const bumped = sig.slice();
    bumped.set(le32(s + L), 32);
    expect(verifyStrict(h(c.public_key), h(c.message), bumped)).toBe(false);
  });
});
