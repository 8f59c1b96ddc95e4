/**
 * Typed frames without a relay: an unknown error code reads as `bad_request` (§13.4), an unknown
 * response or push variant as `other`, a missing or mistyped field is a typed `malformed` error,
 * and requests encode to the CBOR the relay decodes (unit variants as text).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { IdentityKeys, ProtocolError, cardToCbor, decodeFrame, encodeFrame, issueCard, requestFrame, toCbor, type CborValue } from "@sealdesk/protocol";
import { pushFromCbor, requestToCbor, responseFromCbor, serverFrameFromCbor } from "../src/frames.js";

const wireVector = JSON.parse(readFileSync(new URL("../../../protocol/vectors/wire.json", import.meta.url), "utf8")) as {
  frames: { frame: string; bytes: string }[];
};
const vectorFrame = (prefix: string): Uint8Array => {
  const f = wireVector.frames.find((x) => x.frame.startsWith(prefix));
  if (f === undefined) throw new Error(`no frame ${prefix}`);
  return Uint8Array.from(f.bytes.match(/../g) ?? [], (b) => parseInt(b, 16));
};

describe("frames", () => {
  it("reads a history page's skipped runs and head (§13.10), and an older relay's page without them", () => {
    const page = serverFrameFromCbor(decodeFrame(vectorFrame("response 7:")));
    expect(page).toMatchObject({
      kind: "response",
      id: 7,
      body: { kind: "items", more: false, skipped: [{ from: 3, to: 7, epoch: 0 }, { from: 8, to: 8 }, { from: 10, to: 10 }], head: 10 },
    });
    const old = serverFrameFromCbor(decodeFrame(vectorFrame("response 8:")));
    expect(old).toMatchObject({ kind: "response", id: 8, body: { kind: "items", items: [], more: false, skipped: [] } });
    expect(old).not.toHaveProperty("body.head");
    expect(() => responseFromCbor({ items: { items: [], more: false, skipped: [{ from: 1 }] } })).toThrow(/to/);
  });

  it("reads stored's stored-bytes quota warning (§13.12), and a stored from an older relay without it", () => {
    const warned = serverFrameFromCbor(decodeFrame(vectorFrame("response 4: stored, with a stored-bytes quota warning")));
    expect(warned).toMatchObject({ kind: "response", id: 4, body: { kind: "stored", seq: 7, quota: { scope: "org", used: 850_000, most: 1_000_000 } } });
    const old = serverFrameFromCbor(decodeFrame(vectorFrame("response 4: stored")));
    expect(old).toMatchObject({ kind: "response", id: 4, body: { kind: "stored", seq: 7 } });
    expect(old).not.toHaveProperty("body.quota");
    expect(() => responseFromCbor({ stored: { seq: 1, quota: { scope: "planet", used: 1, most: 2 } } })).toThrow(/scope/);
    expect(() => responseFromCbor({ stored: { seq: 1, quota: { scope: "org", used: 1 } } })).toThrow(/most/);
  });

  it("reads an unknown error code as bad_request and unknown variants as other", () => {
    expect(responseFromCbor({ error: { code: "brand_new", message: "m" } })).toEqual({ kind: "error", code: "bad_request", message: "m" });
    expect(responseFromCbor({ error: { code: "counter_reused", message: "" } })).toMatchObject({ code: "counter_reused" });
    expect(responseFromCbor("something_new")).toEqual({ kind: "other", name: "something_new" });
    expect(pushFromCbor({ typing: { conversation: new Uint8Array(16) } })).toEqual({ kind: "other", name: "typing" });
  });

  it("refuses missing and mistyped fields with a typed error", () => {
    expect(() => responseFromCbor({ stored: {} })).toThrow(ProtocolError);
    expect(() => responseFromCbor({ stored: { seq: "1" } })).toThrow(/seq/);
    expect(() => responseFromCbor({ stored: { seq: -1 } })).toThrow(ProtocolError);
    expect(() => pushFromCbor({ delivered: { conversation: new Uint8Array(15), member: "a", seq: 1 } })).toThrow(/conversation/);
    expect(() => serverFrameFromCbor({ auth: {} })).toThrow(ProtocolError);
    expect(() => responseFromCbor({ ok: null, error: null })).toThrow(/one variant/);
  });

  it("reads a block and the open-token refusals as their own codes, and encodes an open with a token", () => {
    expect(responseFromCbor({ error: { code: "blocked", message: "m" } })).toMatchObject({ code: "blocked" });
    expect(responseFromCbor({ error: { code: "open_token_expired", message: "m" } })).toMatchObject({ code: "open_token_expired" });
    const token = { org: "acme", visitor: new Uint8Array([1]) };
    const conversation = new Uint8Array(16);
    expect(requestToCbor({ kind: "open_conversation_with_token", org: "acme", conversation, token: toCbor(token) })).toEqual({
      open_conversation_with_token: { org: "acme", conversation, token },
    });
  });

  it("reads audit_grew (after watch_audit, §13.5) and refuses one without its size", () => {
    expect(requestToCbor({ kind: "watch_audit" })).toBe("watch_audit");
    expect(serverFrameFromCbor({ push: { audit_grew: { size: 12 } } })).toEqual({ kind: "push", push: { kind: "audit_grew", size: 12 } });
    expect(() => pushFromCbor({ audit_grew: {} })).toThrow(/size/);
    // §13.12: the stored-bytes quota warning, pushed to every account it concerns.
    const warning = { quota_warning: { org: "acme", quota: { scope: "org", used: 850, most: 1000 } } };
    expect(serverFrameFromCbor({ push: warning })).toEqual({ kind: "push", push: { kind: "quota_warning", org: "acme", quota: { scope: "org", used: 850, most: 1000 } } });
    expect(pushFromCbor({ quota_warning: { org: null, quota: { scope: "account", used: 9, most: 10 } } })).toEqual({ kind: "quota_warning", org: null, quota: { scope: "account", used: 9, most: 10 } });
    expect(() => pushFromCbor({ quota_warning: { org: "acme", quota: { scope: "everyone", used: 9, most: 10 } } })).toThrowError(expect.objectContaining({ code: "malformed" }));
    expect(() => pushFromCbor({ quota_warning: "acme" })).toThrowError(expect.objectContaining({ code: "malformed" }));
  });

  it("reads agent_key_changed (after watch_agent_keys, §13.5) and refuses a bad conversation id", () => {
    expect(requestToCbor({ kind: "watch_agent_keys" })).toBe("watch_agent_keys");
    const card = issueCard(IdentityKeys.fromSecretBytes(new Uint8Array(64).fill(3)), "alice", "agent", 1);
    const conversation = new Uint8Array(16).fill(7);
    const body = { agent_key_changed: { org: "acme", agent: "alice", card: cardToCbor(card), conversations: [conversation] } };
    expect(pushFromCbor(body)).toEqual({ kind: "agent_key_changed", org: "acme", agent: "alice", card, conversations: [conversation] });
    expect(() => pushFromCbor({ agent_key_changed: { ...body.agent_key_changed, conversations: [new Uint8Array(3)] } })).toThrow(/conversations/);
  });

  it("reads entries' withheld slots with their leaf hashes (§12.3), and refuses malformed ones", () => {
    const leaf = new Uint8Array(32).fill(7);
    const entry = { at: 1 };
    expect(responseFromCbor({ entries: { from: 4, entries: [entry, entry] } })).toEqual({ kind: "entries", from: 4, entries: [entry, entry], withheld: [] });
    expect(responseFromCbor({ entries: { from: 4, entries: [entry], withheld: [{ index: 4, leaf }, { index: 6, leaf }] } })).toEqual({
      kind: "entries",
      from: 4,
      entries: [entry],
      withheld: [{ index: 4, leaf }, { index: 6, leaf }],
    });
    const refused = (withheld: CborValue[], entries: CborValue[] = [entry]): unknown => {
      try {
        return responseFromCbor({ entries: { from: 4, entries, withheld } });
      } catch (e) {
        return e;
      }
    };
    // A leaf that is not 32 bytes, or missing.
    expect(refused([{ index: 4, leaf: new Uint8Array(31) }])).toMatchObject({ code: "malformed", message: expect.stringMatching(/leaf/) as unknown });
    expect(refused([{ index: 4 }])).toMatchObject({ code: "malformed", message: expect.stringMatching(/leaf/) as unknown });
    // Indexes out of order or named twice.
    expect(refused([{ index: 5, leaf }, { index: 4, leaf }])).toMatchObject({ code: "malformed", message: expect.stringMatching(/increasing/) as unknown });
    expect(refused([{ index: 5, leaf }, { index: 5, leaf }])).toMatchObject({ code: "malformed", message: expect.stringMatching(/increasing/) as unknown });
    // Outside the slots the answer fills (4..6 here): before `from`, or past the last.
    expect(refused([{ index: 3, leaf }])).toMatchObject({ code: "malformed", message: expect.stringMatching(/outside/) as unknown });
    expect(refused([{ index: 6, leaf }])).toMatchObject({ code: "malformed", message: expect.stringMatching(/outside/) as unknown });
  });

  it("encodes unit requests as text and the rest as one-entry maps", () => {
    expect(requestToCbor({ kind: "register" })).toBe("register");
    expect(requestToCbor({ kind: "get_policy", org: "acme", version: null })).toEqual({ get_policy: { org: "acme", version: null } });
    const bytes = encodeFrame(requestFrame(7, requestToCbor({ kind: "history", conversation: new Uint8Array(16), after: 3, limit: 200 })));
    expect(decodeFrame(bytes)).toEqual({ request: { id: 7, body: { history: { conversation: new Uint8Array(16), after: 3, limit: 200 } } } });
  });
});
