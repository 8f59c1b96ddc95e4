/** `consent.json`: consent token, its revocation and the erasure request. */
import { describe, expect, it } from "vitest";
import { toHex } from "../src/bytes.js";
import { consentSignedBytes, erasureSignedBytes, revocationSignedBytes, SCOPES, verifyConsent, verifyRevocation } from "../src/release.js";
import { consentOf, flip, keysOf, signingKeyOf } from "./fixtures.js";
import { h, loadVector } from "./vectors.js";

const v = loadVector("consent.json");


describe("consent.json", () => {
  const token = consentOf(v.consent);
  const customer = keysOf(v.consent.customer);
  it("consent token signed bytes and signature", () => {
    expect(SCOPES[token.scope]).toBe(v.consent.scope_code);
    expect(toHex(consentSignedBytes(token))).toBe(v.consent.signed_bytes);
    expect(toHex(customer.sign(consentSignedBytes(token)))).toBe(v.consent.signature);
    expect(verifyConsent(token)).toBe(token);
    expect(() => verifyConsent({ ...token, purpose: token.purpose + "!" })).toThrowError(/bad_signature/);
    expect(() => verifyConsent({ ...token, signature: flip(token.signature, 40) })).toThrowError(/bad_signature/);
    expect(() => verifyConsent({ ...token, customer: signingKeyOf("bob") })).toThrowError(/bad_signature/);
  });
  it("revocation signed bytes and signature", () => {
    const r = { consent: token.id, conversation: token.conversation, revokedAt: v.revocation.revoked_at, customer: token.customer, signature: h(v.revocation.signature) };
    expect(toHex(revocationSignedBytes(r))).toBe(v.revocation.signed_bytes);
    expect(toHex(customer.sign(revocationSignedBytes(r)))).toBe(v.revocation.signature);
    expect(verifyRevocation(r)).toBe(r);
    expect(() => verifyRevocation({ ...r, revokedAt: r.revokedAt + 1 })).toThrowError(/bad_signature/);
  });
  it("erasure request signed bytes and signature", () => {
    const e = { conversation: token.conversation, requestedAt: v.erasure_request.requested_at, customer: token.customer };
    expect(toHex(erasureSignedBytes(e))).toBe(v.erasure_request.signed_bytes);
    expect(toHex(customer.sign(erasureSignedBytes(e)))).toBe(v.erasure_request.signature);
  });
});
