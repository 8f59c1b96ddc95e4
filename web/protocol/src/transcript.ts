/**
 * The master's end marker over a transcript export (PROTOCOL §12.5): its signed bytes, the
 * hand-off hash it names, and its signature check. Mirrors `protocol/src/export.rs`; the verifier's
 * checks over a whole export file are the client's, not this module's.
 */
import { objectHash, Writer } from "./codec.js";
import { verifySignature } from "./keys.js";
import { TRANSCRIPT_END, TRANSCRIPT_HANDOFF } from "./labels.js";

/** Kinds of omitted items and their codes. */
export const OMITTED_KINDS = { message: 1, handoff: 2, consent: 3, notice: 4 } as const;
/** An omitted item's kind. */
export type OmittedKind = keyof typeof OMITTED_KINDS;

/** What the end marker covers. */
export interface TranscriptEnd {
  conversation: Uint8Array;
  org: string;
  redacted: boolean;
  /** Policy hashes, file order. */
  policies: Uint8Array[];
  epochs: { seq: number; recordHash: Uint8Array }[];
  messages: { seq: number; envelopeSignedBytes: Uint8Array; signature: Uint8Array; sender: string; text: string }[];
  omitted: { seq: number; kind: OmittedKind; epoch: number | null; handoffHash: Uint8Array | null }[];
  lastSeq: number;
  releases: { index: number; leafHash: Uint8Array; requestHash: Uint8Array }[];
  treeSize: number;
  treeRoot: Uint8Array;
  signedAt: number;
  master: Uint8Array;
}

/** The bytes the master signs. */
export function transcriptEndSignedBytes(t: TranscriptEnd): Uint8Array {
  const w = Writer.withLabel(TRANSCRIPT_END).fixed(t.conversation).str(t.org).u8(t.redacted ? 1 : 0).count(t.policies.length);
  for (const p of t.policies) w.fixed(p);
  w.count(t.epochs.length);
  for (const e of t.epochs) w.u64(e.seq).fixed(e.recordHash);
  w.count(t.messages.length);
  for (const m of t.messages) w.u64(m.seq).bytes(m.envelopeSignedBytes).fixed(m.signature).str(m.sender).str(m.text);
  w.count(t.omitted.length);
  for (const o of t.omitted) {
    w.u64(o.seq).u8(OMITTED_KINDS[o.kind]);
    w.option(o.epoch, (w, e) => w.u32(e));
    w.option(o.handoffHash, (w, h) => w.fixed(h));
  }
  w.u64(t.lastSeq).count(t.releases.length);
  for (const r of t.releases) w.u64(r.index).fixed(r.leafHash).fixed(r.requestHash);
  return w.u64(t.treeSize).fixed(t.treeRoot).u64(t.signedAt).fixed(t.master).toBytes();
}

/** `SHA-256(str(TRANSCRIPT_HANDOFF) ‖ bytes(hand-off signed bytes) ‖ signature)`. */
export function transcriptHandoffHash(handoffSignedBytes: Uint8Array, signature: Uint8Array): Uint8Array {
  return objectHash(TRANSCRIPT_HANDOFF, handoffSignedBytes, signature);
}

/** Checks the end marker's signature under the master's key. */
export function verifyTranscriptEnd(t: TranscriptEnd, signature: Uint8Array): void {
  verifySignature(t.master, transcriptEndSignedBytes(t), signature, "transcript end marker");
}
