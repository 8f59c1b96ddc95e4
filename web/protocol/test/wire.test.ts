/**
 * `wire.json`: every frame decodes and re-encodes to the same bytes, and frames built from typed
 * values give the vector bytes; also the CBOR of the policy, epoch records and message envelopes
 * of the other vector files, and the auth signed bytes.
 */
import { describe, expect, it } from "vitest";
import { concat, toHex } from "../src/bytes.js";
import { Writer } from "../src/codec.js";
import { verifyStrict } from "../src/ed25519.js";
import { AUTH } from "../src/labels.js";
import { sealMessage } from "../src/message.js";
import { EpochSecret } from "../src/secret.js";
import {
  cardFromCbor,
  cardToCbor,
  decodeFrame,
  encodeFrame,
  envelopeToCbor,
  epochToCbor,
  fromCbor,
  MAX_FRAME,
  policyToCbor,
  pushFrame,
  quotaWarningFromCbor,
  requestFrame,
  responseFrame,
  toCbor,
} from "../src/wire.js";
import type { CborValue } from "../src/wire.js";
import { recordOf } from "./epoch.fixtures.js";
import { cardOf, keysOf, vectorPolicy } from "./fixtures.js";
import type { Json } from "./vectors.js";
import { h, loadVector } from "./vectors.js";

const v = loadVector("wire.json");
const frames = new Map<string, string>((v.frames as Json[]).map((f) => [f.frame, f.bytes]));
const frame = (name: string): string => {
  const b = frames.get(name);
  if (b === undefined) throw new Error(`no frame ${name}`);
  return b;
};
const sub = (x: CborValue, ...path: string[]): CborValue => path.reduce<CborValue>((m, k) => (m as Record<string, CborValue>)[k] ?? null, x);

