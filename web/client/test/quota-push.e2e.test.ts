/**
 * The relay's `quota_warning` push (§13.12) reaches the TypeScript agent, against the real relay
 * with a small per-org quota: an agent who has sent nothing is warned when the customer's
 * messages bring the org's stored bytes to 80%, once (the push decoded, routed as the same
 * `bytes_quota` event as a `stored` answer's, with the org named and no conversation), and
 * again when it signs in anew while the org stays above it. The customer, whose own quota is
 * not near, and who sent the bytes, is told once too (its `stored` answer and no push).
 */
import { describe, expect, it } from "vitest";
import { MemoryStore, type AgentEvent } from "../src/index.js";
import { onlineAgent } from "./agent-fixture.js";
import { onlineCustomer, orgOnRelay } from "./customer-fixture.js";
import { eventually } from "./relay.js";

/** A message's text: its ciphertext is 1,000 bytes (the text and the 16-byte AEAD tag). */
const body = (n: number): string => `${String(n).padStart(3, "0")}${"x".repeat(981)}`;
/** The org's stored-bytes quota in this suite's relay: ten and a half messages. */
const QUOTA = 10_500;

describe("the quota_warning push at the agent", () => {
  const fx = orgOnRelay("quota-push", ["--limit", `stored_bytes_per_org=${QUOTA}`]);

  it("warns an agent who sent nothing when the customer's messages bring the org to 80%, and again at sign-in", async () => {
    const { customer: carol, events: carolEvents } = await onlineCustomer(fx.options(new MemoryStore()));
    const store = new MemoryStore();
    const { agent, events } = await onlineAgent(fx.org.agentHome, fx.relay.url, undefined, store);
    const warnings = (all: AgentEvent[]) => all.filter((e) => e.kind === "bytes_quota");
    // Eight messages of the customer: 76% of the org's quota, no warning.
    for (let n = 0; n < 8; n++) await carol.send(body(n));
    const id = carol.conversationId() ?? "";
    await eventually("the messages at the agent", () => agent.conversation(id)?.lines.find((l) => l.text === body(7)));
    expect(warnings(events)).toEqual([]);
    // The ninth: 85%, pushed to the agent, naming the org.
    await carol.send(body(8));
    const pushed = { kind: "bytes_quota", id: null, org: fx.org.org, quota: { scope: "org", used: 9000, most: QUOTA } };
    await eventually("the pushed warning", () => warnings(events).at(0));
    expect(warnings(events)).toEqual([pushed]);
    // The customer was told by its `stored` answer, once.
    await eventually("the customer's warning", () => carolEvents.find((e) => e.kind === "bytes_quota"));
    expect(carolEvents.filter((e) => e.kind === "bytes_quota")).toEqual([{ kind: "bytes_quota", quota: { scope: "org", used: 9000, most: QUOTA } }]);
    agent.stop();
    // Signed in anew (a reload) while the org stays above 80%: told again.
    const again = await onlineAgent(fx.org.agentHome, fx.relay.url, undefined, store);
    await eventually("the warning after sign-in", () => warnings(again.events).at(0));
    expect(warnings(again.events)).toEqual([pushed]);
    again.agent.stop();
    carol.stop();
  });
});
