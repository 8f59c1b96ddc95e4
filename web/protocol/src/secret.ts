/**
 * The epoch key schedule (PROTOCOL §6): everything derived from an epoch's secret `K` with
 * HKDF-SHA256, and the commitment to `K`. Mirrors `protocol/src/secret.rs`.
 */
import { expand, extract } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { fixedLength } from "./bytes.js";
import { Writer } from "./codec.js";
import { EPOCH_COMMITMENT, EPOCH_SALT, ESCROW_COEFFICIENT, ESCROW_IKM, ESCROW_MASTER_SHARE, MESSAGE_CHAIN, MESSAGE_KEYS } from "./labels.js";

/** The derivations of one epoch: `PRK = HKDF-Extract(salt, K)`. */
export class EpochSecret {
  private readonly prk: Uint8Array;

  /** The schedule of `k` for (`conversation`, `epoch`). */
  constructor(k: Uint8Array, conversation: Uint8Array, epoch: number) {
    const salt = Writer.withLabel(EPOCH_SALT).fixed(fixedLength(conversation, 16, "conversation id")).u32(epoch).toBytes();
    this.prk = extract(sha256, fixedLength(k, 32, "epoch secret"), salt);
  }

  /** The master's escrow share `s_M`. */
  masterShare(): Uint8Array {
    return expand(sha256, this.prk, Writer.withLabel(ESCROW_MASTER_SHARE).toBytes(), 32);
  }

  /** Shamir coefficient `c_i` (`i` from 1). */
  coefficient(i: number): Uint8Array {
    return expand(sha256, this.prk, Writer.withLabel(ESCROW_COEFFICIENT).u8(i).toBytes(), 32);
  }

  /** The `DeriveKeyPair` input of the deterministic seal to escrow recipient `signingKey`. */
  escrowIkm(signingKey: Uint8Array): Uint8Array {
    return expand(sha256, this.prk, Writer.withLabel(ESCROW_IKM).fixed(fixedLength(signingKey, 32, "signing key")).toBytes(), 32);
  }

  /** Sender `signingKey`'s chain key. */
  chainKey(signingKey: Uint8Array): Uint8Array {
    return expand(sha256, this.prk, Writer.withLabel(MESSAGE_CHAIN).fixed(fixedLength(signingKey, 32, "signing key")).toBytes(), 32);
  }

  /** Overwrites the PRK. */
  wipe(): void {
    this.prk.fill(0);
  }
}

/** One message's AES-256-GCM key and nonce, from a chain key and counter. */
export function messageKeys(chainKey: Uint8Array, counter: number | bigint): { key: Uint8Array; nonce: Uint8Array } {
  const okm = expand(sha256, fixedLength(chainKey, 32, "chain key"), Writer.withLabel(MESSAGE_KEYS).u64(counter).toBytes(), 44);
  return { key: okm.slice(0, 32), nonce: okm.slice(32, 44) };
}

/** `SHA-256(str(EPOCH_COMMITMENT) ‖ conversation[16] ‖ u32(epoch) ‖ K[32])`. */
export function epochCommitment(conversation: Uint8Array, epoch: number, k: Uint8Array): Uint8Array {
  return Writer.withLabel(EPOCH_COMMITMENT).fixed(fixedLength(conversation, 16, "conversation id")).u32(epoch).fixed(fixedLength(k, 32, "epoch secret")).sha256();
}
