/**
 * Project Wycheproof against the primitives: every Ed25519 vector marked valid verifies under the
 * strict verifier and every invalid one fails; X25519 public keys are refused exactly when the
 * shared secret is all zero, and noble computes every other shared secret.
 */
import { x25519 } from "@noble/curves/ed25519.js";
import { describe, expect, it } from "vitest";
import { toHex } from "../src/bytes.js";
import { verifyStrict } from "../src/ed25519.js";
import { checkAgreementKey } from "../src/keys.js";
import type { Json } from "./vectors.js";
import { h } from "./vectors.js";

const files: Record<string, Json> = import.meta.glob("./wycheproof/*.json", { eager: true, import: "default" });
const load = (f: string): Json => files[`./wycheproof/${f}`];

describe("Wycheproof ed25519_test.json", () => {
  const file = load("ed25519_test.json");
  it("every valid signature verifies strictly and every invalid one fails", () => {
    const wrong: string[] = [];
    let n = 0;
    for (const g of file.testGroups as Json[]) {
      const pk = h(g.publicKey.pk);
      for (const t of g.tests as Json[]) {
        n++;
        let sig: Uint8Array;
        try {
          sig = h(t.sig);
        } catch {
          sig = new Uint8Array(0);
        }
        const ok = verifyStrict(pk, h(t.msg), sig);
        if (ok !== (t.result === "valid")) wrong.push(`tc ${t.tcId} (${t.comment}): ${t.result}, got ${ok}`);
        expect(t.result).not.toBe("acceptable");
      }
    }
    expect(n).toBe(file.numberOfTests);
    expect(wrong).toEqual([]);
  });
});

describe("Wycheproof x25519_test.json", () => {
  const file = load("x25519_test.json");
  it("low-order public keys are refused exactly when the shared secret is zero; the rest compute", () => {
    const wrong: string[] = [];
    let n = 0;
    for (const g of file.testGroups as Json[]) {
      for (const t of g.tests as Json[]) {
        n++;
        const zero = /^0+$/.test(t.shared);
        let refused = false;
        try {
          checkAgreementKey(h(t.public));
        } catch {
          refused = true;
        }
        if (refused !== zero) wrong.push(`tc ${t.tcId}: refused=${refused}, zero=${zero}`);
        if (!zero) {
          let shared = "";
          try {
            shared = toHex(x25519.getSharedSecret(h(t.private), h(t.public)));
          } catch (e) {
            shared = `error ${(e as Error).message}`;
          }
          if (shared !== t.shared) wrong.push(`tc ${t.tcId}: shared ${shared}`);
        }
      }
    }
    expect(n).toBe(file.numberOfTests);
    expect(wrong).toEqual([]);
  });
});
