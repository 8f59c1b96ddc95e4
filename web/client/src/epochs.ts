/**
 * Epoch records as a member makes them (§7.4: the secret sealed to each member, the escrow
 * computed under the policy, the commitment, the creator's signature) and the per-epoch state a
 * member keeps to open messages (a replay window per sender, §9.4). Shared by the customer, who
 * makes epoch 0, and the agent, who rotates and transfers.
 */
import {
  ReplayWindow,
  computeEscrow,
  epochCommitment,
  epochRecordHash,
  epochSignedBytes,
  labels,
  policyHash,
  seal,
  toHex,
  type EpochRecord,
  type IdentityCard,
  type IdentityKeys,
  type Policy,
} from "@sealdesk/protocol";

/** What a new epoch is made of. */
export interface EpochPlan {
  policy: Policy;
  conversation: Uint8Array;
  /** The record before it (null for epoch 0, whose number is then 0). */
  previous: EpochRecord | null;
  /** The members, the customer among them. */
  members: IdentityCard[];
  /** The customer's signing key (the escrow is bound to it). */
  customer: Uint8Array;
  /** The epoch secret (32 random bytes); the caller wipes it. */
  k: Uint8Array;
  /** Seconds since the epoch. */
  createdAt: number;
}

/**
 * Makes and signs the epoch record of `plan` as `keys`: the secret sealed to every member
 * (`SEAL_EPOCH_SECRET`), the escrow of the policy, the commitment to the secret.
 *
 * # Errors
 * The protocol's errors (a member's key that does not agree, a policy the escrow cannot use).
 */
export async function makeEpochRecord(keys: IdentityKeys, random: (n: number) => Uint8Array, plan: EpochPlan): Promise<EpochRecord> {
  const { policy, conversation, previous, members, k } = plan;
  const epoch = previous === null ? 0 : previous.epoch + 1;
  const sealedSecrets = [];
  for (const m of members) sealedSecrets.push(await seal(random, m.agreementKey, { purpose: labels.SEAL_EPOCH_SECRET, conversation, epoch, recipient: m.signingKey, extra: new Uint8Array(0) }, k));
  const escrow = await computeEscrow(k, conversation, epoch, plan.customer, policy);
  const unsigned = {
    version: 1,
    org: policy.org,
    conversation,
    epoch,
    policyVersion: policy.version,
    policyHash: policyHash(policy),
    previous: previous === null ? null : epochRecordHash(previous),
    createdAt: plan.createdAt,
    creator: keys.signingPublic,
    members,
    sealedSecrets,
    escrow,
    commitment: epochCommitment(conversation, epoch, k),
  };
  return { ...unsigned, signature: keys.sign(epochSignedBytes(unsigned)) };
}

/** The replay window of `sender` in an epoch's `windows`, made on first use. */
export function replayWindow(windows: Map<string, ReplayWindow>, sender: Uint8Array): ReplayWindow {
  const k = toHex(sender);
  let w = windows.get(k);
  if (w === undefined) {
    w = new ReplayWindow();
    windows.set(k, w);
  }
  return w;
}

/** The body of a read receipt (kind `read`, §9.6): the sequence number read up to, u64 big-endian. */
export function readReceiptBody(seq: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(seq));
  return b;
}

/** The sequence number a read receipt's body says, or null when it is not 8 bytes. */
export function readReceiptSeq(body: Uint8Array): number | null {
  if (body.length !== 8) return null;
  return Number(new DataView(body.buffer, body.byteOffset, 8).getBigUint64(0));
}
