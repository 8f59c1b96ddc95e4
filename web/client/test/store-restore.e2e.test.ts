/**
 * Issue 20: a browser store restored from an old copy (its counters behind what its account
 * sent since), against the real relay and `sealdesk` binaries. The relay refuses a counter not
 * above the highest it stored (`counter_reused`, PROTOCOL §9.3), after it has seen the
 * ciphertext: a client that seals under a counter it used before shows the relay two
 * ciphertexts under one key and nonce. So:
 *
 * - the customer reads the conversation on its session before it takes a counter: its own
 *   messages read back raise the restored counters, even when the send comes while the first
 *   read is still on its way (held here), and no (sender, epoch, counter) goes on the wire twice;
 * - when the history no longer shows them (hidden here, as if the relay no longer had them), the
 *   relay's `counter_reused` makes the customer open a new epoch (a new key) and send there once:
 *   accepted, read by the agent; a second refusal is the caller's error, never a loop;
 * - a send refused `stale_epoch` (the agent's first answer opened its epoch while the send was
 *   on its way) goes in the agent's epoch, once, without an epoch of the customer's;
 * - the agent, refused `counter_reused`, opens a new epoch too rather than trying the counters
 *   after the refused one under the same key.
 */
import { describe, expect, it } from "vitest";
import { Customer, MemoryStore, RelayError, type ChatLine } from "../src/index.js";
import { onlineAgent } from "./agent-fixture.js";
import { onlineCustomer, orgOnRelay } from "./customer-fixture.js";
import { eventually, times } from "./relay.js";
import { copyOf, drained, reusedNonces, wire } from "./restore-wire.js";

