/**
 * Justifications and release objects (PROTOCOL §10): consent tokens, revocations, erasure
 * requests, dispute tickets, arbiter decisions, release requests and released shares — their
 * signed bytes, hashes and signature checks. Mirrors `protocol/src/release/`.
 */
import { equal } from "./bytes.js";
import { objectHash, Writer } from "./codec.js";
import { ProtocolError } from "./errors.js";
import { verifySignature } from "./keys.js";
import {
  ARBITER_DECISION,
  CONSENT,
  CONSENT_REVOCATION,
  DISPUTE_TICKET,
  DISPUTE_TICKET_HASH,
  ERASURE_REQUEST,
  RELEASE_REQUEST,
  RELEASE_REQUEST_HASH,
  RELEASED_SHARE,
} from "./labels.js";
import type { Policy } from "./policy.js";
import { writeSealed } from "./seal.js";
import type { Sealed } from "./seal.js";

/** An inclusive epoch range. */
export interface EpochRange {
  first: number;
  last: number;
}

/** Scope codes (§10.1). */
export const SCOPES = { full: 1, redacted: 2 } as const;
/** A scope name. */
export type Scope = keyof typeof SCOPES;

/** A consent token (§10.2), signed by the customer. */
export interface ConsentToken {
  id: Uint8Array;
  org: string;
  conversation: Uint8Array;
  epochs: EpochRange;
  grantee: Uint8Array;
  scope: Scope;
  purpose: string;
  issuedAt: number;
  expiresAt: number;
  customer: Uint8Array;
  signature: Uint8Array;
}

/** The bytes the customer signs. */
export function consentSignedBytes(c: Omit<ConsentToken, "signature">): Uint8Array {
  return Writer.withLabel(CONSENT)
    .fixed(c.id)
    .str(c.org)
    .fixed(c.conversation)
    .u32(c.epochs.first)
    .u32(c.epochs.last)
    .fixed(c.grantee)
    .u8(SCOPES[c.scope])
    .str(c.purpose)
    .u64(c.issuedAt)
    .u64(c.expiresAt)
    .fixed(c.customer)
    .toBytes();
}

/** Checks the consent's signature under its customer. */
export function verifyConsent(c: ConsentToken): ConsentToken {
  if (c.epochs.first > c.epochs.last) throw new ProtocolError("out_of_range", "epoch range");
  verifySignature(c.customer, consentSignedBytes(c), c.signature, "consent token");
  return c;
}

/** A consent revocation (§10.3). */
export interface ConsentRevocation {
  consent: Uint8Array;
  conversation: Uint8Array;
  revokedAt: number;
  customer: Uint8Array;
  signature: Uint8Array;
}

/** The bytes the customer signs. */
export function revocationSignedBytes(r: Omit<ConsentRevocation, "signature">): Uint8Array {
  return Writer.withLabel(CONSENT_REVOCATION).fixed(r.consent).fixed(r.conversation).u64(r.revokedAt).fixed(r.customer).toBytes();
}

/** Checks a revocation's signature; that `customer` is the token's customer is the recorder's check. */
export function verifyRevocation(r: ConsentRevocation): ConsentRevocation {
  verifySignature(r.customer, revocationSignedBytes(r), r.signature, "consent revocation");
  return r;
}

/** An erasure request (§10.7). */
export interface ErasureRequest {
  conversation: Uint8Array;
  requestedAt: number;
  customer: Uint8Array;
  signature: Uint8Array;
}

/** The bytes the customer signs. */
export function erasureSignedBytes(e: Omit<ErasureRequest, "signature">): Uint8Array {
  return Writer.withLabel(ERASURE_REQUEST).fixed(e.conversation).u64(e.requestedAt).fixed(e.customer).toBytes();
}

/** A dispute ticket (§10.4), signed by the master. */
export interface DisputeTicket {
  id: Uint8Array;
  org: string;
  conversation: Uint8Array;
  epochs: EpochRange;
  reason: string;
  openedAt: number;
  expiresAt: number;
  master: Uint8Array;
  signature: Uint8Array;
  /** The epoch records the ticket releases, by hash (§10.4); absent on older tickets. */
  records?: readonly BoundRecord[];
}

/** An epoch record a dispute ticket names: its epoch and its record hash. */
export interface BoundRecord {
  epoch: number;
  hash: Uint8Array;
}

/** The bytes the master signs: bound records follow only when there are any. */
export function ticketSignedBytes(t: Omit<DisputeTicket, "signature">): Uint8Array {
  const w = Writer.withLabel(DISPUTE_TICKET)
    .fixed(t.id)
    .str(t.org)
    .fixed(t.conversation)
    .u32(t.epochs.first)
    .u32(t.epochs.last)
    .str(t.reason)
    .u64(t.openedAt)
    .u64(t.expiresAt)
    .fixed(t.master);
  const records = t.records ?? [];
  if (records.length > 0) {
    w.count(records.length);
    for (const r of records) w.u32(r.epoch).fixed(r.hash);
  }
  return w.toBytes();
}

/** The ticket hash arbiters sign. */
export function ticketHash(t: DisputeTicket): Uint8Array {
  return objectHash(DISPUTE_TICKET_HASH, ticketSignedBytes(t), t.signature);
}

