/**
 * Issue 20: the account's own items from another device, pushed (PROTOCOL §13.11), against the
 * real relay and `sealdesk` binaries. The relay pushes a message or an epoch record to every
 * connection of its audience but the one that stored it, so another device of the same account
 * gets it at once, and takes it as its own: a customer's copied store (a second device) shows
 * the first device's line as its own, once, and sends on after its counter; the TypeScript
 * agent beside the CLI (one identity) is pushed the CLI's epoch and line — no sync asked — and
 * sends next without a `stale_epoch`. A pushed own message whose signature was broken on the
 * way is refused, not shown. A message a device stores itself is handled in turn with what it
 * was pushed (`SyncedConversation.stored`): never before an item still being kept, at a
 * customer's tab or an agent's. Those two tests hold the pushed line's handling on a store
 * operation its handling must make (a customer keeps the item; an agent raises its counter past
 * it, §13.11), then wait for the first of two events: the tab's own message handled (kept, shown,
 * or its send done), a bug, or the message handed to the ordered path, whose waiting is
 * `synced-claimed.test.ts`'s. No wait on the event loop going quiet: whatever I/O the send's path
 * does before either, the test sees which came first.
 */
import { describe, expect, it } from "vitest";
import { AGENT_RECORDS } from "../src/agent-model.js";
import { MemoryStore, RECORDS, SyncedConversation, type CustomerEvent, type Store } from "../src/index.js";
import { onlineAgent } from "./agent-fixture.js";
import { onlineCustomer, orgOnRelay } from "./customer-fixture.js";
import { eventually } from "./relay.js";
import { tampering, variantOf, type Frame } from "./tamper.js";

/** A copy of `store`: a second device of its account (the same keys, a store of its own). */
async function copyOf(store: MemoryStore): Promise<MemoryStore> {
  const copy = new MemoryStore();
  for (const k of await store.keys("")) {
    const v = await store.get(k);
    if (v !== undefined) await copy.put(k, v);
  }
  return copy;
}

/** A store operation a `HeldStore` can hold. */
type HeldOp = "put" | "get";

/**
 * One tab's view of a store shared with another tab, whose next operation of the given kinds on
 * a matching key, once armed (`holdNext`), waits until released: a tab still handling an item it
 * was pushed (keeping it, a customer; raising its counter past it, an agent) while something else
 * happens. Every put is noted as it starts (`puts`), held or not.
 */
class HeldStore implements Store {
  private hold: { ops: readonly HeldOp[]; matches: (key: string) => boolean; entered: boolean; gate: Promise<void> } | null = null;
  /** The keys put so far, in the order the puts started. */
  readonly puts: string[] = [];

  constructor(private readonly shared: Store) {}

  /** Holds this tab's next operation of a kind in `ops` on a key `matches` accepts; `entered` once it waits, `release` lets it (and the handling) go on. */
  holdNext(ops: readonly HeldOp[], matches: (key: string) => boolean): { readonly entered: boolean; release: () => void } {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const hold = { ops, matches, entered: false, gate, release: () => release() };
    this.hold = hold;
    return hold;
  }

  /** Holds this tab's next put of a conversation item (a customer keeps every item it handles). */
  holdNextItem(): { readonly entered: boolean; release: () => void } {
    return this.holdNext(["put"], (key) => key.startsWith(RECORDS.itemPrefix));
  }

  private async pass(op: HeldOp, key: string): Promise<void> {
    const hold = this.hold;
    if (hold !== null && hold.ops.includes(op) && hold.matches(key)) {
      this.hold = null;
      hold.entered = true;
      await hold.gate;
    }
  }

  async put(key: string, value: Uint8Array): Promise<void> {
    this.puts.push(key);
    await this.pass("put", key);
    return this.shared.put(key, value);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    await this.pass("get", key);
    return this.shared.get(key);
  }

  delete(key: string): Promise<void> {
    return this.shared.delete(key);
  }

