/**
 * When a browser customer's account reaches the relay (issue 22), against the real relay and
 * `sealdesk` binaries: a customer loaded and online reads and shows the org's policy on its
 * unregistered session (PROTOCOL §13.7) and registers nothing; the first message registers it
 * and opens exactly one conversation. A wrong fingerprint is refused at load with nothing
 * registered. A relay that serves the policy to registered accounts only (older than §13.7's
 * public policy; a tampering socket answers `not_registered` as it did) gets the registration at
 * `begin` (the widget: the message box focused), and the policy then. `begin` before the first
 * message, then a reload, loses and repeats nothing; a second tab on the same store follows
 * without a second account; and a fresh browser profile that recovers another account leaves
 * its own throwaway account off the relay.
 *
 * The directory is read with `get_card` from a registered account of the test's own.
 */
import { describe, expect, it } from "vitest";
import { Customer, CustomerError, MemoryStore, Session, recoverAccount, type CustomerEvent } from "../src/index.js";
import { cardOnRelay, onlineCustomer, orgOnRelay, random, now, socket } from "./customer-fixture.js";
import { eventually } from "./relay.js";
import { tampering, variantOf, type Frame } from "./tamper.js";

/**
 * A relay older than PROTOCOL §13.7's public policy, as its answers look: `get_policy` on a
 * session that has not registered is answered `not_registered` (the real relay's answer
 * replaced on its way). `refused` counts those answers.
 */
function policyForRegisteredOnly(): { socket: ReturnType<typeof tampering>; refused: () => number } {
  let refused = 0;
  // What this socket's session sent (the tests here use one session per socket).
  let registered = false;
  const unregisteredPolicy = new Set<number>();
  const socket = tampering(
    (f) => {
      const r = f.response as Frame | undefined;
      if (r === undefined || !unregisteredPolicy.has(r.id as number)) return;
      unregisteredPolicy.delete(r.id as number);
      r.body = { error: { code: "not_registered", message: "register this card first" } };
      refused += 1;
    },
    (f) => {
      const q = f.request as Frame | undefined;
      if (q === undefined) return;
      const kind = variantOf(q.body);
      if (kind === "register") registered = true;
      else if (kind === "get_policy" && !registered) unregisteredPolicy.add(q.id as number);
    },
  );
  return { socket, refused: () => refused };
}

describe("a browser customer registers on first need", () => {
  const fx = orgOnRelay("web-register");

  /** Whether the relay's directory holds a card named `name` (`cardOnRelay`). */
  async function onRelay(name: string): Promise<boolean> {
    return (await cardOnRelay(fx.relay.url, name)) !== null;
  }

  /** The conversations the relay lists for the agent alice (one line per conversation). */
  async function agentConversations(): Promise<string[]> {
    return (JSON.parse(await fx.org.agent(["conversations", "--json"])) as { conversations: { conversation: string }[] }).conversations.map((c) => c.conversation);
  }

  it("a visitor who loads the widget sees the policy and leaves nothing on the relay; the first message registers and opens one conversation", async () => {
    const { customer: vera, events } = await onlineCustomer(fx.options(new MemoryStore()));
    expect(vera.card.name).toMatch(/^web-[0-9a-f]{12}$/);
    // Shown before the customer does anything: read on the unregistered session.
    const shown = events.find((e) => e.kind === "policy");
    expect(shown?.kind === "policy" && shown.fingerprint).toBe(fx.org.fingerprint);
    expect(vera.masterFingerprint()).toBe(fx.org.fingerprint);
    expect(vera.hasBegun()).toBe(false);
    expect(vera.policyWaitsForBegin()).toBe(false);
    expect(await onRelay(vera.card.name)).toBe(false);
    expect(vera.conversationId()).toBeNull();

    const before = await agentConversations();
    const line = await vera.send("just a question about returns");
    expect(line.mine).toBe(true);
    expect(await onRelay(vera.card.name)).toBe(true);
    expect((await agentConversations()).filter((c) => !before.includes(c))).toEqual([vera.conversationId()]);
    expect(await fx.org.agent(["history", "--conversation", vera.conversationId() ?? ""])).toContain("just a question about returns");
    // Told once at load; the registration and the open did not tell it again (same version).
    expect(events.filter((e) => e.kind === "error")).toEqual([]);
    vera.stop();
  });

  it("refuses a wrong fingerprint at load, with nothing registered", async () => {
    const c = await Customer.load(fx.options(new MemoryStore(), { masterFingerprint: "00000 00000 00000 00000 00000 00000" }));
    const events: CustomerEvent[] = [];
    c.on((e) => events.push(e));
    c.start();
    const refused = await eventually("the refusal", () => events.find((e) => e.kind === "error"));
    expect(refused.kind === "error" && refused.error instanceof CustomerError && refused.error.failure).toBe("fingerprint_mismatch");
    expect(events.some((e) => e.kind === "policy")).toBe(false);
    expect(await onRelay(c.card.name)).toBe(false);
    c.stop();
  });

  it("a relay that serves the policy to registered accounts only: nothing until begun, then registered and the policy shown", async () => {
    const old = policyForRegisteredOnly();
    const { customer: olga, events } = await onlineCustomer(fx.options(new MemoryStore(), { socket: old.socket }));
    // The policy was asked for and refused as an older relay does: nothing shown, nothing registered.
    expect(old.refused()).toBe(1);
    expect(events.some((e) => e.kind === "policy" || e.kind === "error")).toBe(false);
    expect(olga.policy).toBeNull();
    expect(olga.policyWaitsForBegin()).toBe(true);
    expect(await onRelay(olga.card.name)).toBe(false);

    // The customer goes to write (the box focused): registered, then the policy shown.
    await olga.begin();
    const shown = events.find((e) => e.kind === "policy");
    expect(shown?.kind === "policy" && shown.fingerprint).toBe(fx.org.fingerprint);
    expect(olga.policyWaitsForBegin()).toBe(false);
    expect(await onRelay(olga.card.name)).toBe(true);
    const before = await agentConversations();
    await olga.send("hello from an older relay");
    expect((await agentConversations()).filter((c) => !before.includes(c))).toEqual([olga.conversationId()]);
    expect(old.refused()).toBe(1);
    expect(events.filter((e) => e.kind === "error")).toEqual([]);
    olga.stop();
  });

  it("begun before the first message: registered, the policy not asked again; a reload before the first message repeats nothing", async () => {
    const store = new MemoryStore();
    const { customer: carol, events } = await onlineCustomer(fx.options(store));
    expect(events.filter((e) => e.kind === "policy")).toHaveLength(1);
    expect(await onRelay(carol.card.name)).toBe(false);

    // Begun (a recovery code, a widget on an older relay): the card registered, the policy
    // checked on this session already.
    await carol.begin();
    expect(await onRelay(carol.card.name)).toBe(true);
    expect(carol.conversationId()).toBeNull();
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
