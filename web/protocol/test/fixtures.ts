/** Cards, keys and the policy of the vector files, rebuilt from `identities.json` and `policy.json`. */
import type { IdentityCard, Role } from "../src/card.js";
import { IdentityKeys } from "../src/keys.js";
import type { Policy } from "../src/policy.js";
import { ticketHash } from "../src/release.js";
import type { ArbiterDecision, ConsentToken, DisputeTicket } from "../src/release.js";
import type { Json } from "./vectors.js";
import { h, loadVector } from "./vectors.js";

const ids: Json[] = loadVector("identities.json").identities;

/** The identity named `name` in `identities.json`. */
function identity(name: string): Json {
  const id = ids.find((i) => i.name === name);
  if (id === undefined) throw new Error(`no identity ${name}`);
  return id;
}

/** The secret keys of `name`. */
export function keysOf(name: string): IdentityKeys {
  return IdentityKeys.fromSecretBytes(h(identity(name).secret_key));
}

/** The signing key of `name`. */
export function signingKeyOf(name: string): Uint8Array {
  return h(identity(name).signing_public);
}

/** The card of `name`. */
export function cardOf(name: string): IdentityCard {
  const id = identity(name);
  return {
    name: id.name,
    role: id.role as Role,
    signingKey: h(id.signing_public),
    agreementKey: h(id.agreement_public),
    createdAt: id.created_at,
    signature: h(id.card_signature),
  };
}

/** The policy of `policy.json`. */
export function vectorPolicy(): Policy {
  const p = loadVector("policy.json").policy;
  return {
    org: p.org,
    version: p.version,
    master: cardOf(p.master),
    trustees: (p.trustees as string[]).map(cardOf),
    trusteeThreshold: p.trustee_threshold,
    arbiters: (p.arbiters as string[]).map(cardOf),
    arbiterThreshold: p.arbiter_threshold,
    allowConsent: p.allow_consent,
    allowDispute: p.allow_dispute,
    maxReleaseValiditySecs: p.max_release_validity_secs,
    rotateAfterMessages: p.rotate_after_messages,
    rotateAfterSecs: p.rotate_after_secs,
    retentionSecs: p.retention_secs,
    historyHandoff: p.history_handoff,
    createdAt: p.created_at,
    signature: h(p.signature),
  };
}

/** A copy of `b` with one bit flipped at `i`. */
export function flip(b: Uint8Array, i = 0): Uint8Array {
  const out = b.slice();
  out[i] = (out[i] ?? 0) ^ 1;
  return out;
}

/** The consent token of a vector object. */
export function consentOf(c: Json): ConsentToken {
  return {
    id: h(c.id),
    org: c.org,
    conversation: h(c.conversation),
    epochs: c.epochs,
    grantee: signingKeyOf(c.grantee),
    scope: c.scope,
    purpose: c.purpose,
    issuedAt: c.issued_at,
    expiresAt: c.expires_at,
    customer: signingKeyOf(c.customer),
    signature: h(c.signature),
  };
}

/** The ticket of a vector object. */
export function ticketOf(t: Json): DisputeTicket {
  return {
    id: h(t.id),
    org: t.org,
    conversation: h(t.conversation),
    epochs: t.epochs,
    reason: t.reason,
    openedAt: t.opened_at,
    expiresAt: t.expires_at,
    master: signingKeyOf(t.master),
    signature: h(t.signature),
    ...(t.records === undefined ? {} : { records: (t.records as Json[]).map((r) => ({ epoch: r.epoch, hash: h(r.hash) })) }),
  };
}

/** The decisions of a vector file, for `ticket`. */
export function decisionsOf(ds: Json[], ticket: DisputeTicket): ArbiterDecision[] {
  return ds.map((d) => ({ ticket: ticket.id, ticketHash: ticketHash(ticket), verdict: d.verdict, decidedAt: d.decided_at, arbiter: signingKeyOf(d.arbiter), signature: h(d.signature) }));
}
