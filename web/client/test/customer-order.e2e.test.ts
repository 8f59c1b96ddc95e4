/**
 * The customer's own messages take the ordered path (PROTOCOL §9.5, §13.10), against the real
 * relay: what a second tab of the same account sent may not have been handled by this one yet
 * (its push is on the way), so when this tab's own message is stored right after it, the
 * history from the cursor is read first and the other tab's line is shown, in order. An item the relay withholds (dropped from the push and from every history page) is
 * told as `withheld` at once and again with each request made for it, not skipped over.
 */
import { describe, expect, it } from "vitest";
import { MemoryStore } from "../src/index.js";
import { onlineCustomer, orgOnRelay } from "./customer-fixture.js";
import { eventually } from "./relay.js";
import { tampering, type Frame } from "./tamper.js";

describe("the customer's own message after an item this tab has not seen", () => {
  const fx = orgOnRelay("web-order");

  it("shows a second tab's message stored just before this tab's own, in order", async () => {
    const store = new MemoryStore();
    const { customer: tabA, events } = await onlineCustomer(fx.options(store));
    await tabA.send("first, from tab A");
    // Tab B: the same account (the same store, as two tabs share IndexedDB).
    const { customer: tabB } = await onlineCustomer(fx.options(store));
    const fromB = await tabB.send("second, from tab B");
    const fromA = await tabA.send("third, from tab A");
    expect(fromA.seq).toBe(fromB.seq + 1);
    expect(tabA.history().map((l) => l.text)).toEqual(["first, from tab A", "second, from tab B", "third, from tab A"]);
    // Handled in order (the history read before the own message), not filled in afterwards.
    expect(events.flatMap((e) => (e.kind === "line" ? [e.line.text] : []))).toEqual(["first, from tab A", "second, from tab B", "third, from tab A"]);
    expect(events.filter((e) => e.kind === "withheld")).toEqual([]);
    tabA.stop();
    tabB.stop();
  });

  it("detects an item the relay withholds before this tab's own message as a hole", async () => {
    let withholdNextPush = false;
    let withheld: number | null = null;
    const socket = tampering((f) => {
      const pushed = (f.push as Frame | undefined)?.item as Frame | undefined;
      if (withholdNextPush && typeof pushed?.seq === "number") {
        withholdNextPush = false;
        withheld = pushed.seq;
        return false;
      }
      const items = ((f.response as Frame | undefined)?.body as Frame | undefined)?.items as Frame | undefined;
      if (withheld !== null && Array.isArray(items?.items)) items.items = (items.items as Frame[]).filter((it) => it.seq !== withheld);
      return true;
    });
    const { customer: carol, events } = await onlineCustomer(fx.options(new MemoryStore(), { socket }));
    await carol.send("is anyone there?");
    const id = carol.conversationId() ?? "";
    withholdNextPush = true;
    await fx.org.agent(["send", "--conversation", id, "this answer is withheld"]);
    const seq = await eventually("the push withheld", () => withheld ?? undefined);
    const mine = await carol.send("hello?");
    expect(mine.seq).toBeGreaterThan(seq);
    // Told as found, then as asked for again: the same run, one more request.
    const told = await eventually("the hole asked for again", () => {
      const all = events.flatMap((e) => (e.kind === "withheld" ? [e.holes] : []));
      return all.some((hs) => hs.some((h) => h.tries > 0)) ? all : undefined;
    });
    for (const holes of told) expect(holes.map((h) => [h.from, h.to])).toEqual([[seq, seq]]);
    expect(told[0]?.[0]?.tries).toBe(0);
    expect(told.at(-1)?.[0]?.tries).toBe(1);
    expect(carol.withheld()).toEqual([{ from: seq, to: seq, tries: 1 }]);
    expect(carol.history().map((l) => l.text)).toEqual(["is anyone there?", "hello?"]);
    carol.stop();
  });
});
