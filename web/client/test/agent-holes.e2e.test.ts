/**
 * The console's agent finds what the relay withholds (PROTOCOL §13.10, issue 20), against the
 * real relay behind a hostile socket (`tamper.ts`), as the Rust agent does
 * (`tests/tests/agent_holes.rs`): an item of the agent's epoch dropped from a push and a page
 * is asked for again and shown; a run the relay names as skipped while it claims an epoch the
 * agent is a member of is a lie, shown as withheld with the claim; the newest item withheld
 * from every page is found through the page's `head`; a relay that invents thousands of holes
 * gets at most `REFETCH_PAGES` history requests per try for them, and none while the cursor
 * stays; and an honest transferred conversation (the agent that handed it on, the agent it was
 * handed to) shows no hole.
 */
import { describe, expect, it } from "vitest";
import { equal, fromHex } from "@sealdesk/protocol";
import { MAX_HOLES, MemoryStore, REFETCH_LIMIT, REFETCH_PAGES, missingCount, type Agent, type Customer, type SocketFactory } from "../src/index.js";
import { certifiedAgent, onlineAgent } from "./agent-fixture.js";
import { onlineCustomer, orgOnRelay, type OrgOnRelay } from "./customer-fixture.js";
import { cli, eventually } from "./relay.js";
import { tampering, type Frame } from "./tamper.js";
import { page, withholding } from "./withhold.js";

/** The epoch of a message item (raw CBOR). */
function messageEpoch(it: Frame): number | undefined {
  const header = ((it.item as Frame | undefined)?.message as Frame | undefined)?.header as Frame | undefined;
  return typeof header?.epoch === "number" ? header.epoch : undefined;
}

/**
 * A hostile relay that withholds the item it is aimed at (`aim`) for good, passing it off in
 * each page as a skipped run claiming the item's epoch (`claimed`).
 */
function lying(): { socket: SocketFactory; aim: (seq: number) => void; target: () => number | null; claimed: () => number | undefined } {
  let target: number | null = null;
  let claimed: number | undefined;
  const socket = withholding(
    (seq) => seq === target,
    (_seq, it) => (claimed = messageEpoch(it)),
  );
  return { socket, aim: (seq) => (target = seq), target: () => target, claimed: () => claimed };
}

/**
 * The agent online through `socket`, a new customer whose first message `text` it shows; the
 * item after it is the one `target` is set to (the test's hostile relay withholds it).
 */
async function opened(fx: OrgOnRelay, socket: SocketFactory, text: string, target: (seq: number) => void, store = new MemoryStore()): Promise<{ agent: Agent; carol: Customer; id: string }> {
  const { agent } = await onlineAgent(fx.org.agentHome, fx.relay.url, socket, store);
  const { customer: carol } = await onlineCustomer(fx.options(new MemoryStore()));
  const first = await carol.send(text);
  const id = carol.conversationId() ?? "";
  await eventually("the first line", () => agent.conversation(id)?.lines.find((l) => l.seq === first.seq));
  target(first.seq + 1);
  return { agent, carol, id };
}

