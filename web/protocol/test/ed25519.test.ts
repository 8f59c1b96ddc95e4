/** `ed25519_strict.json`: the strict verifier agrees with `verify_strict` on every case. */
import { ed25519 } from "@noble/curves/ed25519.js";
import { describe, expect, it } from "vitest";
import { verifyStrict } from "../src/ed25519.js";
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