/** Release failures beyond a bad signature. */
export type ReleaseFailure = "wrong_org" | "wrong_master" | "not_an_arbiter" | "wrong_ticket" | "not_a_trustee";

/** A release object refused for `failure`. */
export class ReleaseError extends ProtocolError {
  constructor(readonly failure: ReleaseFailure) {
    super("malformed", `release: ${failure}`);
  }
}

/** Verifies a ticket against the policy (§10.4). */
export function verifyTicket(t: DisputeTicket, policy: Policy): DisputeTicket {
  if (t.org !== policy.org) throw new ReleaseError("wrong_org");
  if (!equal(t.master, policy.master.signingKey)) throw new ReleaseError("wrong_master");
  verifySignature(t.master, ticketSignedBytes(t), t.signature, "dispute ticket");
  return t;
}

/** An arbiter's verdict. */
export type Verdict = "approve" | { reject: string };

/** An arbiter decision (§10.5). */
export interface ArbiterDecision {
  ticket: Uint8Array;
  ticketHash: Uint8Array;
  verdict: Verdict;
  decidedAt: number;
  arbiter: Uint8Array;
  signature: Uint8Array;
}

/** The bytes the arbiter signs. */
export function decisionSignedBytes(d: Omit<ArbiterDecision, "signature">): Uint8Array {
  const w = Writer.withLabel(ARBITER_DECISION).fixed(d.ticket).fixed(d.ticketHash);
  if (d.verdict === "approve") w.u8(1);
  else w.u8(2).str(d.verdict.reject);
  return w.u64(d.decidedAt).fixed(d.arbiter).toBytes();
}

/** Checks one decision for `ticket` under `policy` (§10.5). */
export function verifyDecision(d: ArbiterDecision, ticket: DisputeTicket, policy: Policy): ArbiterDecision {
  const isArbiter = policy.arbiters.some((a) => equal(a.signingKey, d.arbiter));
  if (!isArbiter || equal(d.arbiter, policy.master.signingKey)) throw new ReleaseError("not_an_arbiter");
  if (!equal(d.ticket, ticket.id) || !equal(d.ticketHash, ticketHash(ticket))) throw new ReleaseError("wrong_ticket");
  verifySignature(d.arbiter, decisionSignedBytes(d), d.signature, "arbiter decision");
  return d;
}

/** The distinct arbiter keys with a valid `approve` decision for `ticket`. */
export function approvers(ticket: DisputeTicket, decisions: readonly ArbiterDecision[], policy: Policy): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const d of decisions) {
    if (d.verdict !== "approve") continue;
    try {
      verifyDecision(d, ticket, policy);
    } catch {
      continue;
    }
    if (!out.some((k) => equal(k, d.arbiter))) out.push(d.arbiter);
  }
  return out;
}

/** What justifies a release request. */
export type Justification = { consent: ConsentToken } | { dispute: { ticket: DisputeTicket; decisions: ArbiterDecision[] } };

/** A release request (§10.6), signed by the master. */
export interface ReleaseRequest {
  id: Uint8Array;
  org: string;
  policyVersion: number;
  conversation: Uint8Array;
  epochs: EpochRange;
  justification: Justification;
  requestedAt: number;
  master: Uint8Array;
  signature: Uint8Array;
}

/** The bytes the master signs. */
export function requestSignedBytes(r: Omit<ReleaseRequest, "signature">): Uint8Array {
  const w = Writer.withLabel(RELEASE_REQUEST).fixed(r.id).str(r.org).u32(r.policyVersion).fixed(r.conversation).u32(r.epochs.first).u32(r.epochs.last);
  const j = r.justification;
  if ("consent" in j) {
    w.u8(1).bytes(consentSignedBytes(j.consent)).fixed(j.consent.signature);
  } else {
    w.u8(2).bytes(ticketSignedBytes(j.dispute.ticket)).fixed(j.dispute.ticket.signature).count(j.dispute.decisions.length);
    for (const d of j.dispute.decisions) w.bytes(decisionSignedBytes(d)).fixed(d.signature);
  }
  return w.u64(r.requestedAt).fixed(r.master).toBytes();
}

/** The request hash bound into released shares. */
export function requestHash(r: ReleaseRequest): Uint8Array {
  return objectHash(RELEASE_REQUEST_HASH, requestSignedBytes(r), r.signature);
}

/** A trustee's share of one epoch, re-sealed to the master for one request (§10.8). */
export interface ReleasedShare {
  requestHash: Uint8Array;
  conversation: Uint8Array;
  epoch: number;
  trustee: Uint8Array;
  sealed: Sealed;
  signature: Uint8Array;
}

/** The bytes the trustee signs. */
export function releasedShareSignedBytes(s: Omit<ReleasedShare, "signature">): Uint8Array {
  const w = Writer.withLabel(RELEASED_SHARE).fixed(s.requestHash).fixed(s.conversation).u32(s.epoch).fixed(s.trustee);
  return writeSealed(w, s.sealed).toBytes();
}

/** Checks that the share's trustee is one of the policy and its signature (§10.8, before opening). */
export function verifyReleasedShare(s: ReleasedShare, policy: Policy): ReleasedShare {
  if (!policy.trustees.some((t) => equal(t.signingKey, s.trustee))) throw new ReleaseError("not_a_trustee");
  verifySignature(s.trustee, releasedShareSignedBytes(s), s.signature, "released share");
  return s;
}
