/** `identities.json`: keys from secrets, card signed bytes, signatures and fingerprints. */
import { describe, expect, it } from "vitest";
import { toHex } from "../src/bytes.js";
import { cardFingerprint, cardSignedBytes, isRole, ROLES, verifyCard } from "../src/card.js";
import type { IdentityCard } from "../src/card.js";
import { ProtocolError } from "../src/errors.js";
import { fingerprintMatches, formatFingerprint, IdentityKeys } from "../src/keys.js";
import { h, loadVector } from "./vectors.js";

const v = loadVector("identities.json");

describe("identities.json", () => {
  for (const id of v.identities) {
    it(`${id.name}: keys, card, signature, fingerprint`, () => {
      const keys = IdentityKeys.fromSecretBytes(h(id.secret_key));
      expect(toHex(keys.signingPublic)).toBe(id.signing_public);
      expect(toHex(keys.agreementPublic)).toBe(id.agreement_public);
      if (id.role === null) return; // the relay key signs tree heads and has no card
      expect(isRole(id.role)).toBe(true);
      expect(ROLES[id.role as keyof typeof ROLES]).toBe(id.role_code);
      const card: IdentityCard = {
        name: id.name,
        role: id.role,
        signingKey: keys.signingPublic,
        agreementKey: keys.agreementPublic,
        createdAt: id.created_at,
        signature: h(id.card_signature),
      };
      expect(toHex(cardSignedBytes(card))).toBe(id.card_signed_bytes);
      expect(toHex(keys.sign(cardSignedBytes(card)))).toBe(id.card_signature);
      expect(verifyCard(card, id.role)).toBe(card);
      const fp = cardFingerprint(card);
      expect(toHex(fp)).toBe(id.fingerprint_sha256);
      expect(formatFingerprint(fp)).toBe(id.fingerprint);
      expect(fingerprintMatches(fp, id.fingerprint.replace(/ /g, "-"))).toBe(true);

      // Negative: tampered name, wrong role, a forged signature.
      const tampered = { ...card, createdAt: card.createdAt + 1 };
      expect(() => verifyCard(tampered)).toThrowError(ProtocolError);
      const forged = card.signature.slice();
      forged[0] = (forged[0] ?? 0) ^ 1;
      expect(() => verifyCard({ ...card, signature: forged })).toThrowError(/bad_signature/);
      const other = id.role === "customer" ? "agent" : "customer";
      try {
        verifyCard(card, other);
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(ProtocolError);
        expect((e as ProtocolError).code).toBe("wrong_role");
      }
    });
  }
});