  keys(prefix: string): Promise<string[]> {
    return this.shared.keys(prefix);
  }
}

/**
 * Watches, from now until `restore`, for an item handed to the ordered path a tab's own stored
 * item takes (`SyncedConversation.stored`): `handed()` turns true at the call. That is the
 * sending tab's own work for its message done — however many store reads, requests or other
 * macrotasks it took to get there — and the item's turn from then on the ordered path's, which
 * `synced-claimed.test.ts` holds to waiting behind a push still being handled and an item
 * claimed elsewhere. Watch only while the other tab sends nothing.
 */
function watchOrderedPath(): { handed: () => boolean; restore: () => void } {
  const proto = SyncedConversation.prototype;
  const { stored } = proto;
  let handed = false;
  proto.stored = function (this: SyncedConversation, ...args: Parameters<typeof stored>) {
    handed = true;
    return stored.apply(this, args);
  };
  return {
    handed: () => handed,
    restore: () => {
      proto.stored = stored;
    },
  };
}

/** A promise's outcome as it comes: `done()` is true once it settled (either way). */
function tracked<T>(p: Promise<T>): { promise: Promise<T>; done: () => boolean } {
  let done = false;
  const promise = p.finally(() => {
    done = true;
  });
  return { promise, done: () => done };
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

  it("a message one tab stores while the other tab's line pushed to it is still being kept waits for that line (issue 20)", async () => {
    // Two tabs of one browser: one store (their counters shared), a connection each.
    const store = new MemoryStore();
    const { customer: tabA } = await onlineCustomer(fx.options(store));
    const first = await tabA.send("first");
    let storedAnswers = 0;
    const held = new HeldStore(store);
    const counting = tampering((f) => {
      if (variantOf((f.response as Frame | undefined)?.body) === "stored") storedAnswers++;
    });
    const { customer: tabB, events } = await onlineCustomer({ ...fx.options(held), socket: counting });
    await eventually("the first line in tab B", () => tabB.history().find((l) => l.seq === first.seq));
    const shown = (): number[] => events.flatMap((e) => (e.kind === "line" ? [e.line.seq] : []));
    const before = shown();
    const hold = held.holdNextItem();
    const fromA = await tabA.send("from tab A");
    // Pushed to tab B: claimed there (the cursor is past it), its keeping held.
    await eventually("tab A's line held in tab B", () => hold.entered || undefined);
    const answered = storedAnswers;
    // The items tab B keeps from now on (its send puts its counter first: not an item).
    const keptSince = held.puts.length;
    const itemsKept = (): string[] => held.puts.slice(keptSince).filter((k) => k.startsWith(RECORDS.itemPrefix));
    const path = watchOrderedPath();
    const sending = tracked(tabB.send("from tab B"));
    // Tab B's own message handled (kept, shown, or the send done) before tab A's line is, or
    // handed to the ordered path, to wait there behind that line: whichever comes first,
    // whatever I/O the send takes to get there. Only a bug makes it the first.
    const handledFirst = (): boolean => shown().length > before.length || sending.done() || itemsKept().length > 0;
    let outcome: string;
    try {
      outcome = await eventually("tab B's message handled, or handed to the ordered path", () => (handledFirst() ? "handled first" : path.handed() ? "waits" : undefined));
    } finally {
      path.restore();
    }
    expect(outcome, "tab B handled its own message while tab A's line pushed to it was still being kept").toBe("waits");
    expect(storedAnswers).toBe(answered + 1);
    // Its own message is the next item after the cursor, but the one before is not handled
    // yet: it waits, as a push would, rather than being kept or shown (and the send done) first.
    expect(shown()).toEqual(before);
    expect(itemsKept()).toEqual([]);
    expect(sending.done()).toBe(false);
    hold.release();
    const fromB = await sending.promise;
    expect(fromB.seq).toBeGreaterThan(fromA.seq);
    expect(shown()).toEqual([...before, fromA.seq, fromB.seq]);
    expect(tabB.history().map((l) => l.text)).toEqual(["first", "from tab A", "from tab B"]);
    expect(troubles(events)).toEqual([]);
    tabA.stop();
    tabB.stop();
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

  it("an agent's message one tab stores while its other tab's line pushed to it is still being handled waits for that line (issue 20)", async () => {
    const { customer: dave } = await onlineCustomer(fx.options(new MemoryStore()));
    await dave.send("where is my parcel?");
    const id = dave.conversationId() ?? "";
    // Two console tabs of one agent: one store (the epoch it made and its counters shared), a
    // connection each. Tab A answers first, in an epoch it makes (so both tabs seal in it).
    const store = new MemoryStore();
    const { agent: tabA } = await onlineAgent(fx.org.agentHome, fx.relay.url, undefined, store);
    const seqs = (agent: typeof tabA) => (): number[] => agent.conversation(id)?.lines.map((l) => l.seq) ?? [];
    await eventually("the customer's line in tab A", () => seqs(tabA)().length > 0 || undefined);
    const first = await tabA.send(id, "first");
    let storedAnswers = 0;
    const counting = tampering((f) => {
      if (variantOf((f.response as Frame | undefined)?.body) === "stored") storedAnswers++;
    });
    const held = new HeldStore(store);
    const { agent: tabB, events } = await onlineAgent(fx.org.agentHome, fx.relay.url, counting, held);
    await eventually("the first line in tab B", () => seqs(tabB)().includes(first) || undefined);
    const shown = seqs(tabB);
    const before = shown();
    // Tab B takes tab A's line, pushed to it, as its own: its counter is never sealed again here
    // (§13.11), so the handling raises this account's counter in that epoch to past it. On a
    // store of gets and puts a raise reads the key, or writes it: held at the first of either,
    // the line claimed (the cursor is past it), its handling not ended.
    // (The epoch tab A made for "first" is the latest, and it seals its next line in it too.)
    const epoch = Math.max(...tabB.epochRecords(id).map((r) => Number((r as { epoch: unknown }).epoch)));
    const hold = held.holdNext(["get", "put"], (key) => key === AGENT_RECORDS.counter(id, epoch));
    const fromA = await tabA.send(id, "from tab A");
    await eventually("tab A's line held in tab B", () => hold.entered || undefined);
    const answered = storedAnswers;
    const path = watchOrderedPath();
    const sending = tracked(tabB.send(id, "from tab B"));
    // Tab B's own message handled (shown, or the send done) before tab A's line is, or handed
    // to the ordered path, to wait there behind that line: whichever comes first, whatever I/O
    // the send takes to get there. Only a bug makes it the first.
    const handledFirst = (): boolean => shown().length > before.length || sending.done();
    let outcome: string;
    try {
      outcome = await eventually("tab B's message handled, or handed to the ordered path", () => (handledFirst() ? "handled first" : path.handed() ? "waits" : undefined));
    } finally {
      path.restore();
    }
    expect(outcome, "tab B handled its own message while tab A's line pushed to it was still being handled").toBe("waits");
    expect(storedAnswers).toBe(answered + 1);
    // Its own message is the next item after the cursor, but the one before is not handled
    // yet: it waits, as a push would, rather than being shown (and the send done) first.
    expect(shown()).toEqual(before);
    expect(sending.done()).toBe(false);
    hold.release();
    const fromB = await sending.promise;
    expect(fromB).toBeGreaterThan(fromA);
    expect(shown()).toEqual([...before, fromA, fromB]);
    const lines = tabB.conversation(id)?.lines ?? [];
    expect(lines.slice(-3).map((l) => [l.text, l.mine])).toEqual([
      ["first", true],
      ["from tab A", true],
      ["from tab B", true],
    ]);
    expect(events.filter((e) => e.kind === "error")).toEqual([]);
    tabA.stop();
    tabB.stop();
    dave.stop();
  });
});
