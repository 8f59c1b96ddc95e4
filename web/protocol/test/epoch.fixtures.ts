/** Epoch records of `epoch.json`, rebuilt as typed values. */
import type { EpochRecord } from "../src/epoch.js";
import type { Sealed } from "../src/seal.js";
import { cardOf, signingKeyOf } from "./fixtures.js";
import type { Json } from "./vectors.js";
import { h } from "./vectors.js";

/** A sealed blob of a vector object. */
export const sealedOf = (s: Json): Sealed => ({ enc: h(s.enc), ciphertext: h(s.ciphertext) });

/** The record of a vector object. */
export function recordOf(e: Json): EpochRecord {
  return {
    version: e.version,
    org: e.org,
    conversation: h(e.conversation),
    epoch: e.epoch,
    policyVersion: e.policy_version,
    policyHash: h(e.policy_hash),
    previous: e.previous === null ? null : h(e.previous),
    createdAt: e.created_at,
    creator: signingKeyOf(e.creator),
    members: (e.members as string[]).map(cardOf),
    sealedSecrets: (e.sealed_secrets as Json[]).map((s) => sealedOf(s.sealed)),
    escrow: { master: sealedOf(e.escrow.master.sealed), trustees: (e.escrow.trustees as Json[]).map((t) => sealedOf(t.sealed)) },
    commitment: h(e.commitment),
    signature: h(e.signature),
  };
}

