/**
 * What a notice's tree head must also be, as the Rust client checks it
 * (`client/src/escrow/log.rs`, `witness.rs`; PROTOCOL §12.4, SECURITY.md "Witnesses"):
 *
 * - **consistent** with the last head this customer accepted: never smaller, the same root at the
 *   same size, and a larger one proven an append-only extension (RFC 9162 consistency proof) —
 *   else the relay rewrote, truncated or forked the log ([`checkConsistent`]);
 * - **witnessed**: fresh cosignatures of `n − t + 1` distinct trustees of the org's policy, each
 *   on a head that holds the entry (cosigned size above its index), for the pinned log key, and
 *   each on a head the served one extends ([`witnessQuorum`]). Until then a notice is "not yet
 *   witnessed", never shown as genuine.
 */
import {
  ProtocolError,
  equal,
  verifyConsistency,
  verifyCosignature,
  type CborValue,
  type Cosignature,
  type Policy,
  type TreeHead,
} from "@sealdesk/protocol";

/** How old a cosignature may be (PROTOCOL §12.4: `WITNESS_FRESHNESS_SECS`). */
export const WITNESS_FRESHNESS_SECS = 15 * 60;
/** How far ahead of the reader's clock a cosignature may be (`WITNESS_MAX_SKEW_SECS`). */
export const WITNESS_MAX_SKEW_SECS = 5 * 60;

/** The size and root of the last head a customer accepted. */
export interface SeenHead {
  size: number;
  root: Uint8Array;
}

/** Why a head is not consistent with the last one seen; null when it is. */
export type Inconsistency = "shrank" | "forked" | "not_an_extension" | null;

/**
 * Whether `head` extends `last` (null: nothing seen yet). `proof(old, new)` fetches the
 * consistency path; it is asked only for a larger head.
 */
export async function checkConsistent(last: SeenHead | null, head: SeenHead, proof: (oldSize: number, newSize: number) => Promise<Uint8Array[]>): Promise<Inconsistency> {
  if (last === null || last.size === 0) return null;
  if (head.size < last.size) return "shrank";
  if (head.size === last.size) return equal(head.root, last.root) ? null : "forked";
  const path = await proof(last.size, head.size);
  return verifyConsistency(last.size, head.size, last.root, head.root, path) ? null : "not_an_extension";
}

/** A head with the trustees' cosignatures, as `get_witnessed_head` answers. */
export interface WitnessedHead {
  head: TreeHead;
  cosignatures: Cosignature[];
}

/** How many of the org's trustees vouch for the entry at `index`, and how many must. */
export interface Quorum {
  have: number;
  need: number;
  /** A cosigned head the served head does not extend: the relay shows different logs. */
  splitView: boolean;
}

/** `n − t + 1`: every release quorum of `t` shares a trustee with every set of cosigners. */
export function witnessesNeeded(policy: Policy): number {
  return Math.max(policy.trustees.length - policy.trusteeThreshold, 0) + 1;
}

/**
 * Counts the cosignatures of `w` that vouch for the entry at `index` of the served head
 * `w.head` (already checked against the pinned `logKey` by the caller): by distinct trustees of
 * `policy`, valid, for `logKey`, fresh at `now`, on a head larger than `index`, and on a head
 * the served one extends (`proof` fetches the consistency path from the cosigned size).
 */
export async function witnessQuorum(w: WitnessedHead, policy: Policy, logKey: Uint8Array, index: number, now: number, proof: (oldSize: number, newSize: number) => Promise<Uint8Array[]>): Promise<Quorum> {
  const counted = new Set<string>();
  let splitView = false;
  for (const c of w.cosignatures) {
    const trustee = policy.trustees.find((t) => equal(t.signingKey, c.witness));
    if (trustee === undefined || !equal(c.logKey, logKey)) continue;
    try {
      verifyCosignature(c);
    } catch {
      continue;
    }
    if (c.timestamp > now + WITNESS_MAX_SKEW_SECS || now - c.timestamp > WITNESS_FRESHNESS_SECS) continue;
    if (c.size <= index || c.size > w.head.size) continue;
    if ((await checkConsistent({ size: c.size, root: c.root }, w.head, proof)) !== null) {
      splitView = true;
      continue;
    }
    counted.add(trustee.name);
  }
  return { have: counted.size, need: witnessesNeeded(policy), splitView };
}

/** A cosignature from its CBOR map (`{ witness, log_key, size, root, timestamp, signature }`). */
export function cosignatureFromCbor(v: CborValue): Cosignature {
  if (v === null || typeof v !== "object" || v instanceof Uint8Array || Array.isArray(v)) throw new ProtocolError("malformed", "cosignature: expected a map");
  const b = (k: string, len: number): Uint8Array => {
    const x = v[k];
    if (!(x instanceof Uint8Array) || x.length !== len) throw new ProtocolError("malformed", `cosignature ${k}`);
    return x;
  };
  const n = (k: string): number => {
    const x = v[k];
    if (typeof x === "bigint" && x >= 0n && x <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(x);
    if (typeof x !== "number" || !Number.isSafeInteger(x) || x < 0) throw new ProtocolError("malformed", `cosignature ${k}`);
    return x;
  };
  return { witness: b("witness", 32), logKey: b("log_key", 32), size: n("size"), root: b("root", 32), timestamp: n("timestamp"), signature: b("signature", 64) };
}
