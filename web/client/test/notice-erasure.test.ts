/**
 * Who may sign an erasure notice (PROTOCOL §12.3): the customer for an erasure at its own
 * request, the relay's log key only for retention. A relay-signed entry claiming the customer's
 * reason, and a customer-signed one claiming retention, fail as "signer"; the allowed ones pass
 * the signer check (and reach the inclusion check, which this unit test does not serve).
 */
import { describe, expect, it } from "vitest";
import { IdentityKeys } from "@sealdesk/protocol";
import { checkNotice } from "../src/index.js";
import { customer, erasure, random, relay, unservedNotice } from "./audit-log.fixture.js";

describe("an erasure notice's signer", () => {
  const stranger = IdentityKeys.generate(random);
  const ctx = unservedNotice();

  it("is the customer for its own request, the relay only for retention", async () => {
    const cases: [IdentityKeys, "retention" | "customer request", string][] = [
      [customer, "customer request", "inclusion"],
      [relay, "retention", "inclusion"],
      [relay, "customer request", "signer"],
      [customer, "retention", "signer"],
      [stranger, "customer request", "signer"],
    ];
    for (const [keys, reason, failure] of cases) {
      const n = await checkNotice(1, 0, erasure(keys, ctx.conversation, reason).entry, ctx);
      expect(n.failure, `${reason}`).toBe(failure);
      expect(n.verified).toBe(false);
    }
  });
});
