/**
 * Org policies and agent certificates (PROTOCOL §4): signed bytes, policy hash, the validation
 * order of §4.2 and certificate verification of §4.3. Mirrors `protocol/src/policy.rs`.
 */
import { equal } from "./bytes.js";
import { objectHash, Writer } from "./codec.js";
import { ProtocolError } from "./errors.js";
import { verifyCard, isValidName, writeCardBlob } from "./card.js";
import type { IdentityCard } from "./card.js";
import { verifySignature } from "./keys.js";
import { AGENT_CERT, POLICY } from "./labels.js";

/** Most trustees, arbiters (§4.2). */
export const MAX_PARTIES = 32;
/** Tolerated clock skew for times from another party (§1.3). */
export const CLOCK_SKEW_SECS = 300;

/** An org policy as signed by its master. */
export interface Policy {
  org: string;
  version: number;
  master: IdentityCard;
  trustees: IdentityCard[];
  trusteeThreshold: number;
  arbiters: IdentityCard[];
  arbiterThreshold: number;
  allowConsent: boolean;
  allowDispute: boolean;
  maxReleaseValiditySecs: number;
  rotateAfterMessages: number;
  rotateAfterSecs: number;
  retentionSecs: number;
  historyHandoff: boolean;
  createdAt: number;
  signature: Uint8Array;
  /** Whether opening needs an open token (§13.14); absent (false) in older policies. */
  requireOpenToken?: boolean;
}

/** The bytes the master signs (§4.1). */
export function policySignedBytes(p: Omit<Policy, "signature">): Uint8Array {
  const w = Writer.withLabel(POLICY).str(p.org).u32(p.version);
  writeCardBlob(w, p.master);
  w.count(p.trustees.length);
  for (const t of p.trustees) writeCardBlob(w, t);
  w.u8(p.trusteeThreshold).count(p.arbiters.length);
  for (const a of p.arbiters) writeCardBlob(w, a);
  w.u8(p.arbiterThreshold)
    .bool(p.allowConsent)
    .bool(p.allowDispute)
    .u64(p.maxReleaseValiditySecs)
    .u32(p.rotateAfterMessages)
    .u64(p.rotateAfterSecs)
    .u64(p.retentionSecs)
    .bool(p.historyHandoff)
    .u64(p.createdAt);
  // An optional trailing field, written only when set: older policies keep their bytes.
  if (p.requireOpenToken === true) w.bool(true);
  return w.toBytes();
}

/** `SHA-256(str(POLICY) ‖ bytes(signed bytes) ‖ signature)`. */
export function policyHash(p: Policy): Uint8Array {
  return objectHash(POLICY, policySignedBytes(p), p.signature);
}

/** Why a policy was refused (§4.2, first failure). */
export class PolicyError extends ProtocolError {
  constructor(readonly reason: string) {
    super("malformed", `policy: ${reason}`);
  }
}

/** Validates a policy in the order of §4.2; returns it or throws the first failure. */
export function verifyPolicy(p: Policy): Policy {
  if (!isValidName(p.org)) throw new ProtocolError("invalid_name", p.org);
  verifyCard(p.master, "master");
  verifySignature(p.master.signingKey, policySignedBytes(p), p.signature, "policy");
  const ne = p.trustees.length;
  const na = p.arbiters.length;
  if (ne < 1 || ne > MAX_PARTIES) throw new PolicyError("trustee count");
  if (p.trusteeThreshold < 1 || p.trusteeThreshold > ne) throw new PolicyError("trustee threshold");
  if (na > MAX_PARTIES) throw new PolicyError("arbiter count");
  if (p.allowDispute && (p.arbiterThreshold < 1 || p.arbiterThreshold > na)) throw new PolicyError("arbiter threshold");
  if (!p.allowConsent && !p.allowDispute) throw new PolicyError("no justification allowed");
  if (p.maxReleaseValiditySecs <= 0) throw new PolicyError("release validity");
  if (p.rotateAfterMessages <= 0 || p.rotateAfterSecs <= 0) throw new PolicyError("rotation");
  if (p.retentionSecs <= 0) throw new PolicyError("retention");
  for (const t of p.trustees) verifyCard(t, "trustee");
  for (const a of p.arbiters) verifyCard(a, "arbiter");
  const parties = [p.master, ...p.trustees, ...p.arbiters];
  const seen: Uint8Array[] = [];
  const names = new Set<string>();
  for (const c of parties) {
    for (const k of [c.signingKey, c.agreementKey]) {
      if (seen.some((s) => equal(s, k))) throw new PolicyError("separation of duties: a key appears twice");
      seen.push(k);
    }
    if (names.has(c.name)) throw new PolicyError("separation of duties: a name appears twice");
    names.add(c.name);
  }
  return p;
}

/** A master's statement that a card belongs to one of its agents (§4.3). */
export interface AgentCertificate {
  org: string;
  agent: IdentityCard;
  issuedAt: number;
  expiresAt: number;
  signature: Uint8Array;
}

/** The bytes the master signs. */
export function agentCertificateSignedBytes(c: Omit<AgentCertificate, "signature">): Uint8Array {
  const w = Writer.withLabel(AGENT_CERT).str(c.org);
  writeCardBlob(w, c.agent);
  return w.u64(c.issuedAt).u64(c.expiresAt).toBytes();
}

/** Certificate failures that are not a bad signature or card. */
export type CertificateFailure = "wrong_org" | "invalid_validity" | "expired";

/** A certificate refused for `failure`. */
export class CertificateError extends ProtocolError {
  constructor(readonly failure: CertificateFailure) {
    super("malformed", `agent certificate: ${failure}`);
  }
}

/** Verifies `c` against the pinned policy at `now`, in the order of §4.3. */
export function verifyAgentCertificate(c: AgentCertificate, policy: Policy, now: number): AgentCertificate {
  if (c.org !== policy.org) throw new CertificateError("wrong_org");
  verifySignature(policy.master.signingKey, agentCertificateSignedBytes(c), c.signature, "agent certificate");
  if (c.issuedAt > now + CLOCK_SKEW_SECS || c.expiresAt <= c.issuedAt) throw new CertificateError("invalid_validity");
  if (now >= c.expiresAt) throw new CertificateError("expired");
  verifyCard(c.agent, "agent");
  return c;
}
