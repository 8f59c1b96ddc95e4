/**
 * End to end under Node, against the real relay binary on 127.0.0.1:0: the org (master, trustee,
 * arbiter, agent) is made with the Rust CLI; a TypeScript customer registers, checks the policy
 * against the master fingerprint, opens a conversation (creating epoch 0, which the Rust agent
 * verifies at level 3, escrow recomputed), and chats with the CLI agent both ways. Then the relay
 * is restarted and a second customer loaded from the same store resumes with its history.
 */
import { describe, expect, it } from "vitest";
import { Customer, CustomerError, MemoryStore, type CustomerEvent, type CustomerOptions } from "../src/index.js";
import { orgOnRelay } from "./customer-fixture.js";
import { eventually, startRelay } from "./relay.js";

describe("a TypeScript customer and the Rust CLI agent", () => {
  const fx = orgOnRelay("web-e2e");

  const options = (store: MemoryStore, fingerprint = fx.org.fingerprint): CustomerOptions => fx.options(store, { masterFingerprint: fingerprint });

  it("chats both ways, and a reload resumes the conversation with its history", async () => {
    const store = new MemoryStore();
    const carol = await Customer.load(options(store));
    const events: CustomerEvent[] = [];
    carol.on((e) => events.push(e));
    carol.start();
    const policy = await eventually("the policy", () => events.find((e) => e.kind === "policy"));
    expect(policy.kind === "policy" && policy.fingerprint).toBe(fx.org.fingerprint);
    await eventually("online", () => events.find((e) => e.kind === "state" && e.state === "online"));

    const mine = await carol.send("my order 1234 never arrived");
    expect(mine.mine).toBe(true);
    const id = carol.conversationId();
    expect(id).not.toBeNull();

    const agentView = await fx.org.agent(["history", "--conversation", id ?? ""]);
    expect(agentView).toContain("my order 1234 never arrived");
    await fx.org.agent(["send", "--conversation", id ?? "", "sorry about that: a new one ships today"]);
    const answer = await eventually("the agent's answer", () => carol.history().find((l) => !l.mine));
    expect(answer.text).toBe("sorry about that: a new one ships today");
    expect(answer.sender).toBe("alice");
    // The agent's `history` sent a read receipt for the customer's message.
    await eventually("the read receipt", () => (carol.readUpTo() >= mine.seq ? true : undefined));
    expect(events.filter((e) => e.kind === "refused")).toEqual([]);
    carol.stop();

    // The relay restarts; a customer loaded from the same store resumes: history at once, nothing twice.
    await fx.relay.stop();
    fx.relay = await startRelay(`${fx.root}/relay-data`, [], fx.relay.addr);
    const again = await Customer.load(options(store));
    expect(again.conversationId()).toBe(id);
    expect(again.history().map((l) => l.text)).toEqual(["my order 1234 never arrived", "sorry about that: a new one ships today"]);
    const seen: CustomerEvent[] = [];
    again.on((e) => seen.push(e));
    again.start();
    await eventually("online again", () => seen.find((e) => e.kind === "state" && e.state === "online"));
    await again.send("thanks, that was quick");
    const agentAgain = await fx.org.agent(["history", "--conversation", id ?? ""]);
    expect(agentAgain).toContain("thanks, that was quick");
    await fx.org.agent(["send", "--conversation", id ?? "", "you're welcome"]);
    await eventually("the second answer", () => again.history().find((l) => l.text === "you're welcome"));
    expect(again.history().map((l) => l.seq)).toEqual([...new Set(again.history().map((l) => l.seq))]);
    expect(again.history().filter((l) => l.text === "sorry about that: a new one ships today")).toHaveLength(1);
    again.stop();
  });

  it("refuses an org whose master does not match the fingerprint given at load, before registering or opening anything", async () => {
    const c = await Customer.load(options(new MemoryStore(), "00000 00000 00000 00000 00000 00000"));
    const events: CustomerEvent[] = [];
    c.on((e) => events.push(e));
    c.start();
    // The policy is read at load, unregistered: refused there, and the connection stopped.
    const refused = await eventually("the refusal", () => events.find((e) => e.kind === "error"));
    expect(refused.kind === "error" && refused.error).toBeInstanceOf(CustomerError);
    expect(refused.kind === "error" && (refused.error as CustomerError).failure).toBe("fingerprint_mismatch");
    expect(events.some((e) => e.kind === "policy" || (e.kind === "state" && e.state === "online"))).toBe(false);
    expect(c.policy).toBeNull();
    // Writing is refused (offline), and opens nothing.
    await expect(c.send("hello?")).rejects.toThrow();
    expect(c.conversationId()).toBeNull();
    c.stop();
  });
});
