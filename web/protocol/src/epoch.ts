/**
 * Epoch records, the escrow section and history hand-offs (PROTOCOL §7–8): signed bytes, record
 * hash, the three levels of verification (§7.5) including the level-3 escrow recomputation, and
 * the hand-off. Mirrors `protocol/src/epoch.rs` and `protocol/src/escrow.rs`.
 */
import { equal } from "./bytes.js";
import { objectHash, Writer } from "./codec.js";
import { ProtocolError } from "./errors.js";
import { verifyCard, writeCardBlob } from "./card.js";
import type { IdentityCard } from "./card.js";
import type { IdentityKeys } from "./keys.js";
import { verifySignature } from "./keys.js";
import { EPOCH_RECORD, EPOCH_RECORD_HASH, HANDOFF, SEAL_EPOCH_SECRET, SEAL_HANDOFF, SEAL_MASTER_SHARE, SEAL_TRUSTEE_SHARE } from "./labels.js";
import { policyHash } from "./policy.js";
import type { Holders } from "./handoff_chain.js";
import type { Policy } from "./policy.js";
import { open, sealDeterministic, writeSealed } from "./seal.js";
import type { Sealed } from "./seal.js";
import { EpochSecret, epochCommitment } from "./secret.js";
import { encodeShare, split } from "./shamir.js";

/** `PROTOCOL_VERSION`. */
export const PROTOCOL_VERSION = 1;
/** Most members of an epoch. */
export const MAX_MEMBERS = 16;

/** The escrow section: `s_M` to the master, one Shamir share to each trustee. */
export interface Escrow {
  master: Sealed;
  trustees: Sealed[];
}

/** An epoch record (§7.1). */
export interface EpochRecord {
  version: number;
  org: string;
  conversation: Uint8Array;
  epoch: number;
  policyVersion: number;
  policyHash: Uint8Array;
  previous: Uint8Array | null;
  createdAt: number;
  creator: Uint8Array;
  members: IdentityCard[];
  sealedSecrets: Sealed[];
  escrow: Escrow;
  commitment: Uint8Array;
  signature: Uint8Array;
}

/** Why an epoch record was refused. */
export type EpochFailure =
  | "unknown_version"
  | "wrong_org"
  | "wrong_policy"
  | "member_count"
  | "sealed_count"
  | "trustee_count"
  | "bad_member"
  | "customer_count"
  | "wrong_conversation"
  | "bad_chain"
  | "not_a_member"
  | "commitment_mismatch"
  | "escrow_mismatch";

/** An epoch record or hand-off refused for `failure`. */
export class EpochError extends ProtocolError {
  constructor(
    readonly failure: EpochFailure,
    detail?: string,
  ) {
    super("malformed", `epoch: ${failure}${detail === undefined ? "" : ` (${detail})`}`);
  }
}

function writeEscrow(w: Writer, e: Escrow): Writer {
  writeSealed(w, e.master).count(e.trustees.length);
  for (const t of e.trustees) writeSealed(w, t);
  return w;
}

/** The bytes the creator signs (§7.2). */
export function epochSignedBytes(r: Omit<EpochRecord, "signature">): Uint8Array {
  const w = Writer.withLabel(EPOCH_RECORD)
    .u8(r.version)
    .str(r.org)
    .fixed(r.conversation)
    .u32(r.epoch)
    .u32(r.policyVersion)
    .fixed(r.policyHash)
    .option(r.previous, (w, p) => w.fixed(p))
    .u64(r.createdAt)
    .fixed(r.creator)
    .count(r.members.length);
  for (const m of r.members) writeCardBlob(w, m);
  w.count(r.sealedSecrets.length);
  for (const s of r.sealedSecrets) writeSealed(w, s);
  return writeEscrow(w, r.escrow).fixed(r.commitment).toBytes();
}

/** `SHA-256(str(EPOCH_RECORD_HASH) ‖ bytes(signed bytes) ‖ signature)` (§7.3). */
export function epochRecordHash(r: EpochRecord): Uint8Array {
  return objectHash(EPOCH_RECORD_HASH, epochSignedBytes(r), r.signature);
}

