/**
 * The console's notice checks (`src/agent-notices.ts`) without a relay: a log built here, heads
 * signed by a relay key made here, the session's answers made here. A release by a trustee of
 * the policy under the customer's consent, proven, consistent and cosigned, is verified and said
 * of the customer; the same entry is not verified when its head is signed by another relay key,
 * when no trustee has cosigned a head holding it, when the head forks the one this console kept,
 * or when its signer is not a trustee; an erasure "at the customer's request" is verified only
 * if the conversation's customer signed it. (Which entries are read: `agent-log.test.ts`.)
 */
import { describe, expect, it } from "vitest";
import { IdentityKeys, entryLeafHash, type IdentityCard } from "@sealdesk/protocol";
import { checkAgentNotice, type AgentNoticeContext } from "../src/agent-notices.js";
import { MemoryStore } from "../src/index.js";
import { NOW, conversation, customer, erasure, erin, policy, random, relay, release, session, t1 } from "./audit-log.fixture.js";

function ctx(store = new MemoryStore(), customerCard: IdentityCard | null = erin): AgentNoticeContext {
  return { org: "acme", conversation, customer: customerCard, policy, relayKey: relay.signingPublic, seen: new Set(), store, now: () => NOW };
}

describe("the console's release notices", () => {
  it("verifies a trustee's release under the customer's consent and says it of the customer", async () => {
    const { entry, raw } = release(t1);
    const leaves = [entryLeafHash(erasure(customer).entry), entryLeafHash(entry)];
    const n = await checkAgentNotice(session(leaves), 1, raw, ctx());
    expect(n.verified).toBe(true);
    expect(n.by).toBe("trustee t1");
    expect(n.provenIn).toBe(2);
    expect(n.text).toContain("under the customer's consent");
    expect(n.text).not.toContain("your");
  });

  it("does not verify it under another relay key, without the trustees' cosignature, on a forked log, or from a non-trustee", async () => {
    const { entry, raw } = release(t1);
    const leaves = [entryLeafHash(erasure(customer).entry), entryLeafHash(entry)];
    const other = IdentityKeys.generate(random);
    expect((await checkAgentNotice(session(leaves, { headKey: other }), 1, raw, ctx())).verified).toBe(false);
    const unwitnessed = await checkAgentNotice(session(leaves, { cosigners: [] }), 1, raw, ctx());
    expect(unwitnessed.verified).toBe(false);
    expect(unwitnessed.text).toContain("NOT YET WITNESSED");
    // The console kept a head of size 2 with another root: the log served now forks it.
    const store = new MemoryStore();
    const kept = ctx(store);
    const forkedLeaves = [entryLeafHash(release(t1).entry), entryLeafHash(entry)];
    expect((await checkAgentNotice(session(forkedLeaves), 1, raw, kept)).verified).toBe(true);
    const forked = await checkAgentNotice(session(leaves), 1, raw, { ...kept, seen: new Set() });
    expect(forked.verified).toBe(false);
    expect(forked.text).toContain("does not extend");
    const stranger = release(other);
    const n = await checkAgentNotice(session([entryLeafHash(stranger.entry)]), 0, stranger.raw, ctx());
    expect(n.verified).toBe(false);
    expect(n.text).toContain("NOT GENUINE");
  });

  it("verifies an erasure at the customer's request only when the conversation's customer signed it", async () => {
    const { entry, raw } = erasure(customer);
    const leaves = [entryLeafHash(entry)];
    const n = await checkAgentNotice(session(leaves), 0, raw, ctx());
    expect(n.verified).toBe(true);
    expect(n.by).toBe("the customer erin");
    const someone = { ...erin, signingKey: IdentityKeys.generate(random).signingPublic } as IdentityCard;
    expect((await checkAgentNotice(session(leaves), 0, raw, ctx(new MemoryStore(), someone))).verified).toBe(false);
    expect((await checkAgentNotice(session(leaves), 0, raw, ctx(new MemoryStore(), null))).verified).toBe(false);
  });
});