describe("the console's agent and the items the relay withholds", () => {
  const fx = orgOnRelay("web-agent-holes");

  it("asks again for an item of its epoch dropped from the push and the page, and shows it", async () => {
    let target: number | null = null;
    const socket = withholding((seq, nth) => seq === target && nth <= 1);
    const { agent, carol, id } = await opened(fx, socket, "my parcel is late", (seq) => (target = seq));
    await carol.send("it was due Monday");
    await carol.send("any news?");
    await eventually("the dropped line, asked for again", () => agent.conversation(id)?.lines.find((l) => l.text === "it was due Monday"));
    expect(agent.conversation(id)?.lines.map((l) => l.text)).toEqual(["my parcel is late", "it was due Monday", "any news?"]);
    expect(agent.conversation(id)?.withheld).toEqual([]);
    agent.stop();
    carol.stop();
  });

  it("shows a run that claims the agent's own epoch as withheld, with the false claim", async () => {
    const liar = lying();
    const { agent, carol, id } = await opened(fx, liar.socket, "hello", liar.aim);
    const target = liar.target();
    await carol.send("this one is passed off as skipped");
    const last = await carol.send("and this one comes");
    await eventually("the last line", () => agent.conversation(id)?.lines.find((l) => l.seq === last.seq));
    const w = await eventually("the lie shown", () => agent.conversation(id)?.withheld[0]);
    expect(liar.claimed()).toBeTypeOf("number");
    expect(w).toMatchObject({ from: target, to: target, claimed: liar.claimed() });
    expect(agent.conversation(id)?.withheld).toHaveLength(1);
    agent.stop();
    carol.stop();
  });

  it("finds the newest item withheld from every page through the page's head", async () => {
    let target: number | null = null;
    const socket = withholding((seq) => seq === target);
    const { agent, carol, id } = await opened(fx, socket, "hello again", (seq) => (target = seq));
    await carol.send("the newest, withheld");
    await agent.sync(id);
    const w = await eventually("the newest shown withheld", () => agent.conversation(id)?.withheld[0]);
    expect(w).toMatchObject({ from: target, to: target });
    expect(agent.conversation(id)?.lines.map((l) => l.text)).toEqual(["hello again"]);
    agent.stop();
    carol.stop();
  });

  it("keeps its holes over a reload: found again with their requests and the relay's claim, not asked for afresh", async () => {
    const liar = lying();
    const store = new MemoryStore();
    const { agent, carol, id } = await opened(fx, liar.socket, "before the reload", liar.aim, store);
    await carol.send("withheld for good");
    await carol.send("after it");
    await eventually("the hole asked for once", () => agent.conversation(id)?.withheld.find((h) => h.tries === 1));
    // The cursor moves: asked for a second time.
    const last = await carol.send("and one more");
    await eventually("the last line", () => agent.conversation(id)?.lines.find((l) => l.seq === last.seq));
    await eventually("the hole asked for twice", () => agent.conversation(id)?.withheld.find((h) => h.tries === 2));
    await agent.sync(id);
    const before = agent.conversation(id)?.withheld;
    expect(before).toEqual([{ from: liar.target(), to: liar.target(), tries: 2, claimed: liar.claimed() }]);
    agent.stop();
    const { agent: again } = await onlineAgent(fx.org.agentHome, fx.relay.url, liar.socket, store);
    await eventually("the last line after the reload", () => again.conversation(id)?.lines.find((l) => l.seq === last.seq));
    await again.sync(id);
    expect(again.conversation(id)?.withheld).toEqual(before);
    again.stop();
    carol.stop();
  });

  it("asks for thousands of invented holes with at most REFETCH_PAGES requests per try, and not again while the cursor stays", async () => {
    /** Invented from `base` on: `PAGES` pages of `SPAN` runs of one number, each claiming the agent's epoch (a lie: a hole). */
    const PAGES = 20;
    const SPAN = 200;
    let base: number | null = null;
    let conv: Uint8Array | null = null;
    let epoch: number | undefined;
    const afterOf = new Map<number, number>();
    let requests = 0;
    const socket = tampering(
      (f) => {
        const pushedItem = (f.push as Frame | undefined)?.item as Frame | undefined;
        if (pushedItem !== undefined) epoch ??= messageEpoch(pushedItem);
        const items = page(f);
        if (items === undefined) return true;
        for (const it of items.items as Frame[]) epoch ??= messageEpoch(it);
        const after = afterOf.get((f.response as Frame).id as number);
        if (base === null || after === undefined || after < base) return true;
        const end = base + PAGES * SPAN;
        const to = Math.min(after + SPAN, end);
        const runs: Frame[] = [];
        for (let n = after + 1; n <= to; n++) if (epoch !== undefined) runs.push({ from: n, to: n, epoch });
        items.items = [];
        items.skipped = runs;
        items.more = to < end;
        if (to < end) delete items.head;
        else items.head = end;
        return true;
      },
      (f) => {
        const r = f.request as Frame | undefined;
        const h = (r?.body as Frame | undefined)?.history as Frame | undefined;
        if (r === undefined || h === undefined || conv === null || !equal(h.conversation as Uint8Array, conv)) return;
        requests += 1;
        afterOf.set(r.id as number, h.after as number);
      },
    );
    let first = 0;
    const { agent, carol, id } = await opened(fx, socket, "many holes", (seq) => (first = seq - 1));
    conv = fromHex(id);
    base = first;
    await agent.sync(id);
    const holes = agent.conversation(id)?.withheld ?? [];
    // At most MAX_HOLES kept: the newest merged into one summary run, given up, that still
    // counts every number missing.
    expect(holes).toHaveLength(MAX_HOLES);
    expect(holes.reduce((n, h) => n + missingCount(h), 0)).toBe(PAGES * SPAN);
    expect(holes.every((h) => h.claimed === epoch)).toBe(true);
    const summaries = holes.filter((h) => h.missing !== undefined);
    expect(summaries).toHaveLength(1);
    expect(summaries[0]?.tries).toBeGreaterThanOrEqual(REFETCH_LIMIT);
    // The sync's own pages (the relay's to give), then one try of at most REFETCH_PAGES pages,
    // each hole but the summary counted.
    const tried = requests - PAGES;
    expect(tried).toBeGreaterThanOrEqual(1);
    expect(tried).toBeLessThanOrEqual(REFETCH_PAGES);
    expect(holes.filter((h) => h.missing === undefined).every((h) => h.tries === 1)).toBe(true);
    // The cursor stays: the sync's one page, no try.
    await agent.sync(id);
    expect(requests).toBe(PAGES + tried + 1);
    agent.stop();
    carol.stop();
  });

  it("shows no hole in an honest transferred conversation, to the agent who handed it on or the one it was handed to", async () => {
    const { agent: alice } = await onlineAgent(fx.org.agentHome, fx.relay.url);
    const { customer: carol } = await onlineCustomer(fx.options(new MemoryStore()));
    await carol.send("can someone in billing help?");
    const id = carol.conversationId() ?? "";
    await eventually("the line at alice", () => alice.conversation(id)?.lines.find((l) => l.text === "can someone in billing help?"));
    await alice.send(id, "passing you to bob");
    const bobHome = await certifiedAgent(fx, "bob");
    await alice.transfer(id, "bob");
    await cli(bobHome, fx.relay.url, ["send", "--conversation", id, "bob here"]);
    await eventually("bob's line at the customer", () => carol.history().find((l) => l.text === "bob here"));
    await carol.send("thanks bob");
    await alice.sync(id);
    const { agent: bob } = await onlineAgent(bobHome, fx.relay.url);
    await eventually("the handed history and the new lines at bob", () => {
      const texts = bob.conversation(id)?.lines.map((l) => l.text) ?? [];
      return ["can someone in billing help?", "passing you to bob", "bob here", "thanks bob"].every((t) => texts.includes(t)) ? true : undefined;
    });
    await bob.sync(id);
    expect(alice.conversation(id)?.withheld).toEqual([]);
    expect(bob.conversation(id)?.withheld).toEqual([]);
    alice.stop();
    bob.stop();
    carol.stop();
  });
});