describe("wire.json", () => {
  for (const f of v.frames as Json[]) {
    it(`${f.frame}: decodes and re-encodes to the same bytes`, () => {
      expect(toHex(encodeFrame(decodeFrame(h(f.bytes))))).toBe(f.bytes);
    });
  }
  it("frames built from typed values", () => {
    const relay = keysOf("relay");
    const challenge = decodeFrame(h(frame("challenge")));
    const nonce = sub(challenge, "challenge", "nonce") as Uint8Array;
    expect(toHex(encodeFrame({ challenge: { relay_key: relay.signingPublic, nonce } }))).toBe(frame("challenge"));
    const carol = keysOf("carol");
    const signed = Writer.withLabel(AUTH).fixed(relay.signingPublic).fixed(nonce).fixed(carol.signingPublic).toBytes();
    expect(toHex(signed)).toBe(v.auth_signed_bytes);
    const authSig = carol.sign(signed);
    expect(verifyStrict(carol.signingPublic, signed, authSig)).toBe(true);
    expect(toHex(encodeFrame({ auth: { card: cardToCbor(cardOf("carol")), signature: authSig } }))).toBe(frame("auth (carol)"));
    expect(cardFromCbor(sub(decodeFrame(h(frame("auth (carol)"))), "auth", "card"))).toEqual(cardOf("carol"));
    const welcome = decodeFrame(h(frame("welcome")));
    expect(toHex(encodeFrame({ welcome: { registered: true, log_key: sub(welcome, "welcome", "log_key") } }))).toBe(frame("welcome"));
    expect(toHex(encodeFrame(requestFrame(1, "register")))).toBe(frame("request 1: register (a unit variant)"));
    expect(toHex(encodeFrame(requestFrame(2, { get_card: { name: "bob" } })))).toBe(frame("request 2: get_card"));
    expect(toHex(encodeFrame(requestFrame(3, { get_policy: { org: "acme", version: null } })))).toBe(frame("request 3: get_policy with no version"));
    expect(toHex(encodeFrame(responseFrame(4, { stored: { seq: 7 } })))).toBe(frame("response 4: stored"));
    // §13.12: from 80% of a stored-bytes quota, `stored` carries the warning; without it the
    // frame is the older one above.
    expect(toHex(encodeFrame(responseFrame(4, { stored: { seq: 7, quota: { scope: "org", used: 850_000, most: 1_000_000 } } })))).toBe(
      frame("response 4: stored, with a stored-bytes quota warning (PROTOCOL §13.12)"),
    );
    expect(toHex(encodeFrame(responseFrame(5, { error: { code: "forbidden", message: "not a member of this conversation" } })))).toBe(frame("response 5: error"));
    expect(toHex(encodeFrame(responseFrame(6, "ok")))).toBe(frame("response 6: ok (a unit variant)"));
    // §13.10: a history page names its skipped runs (`epoch` absent: conversation-level) and
    // the head; an older relay's page has neither key.
    const page = decodeFrame(h(frame("response 7: items, with skipped runs and the head (PROTOCOL §13.10)")));
    const pageItems = sub(page, "response", "body", "items", "items");
    const skipped = [{ from: 3, to: 7, epoch: 0 }, { from: 8, to: 8 }, { from: 10, to: 10 }];
    expect(toHex(encodeFrame(responseFrame(7, { items: { items: pageItems, more: false, skipped, head: 10 } })))).toBe(
      frame("response 7: items, with skipped runs and the head (PROTOCOL §13.10)"),
    );
    expect(toHex(encodeFrame(responseFrame(8, { items: { items: [], more: false } })))).toBe(
      frame("response 8: items from a relay that names no skipped runs (older relays)"),
    );
    const delivered = decodeFrame(h(frame("push: delivered")));
    expect(toHex(encodeFrame(pushFrame({ delivered: { conversation: sub(delivered, "push", "delivered", "conversation"), member: "bob", seq: 7 } })))).toBe(frame("push: delivered"));
    expect(toHex(encodeFrame(requestFrame(7, "watch_audit")))).toBe(frame("request 7: watch_audit (a unit variant)"));
    expect(toHex(encodeFrame(pushFrame({ audit_grew: { size: 12 } })))).toBe(frame("push: audit_grew"));
    expect(toHex(encodeFrame(requestFrame(9, "watch_agent_keys")))).toBe(frame("request 9: watch_agent_keys (a unit variant)"));
    const keyPush = decodeFrame(h(frame("push: agent_key_changed")));
    const pushed = sub(keyPush, "push", "agent_key_changed");
    expect(cardFromCbor(sub(pushed, "card"))).toEqual(cardOf("bob"));
    expect(toHex(encodeFrame(pushFrame({ agent_key_changed: { org: "acme", agent: "bob", card: cardToCbor(cardOf("bob")), conversations: sub(pushed, "conversations") } })))).toBe(
      frame("push: agent_key_changed"),
    );
    // §13.12: the warning pushed to every account a stored-bytes quota concerns.
    expect(toHex(encodeFrame(pushFrame({ quota_warning: { org: "acme", quota: { scope: "org", used: 850_000, most: 1_000_000 } } })))).toBe(
      frame("push: quota_warning (PROTOCOL §13.12)"),
    );
    // §3.5: the record of recovery_record.json, stored, asked for with its code's proof, returned.
    const rr = loadVector("recovery_record.json");
    const record = fromCbor(h(rr.record_cbor));
    expect(toHex(encodeFrame(requestFrame(10, { put_recovery: record })))).toBe(frame("request 10: put_recovery (PROTOCOL §3.5, the record of recovery_record.json)"));
    expect(toHex(encodeFrame(requestFrame(11, { get_recovery: { name: "carol", proof: h(rr.proof) } })))).toBe(frame("request 11: get_recovery"));
    expect(toHex(encodeFrame(responseFrame(11, { recovery: record })))).toBe(frame("response 11: recovery"));
  });
  it("reads the quota_warning push (PROTOCOL §13.12), typed and strict", () => {
    const body = sub(decodeFrame(h(frame("push: quota_warning (PROTOCOL §13.12)"))), "push", "quota_warning");
    expect(quotaWarningFromCbor(body)).toEqual({ org: "acme", quota: { scope: "org", used: 850_000, most: 1_000_000 } });
    // The account's own quota names no org.
    expect(quotaWarningFromCbor({ org: null, quota: { scope: "account", used: 9, most: 10 } })).toEqual({ org: null, quota: { scope: "account", used: 9, most: 10 } });
    const malformed = expect.objectContaining({ code: "malformed" });
    const bad = (quota: CborValue, org: CborValue = "acme") => () => quotaWarningFromCbor({ org, quota });
    expect(bad({ scope: "conversation", used: 1, most: 2 })).toThrowError(malformed);
    expect(bad({ scope: "org", used: -1, most: 2 })).toThrowError(malformed);
    expect(bad({ scope: "org", used: "1", most: 2 })).toThrowError(malformed);
    expect(bad({ scope: "org", used: 1, most: 2.5 })).toThrowError(malformed);
    expect(bad({ scope: "org", used: 1 })).toThrowError(malformed);
    expect(bad({ scope: "org", used: 1, most: 2 }, 7)).toThrowError(malformed);
    expect(bad("org")).toThrowError(malformed);
    expect(() => quotaWarningFromCbor({ quota: { scope: "org", used: 1, most: 2 } })).toThrowError(malformed);
  });
  it("auth signed bytes (PROTOCOL §13.1)", () => {
    expect(v.auth_signed_bytes.startsWith(toHex(Writer.withLabel(AUTH).toBytes()))).toBe(true);
  });
  it("refuses trailing bytes, unknown versions, empty and oversized frames", () => {
    const ok = h(frame("response 6: ok (a unit variant)"));
    expect(() => decodeFrame(concat(ok, new Uint8Array([0])))).toThrowError(expect.objectContaining({ code: "trailing_bytes" }));
    const v2 = ok.slice();
    v2[0] = 2;
    expect(() => decodeFrame(v2)).toThrowError(expect.objectContaining({ code: "unknown_version" }));
    expect(() => decodeFrame(new Uint8Array(0))).toThrowError(expect.objectContaining({ code: "malformed" }));
    expect(() => decodeFrame(new Uint8Array(MAX_FRAME + 1).fill(1))).toThrowError(expect.objectContaining({ code: "frame_too_large" }));
    expect(() => encodeFrame({ blob: new Uint8Array(MAX_FRAME) })).toThrowError(expect.objectContaining({ code: "frame_too_large" }));
    expect(() => decodeFrame(h("01a1"))).toThrowError(expect.objectContaining({ code: "malformed" }));
  });
});

describe("CBOR of the objects in the other vector files", () => {
  it("policy.json: the policy's CBOR", () => {
    const p = loadVector("policy.json").policy;
    expect(toHex(toCbor(policyToCbor(vectorPolicy())))).toBe(p.cbor);
    expect(toHex(toCbor(fromCbor(h(p.cbor))))).toBe(p.cbor);
  });
  it("epoch.json: each record's CBOR", () => {
    for (const e of loadVector("epoch.json").epochs as Json[]) expect(toHex(toCbor(epochToCbor(recordOf(e))))).toBe(e.cbor);
  });
  it("messages.json: each envelope's CBOR", () => {
    const m = loadVector("messages.json");
    const schedule = new EpochSecret(h(m.k), h(m.conversation), m.epoch);
    for (const x of m.messages as Json[]) {
      const env = sealMessage(schedule, h(m.conversation), m.epoch, keysOf(x.sender), x.counter, x.kind, x.sent_at, h(x.body));
      expect(toHex(toCbor(envelopeToCbor(env)))).toBe(x.envelope_cbor);
    }
  });
});
