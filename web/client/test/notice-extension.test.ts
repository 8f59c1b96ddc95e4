/**
 * A release notice (a `notice` item) carrying an audit entry of a kind this version cannot read
 * (PROTOCOL §12.1 "Kinds a later version adds"): the customer is shown it, in words that say to
 * update, whatever consents she holds — the notice path, not her reading of the log (which runs
 * only while a consent of hers is open), is what tells her of a release (SECURITY.md, "Audit log
 * readers"). It is never genuine: nothing this version can read of it names her conversation,
 * and no signer is allowed for a kind it does not know.
 */
import { describe, expect, it } from "vitest";
import { checkNotice } from "../src/index.js";
import { customer, laterKind, relay, t1 as trustee, unservedNotice } from "./audit-log.fixture.js";

describe("a notice of a kind this version cannot read, for a customer", () => {
  // No consent anywhere: `checkNotice` is given none, and needs none.
  const ctx = unservedNotice();

  it("is shown, says to update, and is never genuine", async () => {
    for (const keys of [relay, trustee, customer]) {
      const n = await checkNotice(7, 3, laterKind(keys, 200).entry, ctx);
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
