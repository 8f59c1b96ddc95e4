/**
 * The tree-head checks of a notice (`src/notices-witness.ts`), without a relay: a log of a
 * few entries built here, heads signed by a relay key made here. A notice under a head that does
 * not extend the last one accepted (forked, shrunk, not an extension) fails as `inconsistent`;
 * with the trustees' cosignatures asked for, a notice is verified only once `n − t + 1` fresh
 * trustee cosignatures on heads holding the entry vouch for it ("NOT YET WITNESSED" before), and
 * a cosigned head the served one does not extend is a split view.
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  IdentityKeys,
  consistencyPath,
  cosignatureSignedBytes,
  entryLeafHash,
  entrySignedBytes,
  inclusionPath,
  root,
  treeHeadSignedBytes,
  type AuditEntry,
  type Cosignature,
  type Policy,
  type TreeHead,
} from "@sealdesk/protocol";
import { checkConsistent, checkNotice, witnessQuorum, type SeenHead, type WitnessedHead } from "../src/index.js";

const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n));
const NOW = 2_000_000_000;

const relay = IdentityKeys.generate(random);
const customer = IdentityKeys.generate(random);
const trustees = [1, 2, 3].map(() => IdentityKeys.generate(random));
const conversation = random(16);
// 3 trustees, threshold 2: n − t + 1 = 2 cosignatures needed.
const policy = { trustees: trustees.map((k, i) => ({ name: `t${i + 1}`, signingKey: k.signingPublic })), trusteeThreshold: 2 } as unknown as Policy;

function entry(at: number): AuditEntry {
  const unsigned = { event: { erasure: { conversation, reason: "customer request" as const } }, at, signer: customer.signingPublic };
  return { ...unsigned, signature: customer.sign(entrySignedBytes(unsigned)) };
}
const entries = [1, 2, 3, 4, 5, 6].map(entry);
const leaves = entries.map(entryLeafHash);

function head(size: number, ls: readonly Uint8Array[] = leaves): TreeHead {
  const unsigned = { size, root: root(ls.slice(0, size)), timestamp: NOW, logKey: relay.signingPublic };
  return { ...unsigned, signature: relay.sign(treeHeadSignedBytes(unsigned)) };
}
const proofOver = (ls: readonly Uint8Array[]) => (old: number, size: number): Promise<Uint8Array[]> => Promise.resolve(consistencyPath(old, ls.slice(0, size)));
const proof = proofOver(leaves);
// A fork: entry 1 rewritten.
const forked = [...leaves];
forked[1] = entryLeafHash(entry(99));

function cosign(k: IdentityKeys, h: TreeHead, timestamp = NOW): Cosignature {
  const unsigned = { witness: k.signingPublic, logKey: relay.signingPublic, size: h.size, root: h.root, timestamp };
  return { ...unsigned, signature: k.sign(cosignatureSignedBytes(unsigned)) };
}

function ctx(served: TreeHead, ls: readonly Uint8Array[], last: SeenHead | null, witnessed?: WitnessedHead) {
  let kept = last;
  return {
    org: "acme",
    conversation,
    me: customer.signingPublic,
    relayKey: relay.signingPublic,
    policy,
    seen: new Set<string>(),
    treeHead: () => Promise.resolve(served),
    inclusion: (i: number, size: number) => Promise.resolve(inclusionPath(i, ls.slice(0, size))),
    lastHead: { get: () => Promise.resolve(kept), put: (h: SeenHead) => Promise.resolve(void (kept = h)) },
    consistency: proofOver(ls),
    now: () => NOW,
    ...(witnessed === undefined ? {} : { witnessedHead: () => Promise.resolve(witnessed) }),
    kept: () => kept,
  };
}

describe("a notice's tree head", () => {
  it("must extend the last head accepted", async () => {
    expect(await checkConsistent(null, head(4), proof)).toBe(null);
    expect(await checkConsistent(head(4), head(6), proof)).toBe(null);
    expect(await checkConsistent(head(4), head(4), proof)).toBe(null);
    expect(await checkConsistent(head(6), head(4), proof)).toBe("shrank");
    expect(await checkConsistent(head(4), head(4, forked), proof)).toBe("forked");
    expect(await checkConsistent(head(4), head(6, forked), proofOver(forked))).toBe("not_an_extension");
  });

  it("a notice under a log that does not extend the one seen is not genuine; an honest one is and moves the pin", async () => {
    const honest = ctx(head(6), leaves, head(4));
    const ok = await checkNotice(1, 2, entries[2] as AuditEntry, honest);
    expect(ok.failure).toBe(null);
    expect(ok.verified).toBe(true);
    expect(honest.kept()?.size).toBe(6);
    const fork = ctx(head(6, forked), forked, head(4));
    const bad = await checkNotice(1, 2, entries[2] as AuditEntry, fork);
    expect(bad.failure).toBe("inconsistent");
    expect(bad.verified).toBe(false);
    expect(bad.text).toContain("NOT GENUINE");
    expect(fork.kept()?.size).toBe(4);
  });

  it("needs n − t + 1 fresh trustee cosignatures on heads holding the entry", async () => {
    const served = head(6);
    const [t1, t2, t3] = trustees as [IdentityKeys, IdentityKeys, IdentityKeys];
    const q = (cosignatures: Cosignature[], index = 2) => witnessQuorum({ head: served, cosignatures }, policy, relay.signingPublic, index, NOW, proof);
    expect(await q([cosign(t1, head(5)), cosign(t2, head(6))])).toEqual({ have: 2, need: 2, splitView: false });
    expect((await q([cosign(t1, head(5))])).have).toBe(1);
    // A head too small to hold the entry, a stale one, one by a non-trustee, a repeat: none count.
    expect((await q([cosign(t1, head(6)), cosign(t2, head(2))])).have).toBe(1);
    expect((await q([cosign(t1, head(6)), cosign(t2, head(6), NOW - 16 * 60)])).have).toBe(1);
    expect((await q([cosign(t1, head(6)), cosign(relay, head(6)), cosign(t1, head(5))])).have).toBe(1);
    // A cosigned head the served one does not extend: a split view.
    expect((await q([cosign(t3, head(4, forked)), cosign(t1, head(6))])).splitView).toBe(true);
  });

  it("is shown NOT YET CONFIRMED (the customer's words) until the quorum holds it, and NOT GENUINE on a split view", async () => {
    const [t1, t2] = trustees as [IdentityKeys, IdentityKeys];
    const one = await checkNotice(1, 2, entries[2] as AuditEntry, ctx(head(6), leaves, null, { head: head(6), cosignatures: [cosign(t1, head(6))] }));
    expect(one.failure).toBe(null);
    expect(one.verified).toBe(false);
    expect(one.unwitnessed).toContain("1 of the 2");
    // The customer reads what it means for her, as the CLI says it; not the check's own words.
    expect(one.text).toContain("(NOT YET CONFIRMED by the business's independent trustees; checked again by itself, and if it stays unconfirmed, the relay may be hiding something)");
    expect(one.text).not.toContain("WITNESSED");
    const two = await checkNotice(1, 2, entries[2] as AuditEntry, ctx(head(6), leaves, null, { head: head(6), cosignatures: [cosign(t1, head(6)), cosign(t2, head(3))] }));
    expect(two.verified).toBe(true);
    const split = await checkNotice(1, 2, entries[2] as AuditEntry, ctx(head(6), leaves, null, { head: head(6), cosignatures: [cosign(t1, head(6)), cosign(t2, head(4, forked))] }));
    expect(split.failure).toBe("split_view");
    expect(split.verified).toBe(false);
  });

  it("is NOT GENUINE when the head the trustees vouch for does not hold the entry", async () => {
    const [t1, t2] = trustees as [IdentityKeys, IdentityKeys];
    // Proven in the served head; the witnessed head is a fork without entry 1, cosigned by both.
    const fork = head(6, forked);
    const split = await checkNotice(1, 1, entries[1] as AuditEntry, ctx(head(6), leaves, null, { head: fork, cosignatures: [cosign(t1, fork), cosign(t2, fork)] }));
    expect(split.failure).toBe("split_view");
    expect(split.verified).toBe(false);
    expect(split.text).toContain("NOT GENUINE");
  });
});
