/** `signals.json` (PROTOCOL §9.7): typing signals re-derived byte for byte from their inputs. */
import { gcm } from "@noble/ciphers/aes.js";
import { expand, extract } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { describe, expect, it } from "vitest";
import { toHex } from "../src/bytes.js";
import { Writer } from "../src/codec.js";
import { verifyStrict } from "../src/ed25519.js";
import { EPOCH_SALT, SIGNAL_AAD, SIGNAL_KEY, SIGNAL_SIGNATURE } from "../src/labels.js";
import { keysOf } from "./fixtures.js";
import type { Json } from "./vectors.js";
import { h, loadVector } from "./vectors.js";

const v = loadVector("signals.json");
const conversation = h(v.conversation);
const prk = extract(sha256, h(v.k), Writer.withLabel(EPOCH_SALT).fixed(conversation).u32(v.epoch).toBytes());

describe("signals.json", () => {
  for (const s of v.signals as Json[]) {
    it(`${s.sender} ${s.kind}: key, header, ciphertext and signature reproduced`, () => {
      const sender = keysOf(s.sender).signingPublic;
      expect(toHex(sender)).toBe(s.sender_signing_public);
      const key = expand(sha256, prk, Writer.withLabel(SIGNAL_KEY).fixed(sender).toBytes(), 32);
      expect(toHex(key)).toBe(s.signal_key);
      const nonce = h(s.nonce);
      const header = new Writer().u8(1).fixed(conversation).u32(v.epoch).fixed(sender).u64(s.sent_at).fixed(nonce).toBytes();
      expect(header.length).toBe(73);
      expect(toHex(header)).toBe(s.header);
      const aad = Writer.withLabel(SIGNAL_AAD).fixed(header).toBytes();
      expect(toHex(aad)).toBe(s.aad);
      const ct = gcm(key, nonce, aad).encrypt(new Uint8Array([s.kind_code]));
      expect(toHex(ct)).toBe(s.ciphertext);
      const signed = Writer.withLabel(SIGNAL_SIGNATURE).fixed(header).bytes(ct).toBytes();
      expect(toHex(signed)).toBe(s.signed_bytes);
      expect(verifyStrict(sender, signed, h(s.signature))).toBe(true);
      const flipped = Uint8Array.from(ct, (b, i) => (i === 0 ? b ^ 1 : b));
      const tampered = Writer.withLabel(SIGNAL_SIGNATURE).fixed(header).bytes(flipped).toBytes();
      expect(verifyStrict(sender, tampered, h(s.signature))).toBe(false);
      expect(toHex(gcm(key, nonce, aad).decrypt(ct))).toBe(toHex(new Uint8Array([s.kind_code])));
    });
  }
});
