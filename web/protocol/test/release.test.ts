/** `release.json`: release requests by consent and by dispute, released shares, reconstruction of K. */
import { describe, expect, it } from "vitest";
import { toHex } from "../src/bytes.js";
import { open, sealInfo } from "../src/seal.js";
import { releasedShareSignedBytes, ReleaseError, requestHash, requestSignedBytes, verifyReleasedShare } from "../src/release.js";
import type { ReleaseRequest, ReleasedShare } from "../src/release.js";
import { EpochSecret, epochCommitment } from "../src/secret.js";
import { combine, decodeShare } from "../src/shamir.js";
import { consentOf, decisionsOf, flip, keysOf, signingKeyOf, ticketOf, vectorPolicy } from "./fixtures.js";
import type { Json } from "./vectors.js";
import { h, loadVector } from "./vectors.js";

const v = loadVector("release.json");
const consentV = loadVector("consent.json");
const disputeV = loadVector("dispute.json");
const policy = vectorPolicy();

function requestOf(r: Json): ReleaseRequest {
  const ticket = ticketOf(disputeV.ticket);
  return {
    id: h(r.id),
    org: r.org,
    policyVersion: r.policy_version,
    conversation: h(r.conversation),
    epochs: r.epochs,
    justification: r.justification === "consent" ? { consent: consentOf(consentV.consent) } : { dispute: { ticket, decisions: decisionsOf(disputeV.decisions, ticket) } },
    requestedAt: r.requested_at,
    master: policy.master.signingKey,
    signature: h(r.signature),
  };
}

describe("release.json", () => {
  for (const which of ["request_by_consent", "request_by_dispute"] as const) {
    it(`${which}: signed bytes, signature, hash`, () => {
      const r = requestOf(v[which]);
      expect(toHex(requestSignedBytes(r))).toBe(v[which].signed_bytes);
      expect(toHex(keysOf("acme-master").sign(requestSignedBytes(r)))).toBe(v[which].signature);
      expect(toHex(requestHash(r))).toBe(v[which].hash);
    });
  }
  it("released shares: signed bytes, signatures, opened by the master, K reconstructed", async () => {
    const master = keysOf("acme-master");
    const conversation = h(v.request_by_consent.conversation);
    const shares = [];
    for (const s of v.released_shares as Json[]) {
      const rs: ReleasedShare = { requestHash: h(s.request_hash), conversation, epoch: s.epoch, trustee: signingKeyOf(s.trustee), sealed: { enc: h(s.sealed.enc), ciphertext: h(s.sealed.ciphertext) }, signature: h(s.signature) };
      expect(toHex(releasedShareSignedBytes(rs))).toBe(s.signed_bytes);
      expect(toHex(keysOf(s.trustee).sign(releasedShareSignedBytes(rs)))).toBe(s.signature);
      expect(verifyReleasedShare(rs, policy)).toBe(rs);
      expect(() => verifyReleasedShare({ ...rs, signature: flip(rs.signature) }, policy)).toThrowError(/bad_signature/);
      expect(() => verifyReleasedShare({ ...rs, trustee: signingKeyOf("bob") }, policy)).toThrowError(ReleaseError);
      const ctx = { purpose: "released-share" as const, conversation, epoch: s.epoch, recipient: master.signingPublic, extra: h(s.request_hash) };
      expect(toHex(sealInfo(ctx))).toBe(s.info);
      const plain = await open(master, rs.sealed, ctx);
      expect(toHex(plain)).toBe(s.share);
      await expect(open(master, rs.sealed, { ...ctx, extra: h(v.request_by_dispute.hash) })).rejects.toMatchObject({ code: "open" });
      shares.push(decodeShare(plain));
    }
    const sM = new EpochSecret(h(v.k), conversation, 0).masterShare();
    expect(toHex(sM)).toBe(v.s_m);
    const sE = combine(shares, policy.trusteeThreshold);
    const k = sE.map((b, i) => b ^ (sM[i] ?? 0));
    expect(toHex(k)).toBe(v.k);
    expect(epochCommitment(conversation, 0, k)).toEqual(epochCommitment(conversation, 0, h(v.k)));
  });
});
