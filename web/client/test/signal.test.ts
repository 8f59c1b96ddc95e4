/**
 * `signal.ts` against `protocol/vectors/signals.json` (PROTOCOL §9.7): each typing signal sealed
 * again from its inputs gives the Rust bytes (ciphertext, signature, CBOR envelope), opens, and
 * is refused when tampered with, expired, from a non-member or for another epoch.
 */
import { fromCbor, toCbor, toHex } from "@sealdesk/protocol";
import { describe, expect, it } from "vitest";
import { keysOf } from "../../protocol/test/fixtures.js";
import { h, loadVector, type Json } from "../../protocol/test/vectors.js";
import { signalFromCbor, signalToCbor } from "../src/frames.js";
import { epochPrk, openSignal, sealSignal } from "../src/signal.js";

const v = loadVector("signals.json");
const conversation = h(v.conversation);
const prk = epochPrk(h(v.k), conversation, v.epoch);

describe("signals.json through signal.ts", () => {
  for (const s of v.signals as Json[]) {
    it(`${s.sender} ${s.kind}: sealed byte for byte, opened, and refused when wrong`, () => {
      const me = keysOf(s.sender);
      const env = sealSignal(prk, conversation, v.epoch, me, s.kind, s.sent_at, h(s.nonce));
      expect(toHex(env.ciphertext)).toBe(s.ciphertext);
      expect(toHex(env.signature)).toBe(s.signature);
      expect(toHex(toCbor(signalToCbor(env)))).toBe(s.envelope_cbor);
      const decoded = signalFromCbor(fromCbor(h(s.envelope_cbor)));
      const members = [me.signingPublic];
      expect(openSignal(decoded, prk, conversation, v.epoch, members, s.sent_at + 5)).toBe(s.kind);
      const flipped = { ...decoded, ciphertext: Uint8Array.from(decoded.ciphertext, (b, i) => (i === 0 ? b ^ 1 : b)) };
      expect(() => openSignal(flipped, prk, conversation, v.epoch, members, s.sent_at)).toThrow();
      expect(() => openSignal(decoded, prk, conversation, v.epoch, members, s.sent_at + 31)).toThrow(/expired/);
      expect(() => openSignal(decoded, prk, conversation, v.epoch, [new Uint8Array(32)], s.sent_at)).toThrow(/non-member/);
      expect(() => openSignal(decoded, prk, conversation, v.epoch + 1, members, s.sent_at)).toThrow(/another conversation or epoch/);
    });
  }
});
