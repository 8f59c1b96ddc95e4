/**
 * The relay's stored-bytes warning reaches the TypeScript agent (§13.12), against the real relay
 * with a small per-org quota: the agent's message that brings the org's stored bytes (the
 * customer's and the agent's messages alike) to 80% gives a `bytes_quota` event naming the org's
 * quota, which the console shows; the messages before it give none; past the quota the agent's
 * message is refused `quota_exceeded`.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Agent, MemoryStore, RelayError, importCliVault, type AgentEvent } from "../src/index.js";
import { onlineCustomer, orgOnRelay, random, now, socket } from "./customer-fixture.js";
import { eventually } from "./relay.js";

/** A message's text: its ciphertext is 1,000 bytes (the text and the 16-byte AEAD tag). */
const body = (n: number): string => `${String(n).padStart(3, "0")}${"x".repeat(981)}`;
/** The org's stored-bytes quota in this suite's relay: ten and a half messages. */
const QUOTA = 10_500;

describe("the agent and the org's stored-bytes quota", () => {
  const fx = orgOnRelay("agent-quota", ["--limit", `stored_bytes_per_org=${QUOTA}`]);

  it("warns the agent from 80% of the org's quota on, and refuses past it", async () => {
    const { customer: carol } = await onlineCustomer(fx.options(new MemoryStore()));
    await carol.send(body(0));
    const id = carol.conversationId() ?? "";
    const store = new MemoryStore();
    const home = fx.org.agentHome;
    const files = {
      header: readFileSync(join(home, "vault.json"), "utf8"),
      identity: new Uint8Array(readFileSync(join(home, "records", "identity.rec"))),
      profile: new Uint8Array(readFileSync(join(home, "records", "profile.rec"))),
    };
    const { keys, card } = await importCliVault(files, "web tests only");
    await Agent.keep(store, keys, card);
    const agent = await Agent.load({ url: fx.relay.url, store, socket, random, now });
    const events: AgentEvent[] = [];
    agent.on((e) => events.push(e));
    agent.start();
    await eventually("the conversation at the agent", () => agent.conversation(id)?.lines.find((l) => l.text === body(0)));
    const warnings = () => events.filter((e) => e.kind === "bytes_quota");
    // The customer's message and seven of the agent's: 76% of the org's quota, no warning.
    for (let n = 1; n < 8; n++) await agent.send(id, body(n));
    expect(warnings()).toEqual([]);
    // The ninth message of the org: 85%, the warning names the org's quota.
    await agent.send(id, body(8));
    const [warning] = warnings();
    // Told once: by the `stored` answer (`id`) or the `quota_warning` push (no conversation),
    // whichever comes first.
    expect(warnings()).toHaveLength(1);
    expect(warning).toMatchObject({ kind: "bytes_quota", org: fx.org.org, quota: { scope: "org", most: QUOTA } });
    expect([id, null]).toContain(warning?.kind === "bytes_quota" ? warning.id : undefined);
    const used = warning?.kind === "bytes_quota" ? warning.quota.used : 0;
    expect(used).toBeGreaterThanOrEqual(9000);
    expect(used).toBeLessThan(9000 + 500);
    // Past it: refused, typed.
    await agent.send(id, body(9));
    const refused = await agent.send(id, body(10)).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(RelayError);
    expect((refused as RelayError).code).toBe("quota_exceeded");
    agent.stop();
    carol.stop();
  });
});
