/** `audit.json`: entries of every kind rebuilt from the other vectors, roots, proofs, heads, cosignatures. */
import { describe, expect, it } from "vitest";
import { toHex } from "../src/bytes.js";
import { fromCbor } from "../src/wire.js";
import { cosignatureSignedBytes, entryLeaf, entryLeafHash, entrySignedBytes, eventKindOf, extensionEvent, treeHeadSignedBytes, verifyCosignature, verifyEntry, verifyTreeHead } from "../src/audit.js";
import type { AuditEntry, AuditEvent } from "../src/audit.js";
import { CompactRange, consistencyPath, inclusionPath, root, verifyConsistency, verifyInclusion } from "../src/merkle.js";
import { policyHash } from "../src/policy.js";
import { flip, keysOf, signingKeyOf, vectorPolicy } from "./fixtures.js";
import type { Json } from "./vectors.js";
import { h, loadVector } from "./vectors.js";

const v = loadVector("audit.json");
const release = loadVector("release.json");
const consent = loadVector("consent.json").consent;
const dispute = loadVector("dispute.json");
const policy = vectorPolicy();
const conversation = h(consent.conversation);

/** The event of entry `e`, rebuilt from policy.json, consent.json, dispute.json and release.json. */
function eventOf(e: Json): AuditEvent {
  const master = policy.master.signingKey;
  switch (e.event as string) {
    case "policy_change":
      return { policy_change: { org: policy.org, version: policy.version, policyHash: policyHash(policy) } };
    case "release (consent)": {
      const r = release.request_by_consent;
      return { release: { org: r.org, requestHash: h(r.hash), conversation, epochs: r.epochs, basis: { consent: { id: h(consent.id), scope: consent.scope, issuedAt: consent.issued_at } }, master } };
    }
    case "release (dispute)": {
      const r = release.request_by_dispute;
      const approvers = (dispute.approvers as string[]).map(signingKeyOf);
      return { release: { org: r.org, requestHash: h(r.hash), conversation, epochs: r.epochs, basis: { dispute: { id: h(dispute.ticket.id), approvers } }, master } };
    }
    case "consent_revocation":
      return { consent_revocation: { conversation, consent: h(consent.id) } };
    case "erasure":
      return e.index === 5 ? { erasure: { conversation, reason: "customer request" } } : { erasure: { conversation: new Uint8Array(16).fill(0x11), reason: "retention" } };
    default:
      throw new Error(`unknown event ${e.event}`);
  }
}

