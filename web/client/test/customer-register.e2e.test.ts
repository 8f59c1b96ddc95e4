/**
 * When a browser customer's account reaches the relay (issue 22), against the real relay and
 * `sealdesk` binaries: a customer loaded and online registers nothing (every request but
 * `register` and `get_recovery` needs a registered card, so it asks nothing at all); `begin` (the
 * widget: the message box focused) registers it and shows the policy; the first message opens
 * the conversation. A reload between the registration and the first message loses and repeats
 * nothing; a second tab on the same store follows without a second account; and a fresh browser
 * profile that recovers another account leaves its own throwaway account off the relay.
 *
 * The directory is read with `get_card` from a registered account of the test's own.
 */
import { IdentityKeys, issueCard, toHex } from "@sealdesk/protocol";
import { describe, expect, it } from "vitest";
import { Customer, MemoryStore, Session, recoverAccount, type CustomerEvent } from "../src/index.js";
import { onlineCustomer, orgOnRelay, random, now, socket } from "./customer-fixture.js";
import { eventually } from "./relay.js";

describe("a browser customer registers on first need", () => {
  const fx = orgOnRelay("web-register");

  /** Whether the relay's directory holds a card named `name` (asked by a registered account of the test). */
  async function onRelay(name: string): Promise<boolean> {
    const keys = IdentityKeys.generate(random);
    const s = await Session.connect(fx.relay.url, keys, issueCard(keys, `lookup-${toHex(random(6))}`, "customer", now()), socket, null);
    try {
      await s.register();
      const r = await s.request({ kind: "get_card", name });
      if (r.kind === "card") return r.card.name === name;
      if (r.kind === "error" && r.code === "not_found") return false;
      throw new Error(`get_card answered ${r.kind}`);
    } finally {
      s.close();
    }
  }

  /** The conversations the relay lists for the agent alice (one line per conversation). */
  async function agentConversations(): Promise<string[]> {
    return (JSON.parse(await fx.org.agent(["conversations", "--json"])) as { conversations: { conversation: string }[] }).conversations.map((c) => c.conversation);
  }

  it("loaded and online: nothing on the relay; begun: registered, the policy shown; a reload before the first message repeats nothing", async () => {
    const store = new MemoryStore();
    const { customer: carol, events } = await onlineCustomer(fx.options(store));
    expect(carol.card.name).toMatch(/^web-[0-9a-f]{12}$/);
    expect(carol.hasBegun()).toBe(false);
    expect(await onRelay(carol.card.name)).toBe(false);
    expect(events.some((e) => e.kind === "policy")).toBe(false);
    expect(carol.policy).toBeNull();

    // The customer goes to write: the card is registered, then the policy checked and shown.
    await carol.begin();
    const shown = events.find((e) => e.kind === "policy");
    expect(shown?.kind === "policy" && shown.fingerprint).toBe(fx.org.fingerprint);
    expect(await onRelay(carol.card.name)).toBe(true);
    expect(carol.conversationId()).toBeNull();
    // Begun twice (the box focused again): nothing asked again on this session.
    await carol.begin();
    expect(events.filter((e) => e.kind === "policy")).toHaveLength(1);
    carol.stop();

    // A reload after the registration, before the first message: the account the relay knows
    // begins by itself (the policy shown at once), and one message opens one conversation.
    const before = await agentConversations();
    const again = await Customer.load(fx.options(store));
    const seen: CustomerEvent[] = [];
    again.on((e) => seen.push(e));
    again.start();
    await eventually("the policy after the reload", () => seen.find((e) => e.kind === "policy"));
    expect(again.card.name).toBe(carol.card.name);
    expect(again.hasBegun()).toBe(true);
    const line = await again.send("my order 1234 never arrived");
    const id = again.conversationId() ?? "";
    expect(line.mine).toBe(true);
    expect((await agentConversations()).filter((c) => !before.includes(c))).toEqual([id]);
    expect(seen.filter((e) => e.kind === "error")).toEqual([]);
    again.stop();
  });

  it("the first message registers a customer that never began, and opens the conversation", async () => {
    const { customer: erin, events } = await onlineCustomer(fx.options(new MemoryStore()));
    expect(await onRelay(erin.card.name)).toBe(false);
    const line = await erin.send("hello?");
    expect(line.mine).toBe(true);
    expect(await onRelay(erin.card.name)).toBe(true);
    expect(await fx.org.agent(["history", "--conversation", erin.conversationId() ?? ""])).toContain("hello?");
    expect(events.filter((e) => e.kind === "error")).toEqual([]);
    erin.stop();
  });

  it("two tabs on one store: the one that writes registers, the other follows the conversation without a second account", async () => {
    const store = new MemoryStore();
    const { customer: a } = await onlineCustomer(fx.options(store));
    const { customer: b, events: bEvents } = await onlineCustomer(fx.options(store));
    expect(b.card.name).toBe(a.card.name);
    const line = await a.send("from the first tab");
    // The other tab is told (the widget's BroadcastChannel) and reads what the first stored; its
    // session, opened before the registration, registers on the way (the relay answers ok).
    await b.resync();
    expect(b.conversationId()).toBe(a.conversationId());
    await eventually("the line in the second tab", () => b.history().find((l) => l.seq === line.seq));
    const next = await b.send("from the second tab");
    expect(next.counter).toBe(line.counter + 1);
    expect(bEvents.filter((e) => e.kind === "error")).toEqual([]);
    expect(await onRelay(a.card.name)).toBe(true);
    a.stop();
    b.stop();
  });

  it("a fresh profile that recovers another account registers nothing of its own", async () => {
    // The account to recover: a browser customer with a chat and a recovery code.
    const { customer: dave } = await onlineCustomer(fx.options(new MemoryStore()));
    await dave.send("order 77 is late");
    const code = await dave.newRecoveryCode();
    dave.stop();

    // A new profile: the widget loads (a fresh account made in the store, the session up), and
    // the customer chooses "I have a recovery code" instead of writing.
    const store = new MemoryStore();
    const { customer: fresh } = await onlineCustomer(fx.options(store));
    const throwaway = fresh.card.name;
    fresh.stop();
    const done = await recoverAccount({ url: fx.relay.url, socket, store, org: fx.org.org, masterFingerprint: fx.org.fingerprint, random, now, name: dave.card.name, code });
    expect(done.conversation).toBe(dave.conversationId());

    // The page reloads as the recovered account: it reads its chat and writes on.
    const { customer: back } = await onlineCustomer(fx.options(store));
    expect(back.card.name).toBe(dave.card.name);
    await eventually("the history", () => back.history().find((l) => l.text === "order 77 is late"));
    await back.send("back, in a new profile");
    back.stop();
    expect(await onRelay(throwaway)).toBe(false);
  });
});