/** The record's single customer card (after level 1). */
export function customerOf(r: EpochRecord): IdentityCard {
  const c = r.members.find((m) => m.role === "customer");
  if (c === undefined) throw new EpochError("customer_count");
  return c;
}

/** The escrow section of `k` for (`conversation`, `epoch`), customer `customer`, under `policy` (§8.1). */
export async function computeEscrow(k: Uint8Array, conversation: Uint8Array, epoch: number, customer: Uint8Array, policy: Policy): Promise<Escrow> {
  const sched = new EpochSecret(k, conversation, epoch);
  const sM = sched.masterShare();
  const sE = new Uint8Array(32);
  for (let i = 0; i < 32; i++) sE[i] = (k[i] ?? 0) ^ (sM[i] ?? 0);
  const coefficients: Uint8Array[] = [];
  for (let i = 1; i < policy.trusteeThreshold; i++) coefficients.push(sched.coefficient(i));
  const shares = split(sE, policy.trusteeThreshold, policy.trustees.length, coefficients);
  try {
    const m = policy.master;
    const master = await sealDeterministic(sched.escrowIkm(m.signingKey), m.agreementKey, { purpose: SEAL_MASTER_SHARE, conversation, epoch, recipient: m.signingKey, extra: customer }, sM);
    const trustees: Sealed[] = [];
    for (const [i, t] of policy.trustees.entries()) {
      const share = shares[i];
      if (share === undefined) throw new EpochError("trustee_count");
      const plain = encodeShare(share);
      trustees.push(await sealDeterministic(sched.escrowIkm(t.signingKey), t.agreementKey, { purpose: SEAL_TRUSTEE_SHARE, conversation, epoch, recipient: t.signingKey, extra: customer }, plain));
      plain.fill(0);
    }
    return { master, trustees };
  } finally {
    sE.fill(0);
    sM.fill(0);
    for (const c of coefficients) c.fill(0);
    for (const s of shares) s.values.fill(0);
    sched.wipe();
  }
}

/** Level 1 (§7.5): what anyone with the policy can check. */
export function verifyEpoch(r: EpochRecord, policy: Policy): EpochRecord {
  if (r.version !== PROTOCOL_VERSION) throw new EpochError("unknown_version");
  if (r.org !== policy.org) throw new EpochError("wrong_org");
  if (r.policyVersion !== policy.version || !equal(r.policyHash, policyHash(policy))) throw new EpochError("wrong_policy");
  if (r.members.length < 1 || r.members.length > MAX_MEMBERS) throw new EpochError("member_count");
  if (r.sealedSecrets.length !== r.members.length) throw new EpochError("sealed_count");
  if (r.escrow.trustees.length !== policy.trustees.length) throw new EpochError("trustee_count");
  const outside = [policy.master, ...policy.trustees, ...policy.arbiters];
  const keys: Uint8Array[] = [];
  for (const m of r.members) {
    verifyCard(m);
    if (m.role !== "customer" && m.role !== "agent") throw new EpochError("bad_member", "role");
    for (const k of [m.signingKey, m.agreementKey]) {
      if (keys.some((s) => equal(s, k))) throw new EpochError("bad_member", "key appears twice");
      keys.push(k);
    }
    if (outside.some((o) => equal(o.signingKey, m.signingKey) || equal(o.agreementKey, m.agreementKey))) throw new EpochError("bad_member", "an escrow party");
  }
  if (r.members.filter((m) => m.role === "customer").length !== 1) throw new EpochError("customer_count");
  verifySignature(r.creator, epochSignedBytes(r), r.signature, "epoch record");
  return r;
}

/** Level 2 (§7.5): the record follows `previous` (or is a valid epoch 0 when `previous` is null). */
export function checkFollows(r: EpochRecord, previous: EpochRecord | null): void {
  if (previous === null) {
    if (r.epoch !== 0 || r.previous !== null || !equal(r.creator, customerOf(r).signingKey)) throw new EpochError("bad_chain", "epoch 0");
    return;
  }
  if (!equal(r.conversation, previous.conversation)) throw new EpochError("wrong_conversation");
  if (r.epoch !== previous.epoch + 1) throw new EpochError("bad_chain", "epoch number");
  if (r.previous === null || !equal(r.previous, epochRecordHash(previous))) throw new EpochError("bad_chain", "previous hash");
  if (!previous.members.some((m) => equal(m.signingKey, r.creator))) throw new EpochError("bad_chain", "creator not a previous member");
  if (!equal(customerOf(r).signingKey, customerOf(previous).signingKey)) throw new EpochError("bad_chain", "customer changed");
  if (r.policyVersion < previous.policyVersion) throw new EpochError("bad_chain", "policy version went back");
}

