/** `export.json`: the master's end marker over a transcript export, rebuilt from the other vectors. */
import { describe, expect, it } from "vitest";
import { toHex } from "../src/bytes.js";
import { epochRecordHash } from "../src/epoch.js";
import { encodeHeader, messageSignedBytes, sealMessage } from "../src/message.js";
import { EpochSecret } from "../src/secret.js";
import { OMITTED_KINDS, transcriptEndSignedBytes, transcriptHandoffHash, verifyTranscriptEnd } from "../src/transcript.js";
import type { OmittedKind, TranscriptEnd } from "../src/transcript.js";
import { recordOf } from "./epoch.fixtures.js";
import { flip, keysOf } from "./fixtures.js";
import type { Json } from "./vectors.js";
import { h, loadVector } from "./vectors.js";

const v = loadVector("export.json");
const msgs = loadVector("messages.json");
const epochV = loadVector("epoch.json");
const kindName = (code: number): OmittedKind => {
  const k = (Object.keys(OMITTED_KINDS) as OmittedKind[]).find((n) => OMITTED_KINDS[n] === code);
  if (k === undefined) throw new Error(`kind ${code}`);
  return k;
};

describe("export.json", () => {
  const schedule = new EpochSecret(h(msgs.k), h(msgs.conversation), msgs.epoch);
  const end: TranscriptEnd = {
    conversation: h(v.conversation),
    org: v.org,
    redacted: v.redacted,
    policies: (v.policies as string[]).map(h),
    epochs: (v.epochs as Json[]).map((e) => ({ seq: e.seq, recordHash: h(e.record_hash) })),
    messages: (v.messages as Json[]).map((m, i) => {
      const x = msgs.messages[i];
      const env = sealMessage(schedule, h(msgs.conversation), msgs.epoch, keysOf(x.sender), x.counter, x.kind, x.sent_at, h(x.body));
      return { seq: m.seq, envelopeSignedBytes: messageSignedBytes(encodeHeader(env.header), env.ciphertext), signature: env.signature, sender: m.sender, text: m.text };
    }),
    omitted: (v.omitted as Json[]).map((o) => ({ seq: o.seq, kind: kindName(o.kind), epoch: o.epoch, handoffHash: o.record_hash === null ? null : h(o.record_hash) })),
    lastSeq: v.last_seq,
    releases: (v.releases as Json[]).map((r) => ({ index: r.index, leafHash: h(r.leaf_hash), requestHash: h(r.request_hash) })),
    treeSize: v.tree_size,
    treeRoot: h(v.tree_root),
    signedAt: v.signed_at,
    master: h(v.master),
  };
  it("the items come from the other vectors", () => {
    expect(toHex(epochRecordHash(recordOf(epochV.epochs[0])))).toBe(v.epochs[0].record_hash);
    (v.messages as Json[]).forEach((m, i) => {
      expect(toHex(end.messages[i]?.envelopeSignedBytes ?? new Uint8Array(0))).toBe(m.envelope_signed_bytes);
      expect(toHex(end.messages[i]?.signature ?? new Uint8Array(0))).toBe(m.envelope_signature);
    });
    const ho = epochV.handoff;
    expect(toHex(transcriptHandoffHash(h(ho.signed_bytes), h(ho.signature)))).toBe(v.omitted.find((o: Json) => o.record_hash !== null).record_hash);
  });
  it("end marker signed bytes and signature", () => {
    expect(toHex(transcriptEndSignedBytes(end))).toBe(v.signed_bytes);
    expect(toHex(keysOf("acme-master").sign(transcriptEndSignedBytes(end)))).toBe(v.signature);
    verifyTranscriptEnd(end, h(v.signature));
    expect(() => verifyTranscriptEnd({ ...end, lastSeq: end.lastSeq + 1 }, h(v.signature))).toThrowError(/bad_signature/);
    expect(() => verifyTranscriptEnd(end, flip(h(v.signature)))).toThrowError(/bad_signature/);
  });
});
