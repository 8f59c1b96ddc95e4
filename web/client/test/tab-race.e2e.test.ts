/**
 * Issue 22: two tabs of one account sending at once, against the real relay and `sealdesk`
 * binaries, with no race left to timing. The Rust client had a race here: two processes
 * reserved counters n and n+1 under the vault's lock, n+1 reached the relay first, and the
 * relay refused n as `counter_reused` (it refuses any counter below the highest it stored).
 * In the browser the send lock is held from the counter's reservation to the relay's answer
 * (`member.ts`, `customer-send.ts`, `agent.ts`), so a tab cannot be overtaken by another tab
 * of the same store: here one tab's `send` is held on its way to the relay while the other
 * tab sends, and the other tab must wait for the lock — it puts nothing on the wire — until
 * the first is answered; then both are stored, in order, under distinct counters of one epoch,
 * and delivered once.
 *
 * Each case runs with the lock the widget and the console use (one lock shared by the tabs,
 * as a Web Lock is: `sendLock`) and with none passed — the library's use in Node, where the
 * store's lock in this realm is taken (`send-lock.ts`). One instance sending twice at once
 * without a lock is covered too: without the store's lock both sends would read one counter
 * and seal two messages under it.
 */
import { describe, expect, it } from "vitest";
import { MemoryStore, type Agent, type ChatLine, type SendLock } from "../src/index.js";
import { onlineAgent } from "./agent-fixture.js";
import { onlineCustomer, orgOnRelay } from "./customer-fixture.js";
import { sendLock } from "./recovery-fixture.js";
import { eventually, times } from "./relay.js";
import { drained, wire, type Wire } from "./restore-wire.js";

/** The two locks a tab may have: the one the pages pass, or none (the store's own in this realm). */
const LOCKS: [string, () => SendLock | undefined][] = [
  ["the tabs' shared lock (as the widget's Web Lock)", () => sendLock()],
  ["no lock passed (the store's lock in this realm)", () => undefined],
];

describe("two tabs of one account sending at once (issue 22)", () => {
  const fx = orgOnRelay("web-tab-race");

  /**
   * Tab A's `send` is held before the relay sees it (its counter taken); tab B sends meanwhile.
   * B must not put its `send` on the wire while A waits for its answer; released, A's is
   * stored first and B's after. Returns what each send resolved to.
   */
  async function race<T>(a: Wire, sendA: () => Promise<T>, b: Wire, sendB: () => Promise<T>): Promise<[T, T]> {
    const hold = a.holdNext("send");
    const first = sendA();
    await eventually("tab A's send held", () => hold.entered || undefined);
    const bSends = b.sent.length;
    const second = sendB();
    try {
      // Everything tab B can do without the relay has run (MemoryStore answers at once).
      await drained();
      expect(b.sent.length).toBe(bSends);
    } finally {
      // Let go in any case, so a failed check leaves no send waiting on the hold.
      hold.release();
      await Promise.allSettled([first, second]);
    }
    const done = await Promise.all([first, second]);
    expect([a.reused, b.reused]).toEqual([0, 0]);
    return done;
  }

  it.each(LOCKS)("customer tabs, %s: one waits for the other's answer, both delivered once in one epoch", async (_, lockOf) => {
    const store = new MemoryStore();
    const lock = lockOf();
    const withLock = lock === undefined ? {} : { withSendLock: lock };
    const [wa, wb] = [wire(), wire()];
    const { customer: a } = await onlineCustomer(fx.options(store, { ...withLock, socket: wa.socket }));
    const opened = await a.send("opening line");
    const { customer: b } = await onlineCustomer(fx.options(store, { ...withLock, socket: wb.socket }));
    await eventually("the opening line in tab B", () => b.history().find((l) => l.seq === opened.seq));

    const [fromA, fromB] = await race(wa, () => a.send("from tab A"), wb, () => b.send("from tab B"));
    expect(fromB.seq).toBeGreaterThan(fromA.seq);
    const sent = [opened, fromA, fromB].map((l: ChatLine) => [l.epoch, l.counter]);
    expect(sent).toEqual([
      [0, 0],
      [0, 1],
      [0, 2],
    ]);
    const id = a.conversationId() ?? "";
    const agentSaw = await fx.org.agent(["history", "--conversation", id]);
    expect([times(agentSaw, "from tab A"), times(agentSaw, "from tab B")]).toEqual([1, 1]);
    for (const tab of [a, b]) {
      await eventually("both lines in each tab", () => (tab.history().filter((l) => l.text.startsWith("from tab")).length === 2 ? true : undefined));
      expect(tab.history().map((l) => [l.text, l.epoch])).toEqual([
        ["opening line", 0],
        ["from tab A", 0],
        ["from tab B", 0],
      ]);
    }
    a.stop();
    b.stop();
  });

  it("one customer, no lock passed, two sends started at once: two counters, both stored", async () => {
    const w = wire();
    const { customer } = await onlineCustomer(fx.options(new MemoryStore(), { socket: w.socket }));
    await customer.send("opening line");
    const lines = await Promise.all([customer.send("one"), customer.send("two")]);
    expect(lines.map((l) => [l.text, l.epoch, l.counter])).toEqual([
      ["one", 0, 1],
      ["two", 0, 2],
    ]);
    expect(w.reused).toBe(0);
    customer.stop();
  });

  it.each(LOCKS)("agent tabs, %s: one waits for the other's answer, both delivered once in the agent's epoch", async (_, lockOf) => {
    const lock = lockOf();
    const { customer } = await onlineCustomer(fx.options(new MemoryStore()));
    const hello = await customer.send(`hello (${String(lock !== undefined)})`);
    const id = customer.conversationId() ?? "";
    const store = new MemoryStore();
    const [wa, wb] = [wire(), wire()];
    const { agent: a } = await onlineAgent(fx.org.agentHome, fx.relay.url, wa.socket, store, lock);
    await eventually("the conversation in agent tab A", () => a.conversation(id)?.lines.find((l) => l.seq === hello.seq));
    // The agent's first send opens an epoch of its own (epoch 1): both tabs send in it.
    const first = await a.send(id, "first answer");
    const { agent: b } = await onlineAgent(fx.org.agentHome, fx.relay.url, wb.socket, store, lock);
    await eventually("the first answer in agent tab B", () => b.conversation(id)?.lines.find((l) => l.seq === first));
    const epochs = (x: Agent): number => x.epochRecords(id).length;
    expect([epochs(a), epochs(b)]).toEqual([2, 2]);

    const [seqA, seqB] = await race(wa, () => a.send(id, "from agent tab A"), wb, () => b.send(id, "from agent tab B"));
    expect(seqB).toBeGreaterThan(seqA);
    const seen = await eventually("both answers at the customer", () => {
      const l = customer.history().filter((x) => !x.mine);
      return l.length === 3 ? l : undefined;
    });
    expect(seen.map((l) => [l.text, l.epoch, l.counter])).toEqual([
      ["first answer", 1, 0],
      ["from agent tab A", 1, 1],
      ["from agent tab B", 1, 2],
    ]);
    expect([epochs(a), epochs(b)]).toEqual([2, 2]);
    a.stop();
    b.stop();
    customer.stop();
  });
});
