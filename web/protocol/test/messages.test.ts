/** `messages.json`: chain keys, message keys, headers, ciphertexts, signatures; receiving checks. */
import { describe, expect, it } from "vitest";
import { toHex } from "../src/bytes.js";
import { encodeHeader, messageAad, MessageError, messageSignedBytes, openMessage, ReplayWindow, sealMessage } from "../src/message.js";
import type { Envelope, ReceiveContext } from "../src/message.js";
import { EpochSecret, messageKeys } from "../src/secret.js";
import { flip, keysOf } from "./fixtures.js";
import type { Json } from "./vectors.js";
import { h, loadVector } from "./vectors.js";

const v = loadVector("messages.json");
const conversation = h(v.conversation);
const schedule = new EpochSecret(h(v.k), conversation, v.epoch);
const senders = [...new Set((v.messages as Json[]).map((m) => m.sender as string))];

function receiver(): ReceiveContext {
  const windows = new Map<string, ReplayWindow>();
  return {
    conversation,
    epoch: v.epoch,
    schedule,
    members: senders.map((s) => keysOf(s).signingPublic),
    window: (s) => {
      const k = toHex(s);
      let w = windows.get(k);
      if (w === undefined) windows.set(k, (w = new ReplayWindow()));
      return w;
    },
  };
}

describe("messages.json", () => {
  const rx = receiver();
  for (const m of v.messages as Json[]) {
    it(`${m.sender} #${m.counter} (${m.kind}): reproduced byte for byte and received`, () => {
      const keys = keysOf(m.sender);
      expect(toHex(keys.signingPublic)).toBe(m.sender_signing_public);
      expect(toHex(schedule.chainKey(keys.signingPublic))).toBe(m.chain_key);
      const mk = messageKeys(h(m.chain_key), m.counter);
      expect(toHex(mk.key)).toBe(m.message_key);
      expect(toHex(mk.nonce)).toBe(m.nonce);
      const env = sealMessage(schedule, conversation, v.epoch, keys, m.counter, m.kind, m.sent_at, h(m.body));
      const hb = encodeHeader(env.header);
      expect(toHex(env.header.commitment)).toBe(m.commitment);
      expect(toHex(hb)).toBe(m.header);
      expect(toHex(messageAad(hb))).toBe(m.aad);
      expect(toHex(env.ciphertext)).toBe(m.ciphertext);
      expect(toHex(messageSignedBytes(hb, env.ciphertext))).toBe(m.signed_bytes);
      expect(toHex(env.signature)).toBe(m.signature);
      expect(toHex(openMessage(env, rx))).toBe(m.body);
      expect(() => openMessage(env, rx)).toThrowError(MessageError);
    });
  }
  it("tampered, forged, foreign and replayed messages are refused with their reason", () => {
    const m = (v.messages as Json[])[0];
    const env: Envelope = sealMessage(schedule, conversation, v.epoch, keysOf(m.sender), m.counter, m.kind, m.sent_at, h(m.body));
    const reason = (e: Envelope): string => {
      try {
        openMessage(e, receiver());
        return "accepted";
      } catch (err) {
        return err instanceof MessageError ? err.failure : "other";
      }
    };
    expect(reason(env)).toBe("accepted");
    expect(reason({ ...env, ciphertext: flip(env.ciphertext) })).toBe("bad_signature");
    expect(reason({ ...env, signature: flip(env.signature) })).toBe("bad_signature");
    expect(reason({ ...env, header: { ...env.header, epoch: 9 } })).toBe("wrong_epoch");
    expect(reason({ ...env, header: { ...env.header, sender: keysOf("dave").signingPublic } })).toBe("not_a_member");
    expect(reason({ ...env, header: { ...env.header, counter: 2001 } })).toBe("too_far_ahead");
    // A member re-signs a header with a wrong commitment: the commitment check refuses it.
    const badHeader = { ...env.header, commitment: flip(env.header.commitment) };
    const sig = keysOf(m.sender).sign(messageSignedBytes(encodeHeader(badHeader), env.ciphertext));
    expect(reason({ header: badHeader, ciphertext: env.ciphertext, signature: sig })).toBe("commitment_mismatch");
  });
  it("the replay window admits reordering within 256 and refuses duplicates and old counters", () => {
    const w = new ReplayWindow();
    w.mark(300);
    expect(() => w.check(300)).toThrowError(/duplicate/);
    w.check(45);
    expect(() => w.check(44)).toThrowError(/too_old/);
    w.mark(299);
    expect(() => w.check(299)).toThrowError(/duplicate/);
    expect(() => w.check(2301)).toThrowError(/too_far_ahead/);
    w.check(2300);
    w.mark(1000);
    expect(() => w.check(300)).toThrowError(/too_old/);
  });
});
