/**
 * The customer's live signs under Node against the real relay, with the TypeScript agent (the
 * CLI's agent `alice` imported from its vault): the customer's typing reaches the agent and
 * "stopped" clears it, and the relay stores neither (the history holds no new item); the agent's
 * typing reaches the customer; the agent's device receiving a message gives the customer a
 * delivery mark; the customer's read receipt (a `read` message up to the agent's newest line)
 * reaches the agent, once — not again for the same line; the agent's read receipt gives the
 * customer's own line its read mark.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Agent, Customer, MemoryStore, importCliVault, type CustomerEvent } from "../src/index.js";
import { now, orgOnRelay, random, socket } from "./customer-fixture.js";
import { eventually } from "./relay.js";

describe("typing and receipts between a TypeScript customer and agent", () => {
  const fx = orgOnRelay("web-live");

  it("passes typing both ways without storing it, and marks delivered and read both ways", async () => {
    const home = fx.org.agentHome;
    const { keys, card } = await importCliVault(
      {
        header: readFileSync(join(home, "vault.json"), "utf8"),
        identity: new Uint8Array(readFileSync(join(home, "records", "identity.rec"))),
        profile: new Uint8Array(readFileSync(join(home, "records", "profile.rec"))),
      },
      "web tests only",
    );
    const agentStore = new MemoryStore();
    await Agent.keep(agentStore, keys, card);
    const agent = await Agent.load({ url: fx.relay.url, store: agentStore, socket, random, now });
    agent.start();

    const store = new MemoryStore();
    const carol = await Customer.load(fx.options(store));
    const events: CustomerEvent[] = [];
    carol.on((e) => events.push(e));
    carol.start();
    await eventually("online", () => events.find((e) => e.kind === "state" && e.state === "online"));
    const hello = await carol.send("is anyone there?");
    const id = carol.conversationId() ?? "";
    await eventually("the line at the agent", () => agent.conversation(id)?.lines.find((l) => l.text === "is anyone there?"));

    // Delivered: the agent's device has the message.
    await eventually("the delivery mark", () => (carol.deliveredUpTo() >= hello.seq ? true : undefined));
    expect(carol.readUpTo()).toBeLessThan(hello.seq);

    // The customer types: the agent sees it; "stopped" clears it.
    const stored = (await store.keys("item/")).length;
    await carol.typed(false);
    await eventually("the customer typing at the agent", () => (agent.conversation(id)?.typing === true ? true : undefined));
    await carol.stoppedTyping();
    await eventually("the customer stopped", () => (agent.conversation(id)?.typing === false ? true : undefined));
    // Never stored: the history after the cursor holds nothing new.
    await carol.resync();
    expect((await store.keys("item/")).length).toBe(stored);

    // The agent types: the customer is told who.
    await agent.signal(id, "typing");
    const typing = await eventually("the agent typing at the customer", () => events.find((e) => e.kind === "typing" && e.typing));
    expect(typing.kind === "typing" && typing.member).toBe("alice");
    expect(carol.typingNow()).toBe("alice");
    await agent.signal(id, "stopped");
    await eventually("the agent stopped", () => (carol.typingNow() === null ? true : undefined));

    // The agent answers; the customer saw it: one read receipt, not sent twice for the same line.
    const answer = await agent.send(id, "yes, how can I help?");
    await eventually("the answer at the customer", () => carol.history().find((l) => l.seq === answer));
    await carol.markRead();
    await eventually("the customer's read receipt at the agent", () => ((agent.conversation(id)?.readByCustomer ?? 0) >= answer ? true : undefined));
    const counters = await store.keys("counter/");
    const next = await Promise.all(counters.map((k) => store.get(k)));
    await carol.markRead();
    expect(await Promise.all(counters.map((k) => store.get(k)))).toEqual(next);

    // The agent reads: the customer's line gets its read mark.
    await agent.markRead(id);
    await eventually("the agent's read receipt", () => (carol.readUpTo() >= hello.seq ? true : undefined));
    expect(events.some((e) => e.kind === "read")).toBe(true);
    carol.stop();
    agent.stop();
  });
});
