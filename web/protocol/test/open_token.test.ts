/** `open_token.json`: a policy requiring open tokens, a web key certificate and a token. */
import { describe, expect, it } from "vitest";
import { toHex } from "../src/bytes.js";
import { checkOpenTokenSignature, checkWebKeyCertificate, checkWebKeyRevocation, openTokenSignedBytes, visitorKey, webKeyCertificateSignedBytes, webKeyRevocationSignedBytes } from "../src/open_token.js";
import type { OpenToken, WebKeyCertificate, WebKeyRevocation } from "../src/open_token.js";
import { policySignedBytes, verifyPolicy } from "../src/policy.js";
import { policyToCbor, toCbor } from "../src/wire.js";
import { flip, vectorPolicy } from "./fixtures.js";
import { h, loadVector } from "./vectors.js";

const v = loadVector("open_token.json");

describe("open_token.json", () => {
  it("a policy requiring open tokens signs one more byte; one without keeps its bytes", () => {
    const base = vectorPolicy();
    const p = { ...base, version: base.version + 1, requireOpenToken: true, signature: h(v.policy.signature) };
    expect(toHex(policySignedBytes(p))).toBe(v.policy.signed_bytes);
    expect(toHex(policySignedBytes({ ...p, requireOpenToken: false }))).toBe(v.policy.signed_bytes_without_the_field);
    const { requireOpenToken: _dropped, ...without } = p;
    expect(toHex(policySignedBytes(without))).toBe(v.policy.signed_bytes_without_the_field);
    expect(verifyPolicy(p)).toBe(p);
    expect(toHex(toCbor(policyToCbor(p)))).toBe(v.policy.cbor);
    expect(() => verifyPolicy({ ...p, requireOpenToken: false })).toThrowError(/bad_signature/);
  });
  it("web key certificate and open token signed bytes and signatures", () => {
    const c = v.certificate;
    const master = vectorPolicy().master.signingKey;
    const cert: WebKeyCertificate = { org: c.org, name: c.name, key: h(v.web_key.signing_public), issuedAt: c.issued_at, expiresAt: c.expires_at, signature: h(c.signature) };
    expect(toHex(webKeyCertificateSignedBytes(cert))).toBe(c.signed_bytes);
    checkWebKeyCertificate(cert, master);
    expect(() => checkWebKeyCertificate({ ...cert, signature: flip(cert.signature) }, master)).toThrowError(/bad_signature/);
    const t = v.token;
    const token: OpenToken = { org: t.org, visitor: h(t.visitor), customer: h(t.customer), issuedAt: t.issued_at, expiresAt: t.expires_at, webKey: cert.key, signature: h(t.signature) };
    expect(toHex(openTokenSignedBytes(token))).toBe(t.signed_bytes);
    checkOpenTokenSignature(token);
    expect(() => checkOpenTokenSignature({ ...token, customer: master })).toThrowError(/bad_signature/);
    expect(toHex(visitorKey(token))).toBe(t.visitor_key);
  });
  it("web key revocation signed bytes and signature", () => {
    const r = v.revocation;
    const master = vectorPolicy().master.signingKey;
    const rev: WebKeyRevocation = { org: r.org, key: h(v.web_key.signing_public), revokedAt: r.revoked_at, signer: master, signature: h(r.signature) };
    expect(toHex(webKeyRevocationSignedBytes(rev))).toBe(r.signed_bytes);
    checkWebKeyRevocation(rev, master);
    expect(() => checkWebKeyRevocation({ ...rev, revokedAt: rev.revokedAt + 1 }, master)).toThrowError(/bad_signature/);
    expect(() => checkWebKeyRevocation(rev, h(v.web_key.signing_public))).toThrowError(/bad_signature/);
  });
});
