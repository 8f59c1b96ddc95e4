/** `policy.json`: policy signed bytes, signature, hash and validation; the agent certificate. */
import { describe, expect, it } from "vitest";
import { toHex } from "../src/bytes.js";
import { ProtocolError } from "../src/errors.js";
import { agentCertificateSignedBytes, CertificateError, policyHash, policySignedBytes, verifyAgentCertificate, verifyPolicy } from "../src/policy.js";
import type { AgentCertificate } from "../src/policy.js";
import { cardOf, flip, keysOf, vectorPolicy } from "./fixtures.js";
import { h, loadVector } from "./vectors.js";

const v = loadVector("policy.json");

describe("policy.json", () => {
  it("policy signed bytes, signature and hash", () => {
    const p = vectorPolicy();
    expect(toHex(policySignedBytes(p))).toBe(v.policy.signed_bytes);
    expect(toHex(keysOf(v.policy.master).sign(policySignedBytes(p)))).toBe(v.policy.signature);
    expect(toHex(policyHash(p))).toBe(v.policy.hash);
    expect(verifyPolicy(p)).toBe(p);
  });
  it("a tampered or forged policy is refused", () => {
    const p = vectorPolicy();
    expect(() => verifyPolicy({ ...p, retentionSecs: p.retentionSecs + 1 })).toThrowError(/bad_signature/);
    expect(() => verifyPolicy({ ...p, signature: flip(p.signature) })).toThrowError(ProtocolError);
    // Signed by a trustee instead of the master.
    const byTrustee = keysOf("trustee-1").sign(policySignedBytes(p));
    expect(() => verifyPolicy({ ...p, signature: byTrustee })).toThrowError(/bad_signature/);
  });
  it("agent certificate signed bytes, signature and checks", () => {
    const c = v.agent_certificate;
    const p = vectorPolicy();
    const cert: AgentCertificate = { org: c.org, agent: cardOf(c.agent), issuedAt: c.issued_at, expiresAt: c.expires_at, signature: h(c.signature) };
    expect(toHex(agentCertificateSignedBytes(cert))).toBe(c.signed_bytes);
    expect(toHex(keysOf(v.policy.master).sign(agentCertificateSignedBytes(cert)))).toBe(c.signature);
    expect(verifyAgentCertificate(cert, p, c.issued_at)).toBe(cert);
    expect(() => verifyAgentCertificate(cert, p, c.expires_at)).toThrowError(CertificateError);
    expect(() => verifyAgentCertificate(cert, { ...p, org: "other" }, c.issued_at)).toThrowError(/wrong_org/);
    expect(() => verifyAgentCertificate({ ...cert, signature: flip(cert.signature) }, p, c.issued_at)).toThrowError(/bad_signature/);
    expect(() => verifyAgentCertificate(cert, p, c.issued_at - 301)).toThrowError(/invalid_validity/);
  });
});
