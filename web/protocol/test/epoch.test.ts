/** `epoch.json`: key schedule, escrow recomputed byte for byte, records, the chain, the hand-off. */
import { describe, expect, it } from "vitest";
import { toHex } from "../src/bytes.js";
import { Writer } from "../src/codec.js";
import { checkFollows, computeEscrow, epochRecordHash, epochSignedBytes, EpochError, handoffSignedBytes, openEpoch, openHandoff, verifyEpoch } from "../src/epoch.js";
import type { EpochRecord, Handoff } from "../src/epoch.js";
import { EPOCH_SALT } from "../src/labels.js";
import { sealInfo } from "../src/seal.js";
import type { Sealed } from "../src/seal.js";
import { EpochSecret, epochCommitment } from "../src/secret.js";
import { combine, decodeShare, encodeShare, split } from "../src/shamir.js";
import { recordOf, sealedOf } from "./epoch.fixtures.js";
import { flip, keysOf, signingKeyOf, vectorPolicy } from "./fixtures.js";
import type { Json } from "./vectors.js";
import { h, loadVector } from "./vectors.js";

const v = loadVector("epoch.json");
const policy = vectorPolicy();

describe("epoch.json", () => {
  const records = (v.epochs as Json[]).map(recordOf);
  for (const [i, e] of (v.epochs as Json[]).entries()) {
    const r = records[i] as EpochRecord;
    it(`epoch ${e.epoch}: key schedule`, () => {
      const ks = e.key_schedule;
      expect(toHex(Writer.withLabel(EPOCH_SALT).fixed(r.conversation).u32(r.epoch).toBytes())).toBe(ks.salt);
      const sched = new EpochSecret(h(e.k), r.conversation, r.epoch);
      expect(toHex(sched.masterShare())).toBe(ks.s_m);
      (ks.coefficients as string[]).forEach((c, j) => expect(toHex(sched.coefficient(j + 1))).toBe(c));
      for (const [name, ikm] of Object.entries(ks.ikm as Record<string, string>)) expect(toHex(sched.escrowIkm(signingKeyOf(name)))).toBe(ikm);
      const sE = h(e.k).map((b, j) => b ^ (h(ks.s_m)[j] ?? 0));
      expect(toHex(sE)).toBe(ks.s_e);
      const shares = split(sE, policy.trusteeThreshold, policy.trustees.length, (ks.coefficients as string[]).map(h));
      (ks.shares as string[]).forEach((s, j) => expect(toHex(encodeShare(shares[j] as never))).toBe(s));
      expect(toHex(combine((ks.shares as string[]).slice(-policy.trusteeThreshold).map((s) => decodeShare(h(s))), policy.trusteeThreshold))).toBe(ks.s_e);
      expect(toHex(epochCommitment(r.conversation, r.epoch, h(e.k)))).toBe(e.commitment);
    });
    it(`epoch ${e.epoch}: escrow recomputed byte for byte, infos, signed bytes, hash, signature`, async () => {
      const escrow = await computeEscrow(h(e.k), r.conversation, r.epoch, signingKeyOf(e.members[0]), policy);
      expect(toHex(escrow.master.enc)).toBe(e.escrow.master.sealed.enc);
      expect(toHex(escrow.master.ciphertext)).toBe(e.escrow.master.sealed.ciphertext);
      escrow.trustees.forEach((t, j) => {
        expect(toHex(t.enc)).toBe(e.escrow.trustees[j].sealed.enc);
        expect(toHex(t.ciphertext)).toBe(e.escrow.trustees[j].sealed.ciphertext);
        expect(toHex(sealInfo({ purpose: "trustee-share", conversation: r.conversation, epoch: r.epoch, recipient: signingKeyOf(e.escrow.trustees[j].trustee), extra: signingKeyOf(e.members[0]) }))).toBe(e.escrow.trustees[j].info);
      });
      expect(toHex(sealInfo({ purpose: "master-share", conversation: r.conversation, epoch: r.epoch, recipient: policy.master.signingKey, extra: signingKeyOf(e.members[0]) }))).toBe(e.escrow.master.info);
      (e.sealed_secrets as Json[]).forEach((s) =>
        expect(toHex(sealInfo({ purpose: "epoch-secret", conversation: r.conversation, epoch: r.epoch, recipient: signingKeyOf(s.member), extra: new Uint8Array(0) }))).toBe(s.info),
      );
      expect(toHex(epochSignedBytes(r))).toBe(e.signed_bytes);
      expect(toHex(keysOf(e.creator).sign(epochSignedBytes(r)))).toBe(e.signature);
      expect(toHex(epochRecordHash(r))).toBe(e.hash);
      expect(verifyEpoch(r, policy)).toBe(r);
    });
    it(`epoch ${e.epoch}: every member opens K (level 3); a forged escrow is refused`, async () => {
      for (const m of e.members as string[]) expect(toHex(await openEpoch(r, keysOf(m), policy))).toBe(e.k);
      // The creator re-signs a record whose trustee blob is altered: level 1 passes, level 3 refuses.
      const bad: EpochRecord = { ...r, escrow: { ...r.escrow, trustees: r.escrow.trustees.map((t, j) => (j === 0 ? { ...t, ciphertext: flip(t.ciphertext) } : t)) } };
      bad.signature = keysOf(e.creator).sign(epochSignedBytes(bad));
      expect(verifyEpoch(bad, policy)).toBe(bad);
      await expect(openEpoch(bad, keysOf(e.members[0]), policy)).rejects.toMatchObject({ failure: "escrow_mismatch" });
      expect(() => verifyEpoch({ ...r, createdAt: r.createdAt + 1 }, policy)).toThrowError(/bad_signature/);
      await expect(openEpoch(r, keysOf("trustee-1"), policy)).rejects.toBeInstanceOf(EpochError);
    });
  }
  it("the chain: epoch 0 starts it and epoch 1 follows it", () => {
    const [r0, r1] = records as [EpochRecord, EpochRecord];
    checkFollows(r0, null);
    checkFollows(r1, r0);
    expect(() => checkFollows(r0, r1)).toThrowError(EpochError);
    expect(() => checkFollows({ ...r1, previous: flip(r1.previous ?? new Uint8Array(32)) }, r0)).toThrowError(/previous hash/);
  });
  it("hand-off: signed bytes, signature, opened by its recipient", async () => {
    const x = v.handoff;
    const ho: Handoff = {
      conversation: records[0]?.conversation ?? new Uint8Array(16),
      from: signingKeyOf(x.from),
      to: signingKeyOf(x.to),
      epochs: (x.epochs as Json[]).map((e) => [e.epoch, sealedOf(e.sealed)]),
      createdAt: x.created_at,
      signature: h(x.signature),
    };
    expect(toHex(handoffSignedBytes(ho))).toBe(x.signed_bytes);
    expect(toHex(keysOf(x.from).sign(handoffSignedBytes(ho)))).toBe(x.signature);
    for (const e of x.epochs as Json[]) expect(toHex(sealInfo({ purpose: "handoff", conversation: ho.conversation, epoch: e.epoch, recipient: ho.to, extra: new Uint8Array(0) }))).toBe(e.info);
    const byEpoch = new Map(records.map((r) => [r.epoch, r]));
    const ks = await openHandoff(ho, keysOf(x.to), byEpoch);
    for (const e of x.epochs as Json[]) expect(toHex(ks.get(e.epoch) ?? new Uint8Array(0))).toBe(v.epochs[e.epoch].k);
    await expect(openHandoff({ ...ho, createdAt: ho.createdAt + 1 }, keysOf(x.to), byEpoch)).rejects.toThrowError(/bad_signature/);
    await expect(openHandoff(ho, keysOf("carol"), byEpoch)).rejects.toBeInstanceOf(EpochError);
  });
});
