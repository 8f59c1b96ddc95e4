/** `attachments.json` (PROTOCOL §9.8): an attachment's chunks and reference re-derived byte for byte. */
import { gcm } from "@noble/ciphers/aes.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { describe, expect, it } from "vitest";
import { toHex } from "../src/bytes.js";
import { Writer } from "../src/codec.js";
import { verifyStrict } from "../src/ed25519.js";
import { ATTACHMENT_AAD, ATTACHMENT_KEY, MESSAGE_SIGNATURE } from "../src/labels.js";
import { keysOf } from "./fixtures.js";
import type { Json } from "./vectors.js";
import { h, loadVector } from "./vectors.js";

const v = loadVector("attachments.json");
const id = h(v.id);
const key = h(v.key);
const plaintext = Uint8Array.from({ length: v.size }, (_, i) => (7 * i + 3) % 256);
const chunkKey = hkdf(sha256, key, undefined, Writer.withLabel(ATTACHMENT_KEY).fixed(id).toBytes(), 32);

function nonce(index: number): Uint8Array {
  return new Writer().fixed(new Uint8Array(4)).u64(index).toBytes();
}

function aad(index: number, last: boolean): Uint8Array {
  return Writer.withLabel(ATTACHMENT_AAD).fixed(id).u64(index).bool(last).toBytes();
}

describe("attachments.json", () => {
  it("the plaintext's hash and the chunk key", () => {
    expect(toHex(sha256(plaintext))).toBe(v.plaintext_sha256);
    expect(toHex(chunkKey)).toBe(v.chunk_key);
  });

  const chunks = v.chunks as Json[];
  for (const c of chunks) {
    it(`chunk ${c.index}: nonce, associated data and ciphertext reproduced`, () => {
      const last = c.index === chunks.length - 1;
      expect(c.final).toBe(last);
      expect(toHex(nonce(c.index))).toBe(c.nonce);
      expect(toHex(aad(c.index, last))).toBe(c.aad);
      const part = plaintext.subarray(c.index * v.chunk_size, Math.min((c.index + 1) * v.chunk_size, v.size));
      const ct = gcm(chunkKey, nonce(c.index), aad(c.index, last)).encrypt(part);
      expect(ct.length).toBe(c.ciphertext_len);
      expect(toHex(sha256(ct))).toBe(c.ciphertext_sha256);
      expect(toHex(ct.subarray(ct.length - 16))).toBe(c.tag);
      if (c.ciphertext !== null) expect(toHex(ct)).toBe(c.ciphertext);
      // The same chunk does not open as the other kind (final / not final) or at another index.
      expect(() => gcm(chunkKey, nonce(c.index), aad(c.index, !last)).decrypt(ct)).toThrow();
      expect(() => gcm(chunkKey, nonce(c.index + 1), aad(c.index + 1, last)).decrypt(ct)).toThrow();
    });
  }

  it("the reference's body and the message that carries it", () => {
    const body = new Writer()
      .u8(1)
      .fixed(id)
      .fixed(key)
      .fixed(h(v.plaintext_sha256))
      .u64(v.size)
      .str(v.name)
      .str(v.media_type)
      .str(v.text)
      .toBytes();
    expect(toHex(body)).toBe(v.body);
    const m = v.message;
    const sender = keysOf(m.sender).signingPublic;
    expect(toHex(sender)).toBe(m.sender_signing_public);
    const header = h(m.header);
    // version ‖ conversation ‖ epoch ‖ sender ‖ counter ‖ kind — the kind byte is 4.
    expect(header[1 + 16 + 4 + 32 + 8]).toBe(m.kind_code);
    const signed = Writer.withLabel(MESSAGE_SIGNATURE).fixed(header).bytes(h(m.ciphertext)).toBytes();
    expect(toHex(signed)).toBe(m.signed_bytes);
    expect(verifyStrict(sender, signed, h(m.signature))).toBe(true);
  });
});