/** Level 3 (§7.5): opens `K` for member `me` and recomputes the escrow section byte for byte. */
export async function openEpoch(r: EpochRecord, me: IdentityKeys, policy: Policy): Promise<Uint8Array> {
  const index = r.members.findIndex((m) => equal(m.signingKey, me.signingPublic));
  const sealed = r.sealedSecrets[index];
  if (index < 0 || sealed === undefined) throw new EpochError("not_a_member");
  const k = await open(me, sealed, { purpose: SEAL_EPOCH_SECRET, conversation: r.conversation, epoch: r.epoch, recipient: me.signingPublic, extra: new Uint8Array(0) });
  if (k.length !== 32) throw new EpochError("commitment_mismatch", "secret length");
  if (!equal(epochCommitment(r.conversation, r.epoch, k), r.commitment)) throw new EpochError("commitment_mismatch");
  const escrow = await computeEscrow(k, r.conversation, r.epoch, customerOf(r).signingKey, policy);
  if (escrow.trustees.length !== r.escrow.trustees.length) throw new EpochError("escrow_mismatch", "trustee count");
  const bytes = (s: Sealed): Uint8Array => writeSealed(new Writer(), s).toBytes();
  if (!equal(bytes(escrow.master), bytes(r.escrow.master))) throw new EpochError("escrow_mismatch", "master");
  escrow.trustees.forEach((t, i) => {
    const theirs = r.escrow.trustees[i];
    if (theirs === undefined || !equal(bytes(t), bytes(theirs))) throw new EpochError("escrow_mismatch", `trustee ${i}`);
  });
  return k;
}

/** A history hand-off (§7.6). */
export interface Handoff {
  conversation: Uint8Array;
  from: Uint8Array;
  to: Uint8Array;
  epochs: [number, Sealed][];
  createdAt: number;
  signature: Uint8Array;
}

/** The bytes `from` signs. */
export function handoffSignedBytes(h: Omit<Handoff, "signature">): Uint8Array {
  const w = Writer.withLabel(HANDOFF).fixed(h.conversation).fixed(h.from).fixed(h.to).count(h.epochs.length);
  for (const [e, s] of h.epochs) writeSealed(w.u32(e), s);
  return w.u64(h.createdAt).toBytes();
}

/**
 * Opens a hand-off addressed to `me`, given the verified records by epoch; returns `K` per epoch.
 * Its `from` must be a member of each epoch it carries, or hold it by an earlier hand-off
 * (`held`, from `Holders.follow` over the conversation's earlier hand-offs: §7.6 "Chains").
 */
export async function openHandoff(h: Handoff, me: IdentityKeys, records: ReadonlyMap<number, EpochRecord>, held?: Holders): Promise<Map<number, Uint8Array>> {
  verifySignature(h.from, handoffSignedBytes(h), h.signature, "hand-off");
  if (!equal(h.to, me.signingPublic)) throw new EpochError("not_a_member", "hand-off not for me");
  const out = new Map<number, Uint8Array>();
  for (const [e, s] of h.epochs) {
    const r = records.get(e);
    if (r === undefined || !equal(r.conversation, h.conversation)) throw new EpochError("wrong_conversation", `epoch ${e}`);
    if (!r.members.some((m) => equal(m.signingKey, h.from)) && held?.holds(e, h.from) !== true) throw new EpochError("not_a_member", "hand-off sender");
    const k = await open(me, s, { purpose: SEAL_HANDOFF, conversation: h.conversation, epoch: e, recipient: me.signingPublic, extra: new Uint8Array(0) });
    if (k.length !== 32 || !equal(epochCommitment(h.conversation, e, k), r.commitment)) throw new EpochError("commitment_mismatch", `epoch ${e}`);
    out.set(e, k);
  }
  return out;
}