describe("a store restored from an old copy (issue 20)", () => {
  const fx = orgOnRelay("web-restore");

  /**
   * A customer that sent "one", its store copied, then "two" and "three": returns the copy,
   * the lines sent after it, and the list every send of the test is recorded in.
   */
  async function sentAfterCopy(): Promise<{ copy: MemoryStore; later: ChatLine[]; sent: string[]; id: string }> {
    const sent: string[] = [];
    const first = wire(sent);
    const store = new MemoryStore();
    const { customer } = await onlineCustomer(fx.options(store, { socket: first.socket }));
    await customer.send("one");
    const copy = await copyOf(store);
    const later = [await customer.send("two"), await customer.send("three")];
    expect(later.map((l) => [l.epoch, l.counter])).toEqual([
      [0, 1],
      [0, 2],
    ]);
    const id = customer.conversationId() ?? "";
    customer.stop();
    return { copy, later, sent, id };
  }

  it("a send while the restored store's first read is on its way waits for it: its counters are raised, none sent twice", async () => {
    const { copy, sent, id } = await sentAfterCopy();
    const w = wire(sent);
    const hold = w.holdNext("history");
    const restored = await Customer.load(fx.options(copy, { socket: w.socket }));
    restored.start();
    await eventually("the restored tab's first read held", () => hold.entered || undefined);
    const sending = restored.send("four");
    try {
      // Everything the send can do before the read comes back has run (MemoryStore answers at once).
      await drained();
    } finally {
      hold.release();
    }
    const line = await sending;
    expect([line.epoch, line.counter]).toEqual([0, 3]);
    expect(reusedNonces(sent)).toEqual([]);
    expect(w.reused).toBe(0);
    expect(times(await fx.org.agent(["history", "--conversation", id]), "four")).toBe(1);
    restored.stop();
  });

  it("refused counter_reused (the history no longer shows its messages): the send goes in a new epoch, once, and the agent reads it", async () => {
    const { copy, later, sent, id } = await sentAfterCopy();
    const w = wire(sent);
    for (const l of later) w.hidden.add(l.seq);
    const { customer: restored } = await onlineCustomer(fx.options(copy, { socket: w.socket }));
    const line = await restored.send("four");
    // Counter 1 of epoch 0 was refused (the relay had it: the one nonce it saw twice, which no
    // client can avoid without knowing it); the message itself went in epoch 1, under a new key.
    expect(w.reused).toBe(1);
    expect([line.epoch, line.counter]).toEqual([1, 0]);
    expect(reusedNonces(sent)).toHaveLength(1);
    expect(reusedNonces(sent)[0]).toMatch(/\/0\/1$/);
    const agentSaw = await fx.org.agent(["history", "--conversation", id]);
    expect(times(agentSaw, "four")).toBe(1);
    // The next send stays in the new epoch.
    const next = await restored.send("five");
    expect([next.epoch, next.counter]).toEqual([1, 1]);
    expect(w.reused).toBe(1);
    restored.stop();
  });

  it("refused stale_epoch (the agent opened its epoch while the send was on its way): the send goes in the agent's, once, no epoch of its own", async () => {
    const w = wire();
    const { customer } = await onlineCustomer(fx.options(new MemoryStore(), { socket: w.socket }));
    await customer.send("one");
    const id = customer.conversationId() ?? "";
    // Held on its way to the relay: the agent opens its epoch meanwhile.
    const hold = w.holdNext("send");
    const sending = customer.send("four");
    await eventually("the send held", () => hold.entered || undefined);
    const { agent } = await onlineAgent(fx.org.agentHome, fx.relay.url);
    await eventually("the conversation at the agent", () => agent.conversation(id)?.lines.find((l) => l.text === "one"));
    await agent.send(id, "an answer");
    expect(agent.epochRecords(id)).toHaveLength(2);
    hold.release();
    const line = await sending;
    // Refused `stale_epoch` (the relay checks the epoch before the counter), then sent in epoch 1.
    expect([line.epoch, line.counter]).toEqual([1, 0]);
    expect(w.requests.filter((k) => k === "send")).toHaveLength(3);
    // Epoch 0 only, put when the conversation opened: none for the refused send.
    expect(w.requests.filter((k) => k === "put_epoch")).toHaveLength(1);
    expect(reusedNonces(w.sent)).toEqual([]);
    expect(times(await fx.org.agent(["history", "--conversation", id]), "four")).toBe(1);
    agent.stop();
    customer.stop();
  });

  it("refused again in the new epoch: the refusal is the caller's error, after one new epoch and two sends", async () => {
    const w = wire();
    const { customer } = await onlineCustomer(fx.options(new MemoryStore(), { socket: w.socket }));
    await customer.send("opening line");
    w.refuseSends = true;
    const before = w.sent.length;
    const refused = await customer.send("refused twice").then(
      () => null,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(RelayError);
    expect((refused as RelayError).code).toBe("counter_reused");
    // Counter 1 of epoch 0, then counter 0 of the epoch opened for it: two sends, no third.
    expect(w.sent.slice(before).map((x) => x.split("/").slice(1).join("/"))).toEqual(["0/1", "1/0"]);
    expect(w.reused).toBe(2);
    expect(reusedNonces(w.sent)).toEqual([]);
    customer.stop();
  });

  it("the agent refused counter_reused opens an epoch of its own: no counter of the refused epoch is tried again", async () => {
    const { customer } = await onlineCustomer(fx.options(new MemoryStore()));
    const hello = await customer.send("hello");
    const id = customer.conversationId() ?? "";
    const sent: string[] = [];
    const store = new MemoryStore();
    const { agent } = await onlineAgent(fx.org.agentHome, fx.relay.url, wire(sent).socket, store);
    await eventually("the conversation at the agent", () => agent.conversation(id)?.lines.find((l) => l.seq === hello.seq));
    await agent.send(id, "first answer");
    const copy = await copyOf(store);
    const later = [await agent.send(id, "second answer"), await agent.send(id, "third answer")];
    agent.stop();

    const w = wire(sent);
    for (const seq of later) w.hidden.add(seq);
    const { agent: restored } = await onlineAgent(fx.org.agentHome, fx.relay.url, w.socket, copy);
    await eventually("the conversation at the restored agent", () => restored.conversation(id)?.lines.find((l) => l.seq === hello.seq));
    await restored.send(id, "fourth answer");
    expect(w.reused).toBe(1);
    // Only the refused counter was seen twice; the answer went in a new epoch of the agent's.
    expect(reusedNonces(sent)).toHaveLength(1);
    const seen = await eventually("the fourth answer at the customer", () => customer.history().find((l) => l.text === "fourth answer"));
    expect([seen.epoch, seen.counter]).toEqual([2, 0]);
    restored.stop();
    customer.stop();
  });
});
