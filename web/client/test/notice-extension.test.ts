/**
 * A release notice (a `notice` item) carrying an audit entry of a kind this version cannot read
 * (PROTOCOL §12.1 "Kinds a later version adds"): the customer is shown it, in words that say to
 * update, whatever consents she holds — the notice path, not her reading of the log (which runs
 * only while a consent of hers is open), is what tells her of a release (SECURITY.md, "Audit log
 * readers"). It is never genuine: nothing this version can read of it names her conversation,
 * and no signer is allowed for a kind it does not know.
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { IdentityKeys, entrySignedBytes, extensionEvent, type AuditEntry } from "@sealdesk/protocol";
import { checkNotice } from "../src/index.js";

const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

/** An entry of the later kind `code`, signed by `keys`. */
function later(keys: IdentityKeys, code: number): AuditEntry {
  const unsigned = { event: extensionEvent(code, random(40)), at: 1_000, signer: keys.signingPublic };
  return { ...unsigned, signature: keys.sign(entrySignedBytes(unsigned)) };
}

describe("a notice of a kind this version cannot read, for a customer", () => {
  const customer = IdentityKeys.generate(random);
  const relay = IdentityKeys.generate(random);
  const trustee = IdentityKeys.generate(random);
  // No consent anywhere: `checkNotice` is given none, and needs none.
  const ctx = {
    org: "acme",
    conversation: random(16),
    me: customer.signingPublic,
    relayKey: relay.signingPublic,
    policy: null,
    seen: new Set<string>(),
    treeHead: () => Promise.reject(new Error("not served")),
    inclusion: () => Promise.reject(new Error("not served")),
  };

  it("is shown, says to update, and is never genuine", async () => {
    for (const keys of [relay, trustee, customer]) {
      const n = await checkNotice(7, 3, later(keys, 200), ctx);
      expect(n.text).toBe(
        "an entry of a kind this version cannot read (code 200): update sealdesk to read it (NOT GENUINE: not signed by a party allowed to make it, or not proven in the audit log)",
      );
      // Nothing this version can read of it names this conversation: refused there, first.
      expect(n.failure).toBe("conversation");
      expect(n.verified).toBe(false);
      expect(n.kind).toBe("other");
    }
  });
});
