/**
 * Who may sign an erasure notice (PROTOCOL §12.3): the customer for an erasure at its own
 * request, the relay's log key only for retention. A relay-signed entry claiming the customer's
 * reason, and a customer-signed one claiming retention, fail as "signer"; the allowed ones pass
 * the signer check (and reach the inclusion check, which this unit test does not serve).
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { IdentityKeys, entrySignedBytes, type AuditEntry } from "@sealdesk/protocol";
import { checkNotice } from "../src/index.js";

const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

function erasure(keys: IdentityKeys, conversation: Uint8Array, reason: "retention" | "customer request"): AuditEntry {
  const unsigned = { event: { erasure: { conversation, reason } }, at: 1_000, signer: keys.signingPublic };
  return { ...unsigned, signature: keys.sign(entrySignedBytes(unsigned)) };
}

describe("an erasure notice's signer", () => {
  const customer = IdentityKeys.generate(random);
  const relay = IdentityKeys.generate(random);
  const stranger = IdentityKeys.generate(random);
  const conversation = random(16);
  const ctx = {
    org: "acme",
    conversation,
    me: customer.signingPublic,
    relayKey: relay.signingPublic,
    policy: null,
    seen: new Set<string>(),
    treeHead: () => Promise.reject(new Error("not served")),
    inclusion: () => Promise.reject(new Error("not served")),
  };

  it("is the customer for its own request, the relay only for retention", async () => {
    const cases: [IdentityKeys, "retention" | "customer request", string][] = [
      [customer, "customer request", "inclusion"],
      [relay, "retention", "inclusion"],
      [relay, "customer request", "signer"],
      [customer, "retention", "signer"],
      [stranger, "customer request", "signer"],
    ];
    for (const [keys, reason, failure] of cases) {
      const n = await checkNotice(1, 0, erasure(keys, conversation, reason), ctx);
      expect(n.failure, `${reason}`).toBe(failure);
      expect(n.verified).toBe(false);
    }
  });
});
