/**
 * Issue 20: the account's own items from another device, pushed (PROTOCOL §13.11), against the
 * real relay and `sealdesk` binaries. The relay pushes a message or an epoch record to every
 * connection of its audience but the one that stored it, so another device of the same account
 * gets it at once, and takes it as its own: a customer's copied store (a second device) shows
 * the first device's line as its own, once, and sends on after its counter; the TypeScript
 * agent beside the CLI (one identity) is pushed the CLI's epoch and line — no sync asked — and
 * sends next without a `stale_epoch`. A pushed own message whose signature was broken on the
 * way is refused, not shown.
 */
import { describe, expect, it } from "vitest";
import { MemoryStore, type CustomerEvent } from "../src/index.js";
import { onlineAgent } from "./agent-fixture.js";
import { onlineCustomer, orgOnRelay } from "./customer-fixture.js";
import { eventually } from "./relay.js";
import { tampering, type Frame } from "./tamper.js";

/** A copy of `store`: a second device of its account (the same keys, a store of its own). */
async function copyOf(store: MemoryStore): Promise<MemoryStore> {
  const copy = new MemoryStore();
  for (const k of await store.keys("")) {
    const v = await store.get(k);
    if (v !== undefined) await copy.put(k, v);
  }
  return copy;
}

/** The laptop, its first line sent, and a phone on a copy of its store, online and read up. */
async function twins(fx: ReturnType<typeof orgOnRelay>, phoneSocket?: Parameters<typeof tampering>[0]) {
  const store = new MemoryStore();
  const { customer: laptop, events: laptopEvents } = await onlineCustomer(fx.options(store));
  const first = await laptop.send("first");
  const phoneOpts = fx.options(await copyOf(store));
  const { customer: phone, events } = await onlineCustomer(phoneSocket === undefined ? phoneOpts : { ...phoneOpts, socket: tampering(phoneSocket) });
  await eventually("the first line on the phone", () => phone.history().find((l) => l.seq === first.seq));
  return { laptop, laptopEvents, phone, events };
}

const troubles = (events: CustomerEvent[]): CustomerEvent[] => events.filter((e) => e.kind === "error" || e.kind === "refused");

describe("the account's own items from another device", () => {
  const fx = orgOnRelay("web-own-items");

  it("a customer's second device is pushed her line, shows it as her own once, and sends on after it", async () => {
    const { laptop, laptopEvents, phone, events } = await twins(fx);
    // From here on the phone reads nothing by itself: the line comes by push.
    const fromLaptop = await laptop.send("from the laptop");
    const seen = await eventually("the laptop's line on the phone", () => phone.history().find((l) => l.seq === fromLaptop.seq));
    expect(seen.mine).toBe(true);
    expect(seen.text).toBe("from the laptop");
    const fromPhone = await phone.send("from the phone");
    // Its counter is past the one it was pushed: the two devices never seal under one.
    if (fromPhone.epoch === fromLaptop.epoch) expect(fromPhone.counter).toBeGreaterThan(fromLaptop.counter);
    const back = await eventually("the phone's line on the laptop", () => laptop.history().find((l) => l.seq === fromPhone.seq));
    expect(back.mine).toBe(true);
    const texts = ["first", "from the laptop", "from the phone"];
    expect(phone.history().map((l) => l.text)).toEqual(texts);
    expect(laptop.history().map((l) => l.text)).toEqual(texts);
    expect(troubles(events)).toEqual([]);
    expect(troubles(laptopEvents)).toEqual([]);
    laptop.stop();
    phone.stop();
  });

  it("a pushed own message whose signature was broken on the way is refused, not shown", async () => {
    let breakNext = false;
    const { laptop, phone, events } = await twins(fx, (f) => {
      const item = ((f.push as Frame | undefined)?.item as Frame | undefined)?.item as Frame | undefined;
      const sig = (item?.message as Frame | undefined)?.signature;
      if (breakNext && sig instanceof Uint8Array) sig[0] = (sig[0] ?? 0) ^ 1;
    });
    breakNext = true;
    const forged = await laptop.send("altered on the way");
    const refused = await eventually("the refusal", () => events.find((e) => e.kind === "refused" && e.seq === forged.seq));
    expect(refused.kind === "refused" && refused.reason).toContain("bad_signature");
    expect(phone.history().map((l) => l.text)).toEqual(["first"]);
    laptop.stop();
    phone.stop();
  });

  it("the agent beside the CLI is pushed the CLI's epoch and line, and sends next without stale_epoch", async () => {
    const { agent, events } = await onlineAgent(fx.org.agentHome, fx.relay.url);
    const { customer: dave } = await onlineCustomer(fx.options(new MemoryStore()));
    await dave.send("is my order late?");
    const id = dave.conversationId() ?? "";
    const line = (text: string) => () => agent.conversation(id)?.lines.find((l) => l.text === text);
    await eventually("the customer's line at the agent", line("is my order late?"));
    // The console answers in an epoch it makes; the CLI then opens one of its own (its key made
    // the console's, its vault did not), and both its record and its line come by push alone.
    await agent.send(id, "checking");
    const before = agent.epochRecords(id).length;
    await fx.org.agent(["send", "--conversation", id, "from the CLI"]);
    const fromCli = await eventually("the CLI's line at the agent", line("from the CLI"));
    expect(fromCli.mine).toBe(true);
    expect(agent.epochRecords(id).length).toBeGreaterThan(before);
    const next = await agent.send(id, "and from the console");
    const atCustomer = await eventually("the console's line at the customer", () => dave.history().find((l) => l.seq === next));
    const cliEpoch = dave.history().find((l) => l.text === "from the CLI")?.epoch ?? -1;
    expect(atCustomer.epoch).toBeGreaterThan(cliEpoch);
    expect(agent.conversation(id)?.lines.filter((l) => l.text === "from the CLI")).toHaveLength(1);
    expect(events.filter((e) => e.kind === "error")).toEqual([]);
    agent.stop();
    dave.stop();
  });
});