describe("audit.json", () => {
  const entries: AuditEntry[] = (v.entries as Json[]).map((e) => ({ event: eventOf(e), at: e.at, signer: signingKeyOf(e.signer), signature: h(e.signature) }));
  const leaves = entries.map(entryLeafHash);
  (v.entries as Json[]).forEach((e, i) => {
    it(`entry ${e.index} (${e.event}): signed bytes, signature, leaf, leaf hash`, () => {
      const entry = entries[i] as AuditEntry;
      expect(toHex(entrySignedBytes(entry))).toBe(e.signed_bytes);
      expect(e.event.startsWith(eventKindOf(h(e.signed_bytes)))).toBe(true);
      expect(toHex(keysOf(e.signer).sign(entrySignedBytes(entry)))).toBe(e.signature);
      expect(toHex(entryLeaf(entry))).toBe(e.leaf);
      expect(toHex(entryLeafHash(entry))).toBe(e.leaf_hash);
      expect(verifyEntry(entry)).toBe(entry);
      expect(() => verifyEntry({ ...entry, at: entry.at + 1 })).toThrowError(/bad_signature/);
    });
  });
  it("roots of every prefix", () => {
    (v.roots as string[]).forEach((r, n) => expect(toHex(root(leaves.slice(0, n)))).toBe(r));
  });
  it("roots of every prefix from a compact range, grown one leaf at a time", () => {
    let range = CompactRange.empty();
    (v.roots as string[]).forEach((r, n) => {
      expect(toHex(range.root())).toBe(r);
      const leaf = leaves[n];
      if (leaf !== undefined) range = range.extend([leaf]);
    });
  });
  it("inclusion proofs: built identically, verified, and refused when tampered", () => {
    for (const p of v.inclusion as Json[]) {
      const d = leaves.slice(0, p.size);
      expect(inclusionPath(p.index, d).map(toHex)).toEqual(p.path);
      const r = root(d);
      const path = (p.path as string[]).map(h);
      const leaf = leaves[p.index] as Uint8Array;
      expect(verifyInclusion(leaf, p.index, p.size, path, r)).toBe(true);
      expect(verifyInclusion(flip(leaf), p.index, p.size, path, r)).toBe(false);
      expect(verifyInclusion(leaf, p.index, p.size, path.slice(0, -1), r)).toBe(path.length === 0);
      if (path.length > 0) expect(verifyInclusion(leaf, p.index, p.size, [...path.slice(1), path[0] as Uint8Array], r)).toBe(path.length === 1);
    }
  });
  it("consistency proofs: built identically, verified, and refused when tampered", () => {
    for (const p of v.consistency as Json[]) {
      expect(consistencyPath(p.old, leaves.slice(0, p.new)).map(toHex)).toEqual(p.path);
      const oldRoot = root(leaves.slice(0, p.old));
      const newRoot = root(leaves.slice(0, p.new));
      const path = (p.path as string[]).map(h);
      expect(verifyConsistency(p.old, p.new, oldRoot, newRoot, path)).toBe(true);
      // An empty old tree is a prefix of every tree, so only a non-empty one can be refused here.
      expect(verifyConsistency(p.old, p.new, oldRoot, flip(newRoot), path)).toBe(p.old === 0);
      if (path.length > 0) expect(verifyConsistency(p.old, p.new, oldRoot, newRoot, [flip(path[0] as Uint8Array), ...path.slice(1)])).toBe(false);
    }
    expect(verifyConsistency(5, 3, root(leaves.slice(0, 5)), root(leaves.slice(0, 3)), [])).toBe(false);
  });
  it("signed tree heads", () => {
    const relay = keysOf("relay");
    for (const t of v.tree_heads as Json[]) {
      const head = { size: t.size, root: h(t.root), timestamp: t.timestamp, logKey: h(t.log_key), signature: h(t.signature) };
      expect(toHex(head.root)).toBe(toHex(root(leaves.slice(0, t.size))));
      expect(toHex(treeHeadSignedBytes(head))).toBe(t.signed_bytes);
      expect(toHex(relay.sign(treeHeadSignedBytes(head)))).toBe(t.signature);
      expect(verifyTreeHead(head, relay.signingPublic)).toBe(head);
      expect(() => verifyTreeHead(head, keysOf("acme-master").signingPublic)).toThrowError(/bad_signature/);
    }
  });
  it("witness cosignatures", () => {
    for (const c of v.cosignatures as Json[]) {
      const cs = { witness: signingKeyOf(c.witness), logKey: h(c.log_key), size: c.size, root: h(c.root), timestamp: c.timestamp, signature: h(c.signature) };
      expect(toHex(cosignatureSignedBytes(cs))).toBe(c.signed_bytes);
      expect(toHex(keysOf(c.witness).sign(cosignatureSignedBytes(cs)))).toBe(c.signature);
      expect(verifyCosignature(cs)).toBe(cs);
      expect(() => verifyCosignature({ ...cs, size: cs.size + 1 })).toThrowError(/bad_signature/);
    }
  });
});

describe("audit.json: an entry of a kind a later version adds (§12.1)", () => {
  const x = v.unreadable as Json;
  it("has its signed bytes, leaf and signature from its code and body as served", () => {
    const cbor = fromCbor(h(x.cbor)) as { event: { extension: { code: number; body: Uint8Array } }; at: number; signer: Uint8Array; signature: Uint8Array };
    expect(cbor.event.extension.code).toBe(x.code);
    const entry: AuditEntry = { event: extensionEvent(cbor.event.extension.code, cbor.event.extension.body), at: cbor.at, signer: cbor.signer, signature: cbor.signature };
    expect(toHex(entrySignedBytes(entry))).toBe(x.signed_bytes);
    expect(toHex(entryLeaf(entry))).toBe(x.leaf);
    expect(toHex(entryLeafHash(entry))).toBe(x.leaf_hash);
    expect(toHex(entry.signer)).toBe(toHex(signingKeyOf(x.signer)));
    verifyEntry(entry);
  });
  it("refuses a kind this version reads, or code 0, in that form", () => {
    for (const r of (v.refused as Json[]).slice(0, 2)) {
      const cbor = fromCbor(h(r.cbor)) as { event: { extension: { code: number; body: Uint8Array } } };
      expect(() => extensionEvent(cbor.event.extension.code, cbor.event.extension.body)).toThrow(/cannot read/);
    }
  });
});
