/**
 * Issue 20: the browser customer rotates a full or old epoch (PROTOCOL §7.7 "Who rotates",
 * `customer-send.ts`), against the real relay and `sealdesk` binaries, in an org whose policy
 * rotates after 3 messages. The agent is the CLI; it reads every message the customer sent.
 *
 * The customer is watched on the wire: its `put_epoch` and `send` requests and the relay's
 * `epoch_full` and `stale_epoch` answers are counted, a `put_epoch` can be held while the agent
 * stores that epoch first, and item pushes can be withheld (as if still on their way), so the
 * customer learns what the agent did only by reading the history — no race is left to timing.
 */
import { describe, expect, it } from "vitest";
import { MemoryStore, type ChatLine, type Customer, type SocketFactory } from "../src/index.js";
import { now as clock, onlineCustomer, orgOnRelay } from "./customer-fixture.js";
import { copyOf } from "./restore-wire.js";
import { requestKind, tampering, variantOf, type Frame } from "./tamper.js";

/** What the customer said and was answered on the wire, since the last `reset`. */
interface Wire {
  socket: SocketFactory;
  putEpochs: number;
  sends: number;
  full: number;
  stale: number;
  /** While true, item pushes are dropped. */
  withhold: boolean;
  /** Messages of this epoch are left out of the history pages read (a relay hiding them). */
  hideEpoch?: number;
  /** Runs before each `put_epoch` goes out (the frame held until it resolves). */
  beforePut?: () => Promise<void>;
  reset(): void;
}

function watched(): Wire {
  const w: Wire = {
    putEpochs: 0,
    sends: 0,
    full: 0,
    stale: 0,
    withhold: false,
    reset: () => Object.assign(w, { putEpochs: 0, sends: 0, full: 0, stale: 0 }),
    socket: tampering(
      (f) => {
        const code = (((f.response as Frame | undefined)?.body as Frame | undefined)?.error as Frame | undefined)?.code;
        if (code === "epoch_full") w.full++;
        if (code === "stale_epoch") w.stale++;
        if (w.withhold && variantOf(f.push) === "item") return false;
        const page = ((f.response as Frame | undefined)?.body as Frame | undefined)?.items as Frame | undefined;
        if (w.hideEpoch !== undefined && page !== undefined && Array.isArray(page.items)) page.items = page.items.filter((it) => (((((it as Frame).item as Frame).message as Frame | undefined)?.header as Frame | undefined)?.epoch ?? -1) !== w.hideEpoch);
      },
      (f) => {
        const kind = requestKind(f);
        if (kind === "send") w.sends++;
        if (kind !== "put_epoch") return;
        w.putEpochs++;
        return w.beforePut?.();
      },
    ),
  };
  return w;
}

/** How many times `text` occurs in `log`. */
const times = (log: string, text: string): number => log.split(text).length - 1;

/** (epoch, counter) of each line. */
const places = (lines: ChatLine[]): [number, number][] => lines.map((l) => [l.epoch, l.counter]);

describe("the browser customer rotates a full or old epoch (issue 20, §7.7)", () => {
  const fx = orgOnRelay("web-customer-rotate", [], undefined, ["--rotate-messages", "3"]);

  /** A customer on a fresh store (or `store`), watched, with `now` as its clock; its first message sent. */
  async function customer(first: string, o: { store?: MemoryStore; now?: () => number } = {}): Promise<{ c: Customer; w: Wire; id: string; store: MemoryStore }> {
    const w = watched();
    const store = o.store ?? new MemoryStore();
    const { customer: c } = await onlineCustomer(fx.options(store, { socket: w.socket, ...(o.now === undefined ? {} : { now: o.now }) }));
    const line = await c.send(first);
    expect([line.epoch, line.counter]).toEqual([0, 0]);
    const id = c.conversationId();
    if (id === null) throw new Error("no conversation");
    w.reset();
    return { c, w, id, store };
  }

  /** The agent's CLI history of conversation `id`: every text in `texts` read exactly once. */
  async function agentReadsEach(id: string, texts: string[]): Promise<void> {
    const log = await fx.org.agent(["history", "--conversation", id]);
    for (const t of texts) expect(times(log, t), `${t} in the agent's history`).toBe(1);
  }

  it("alone past the limit: she opens the next epoch herself, and the agent reads every message", async () => {
    const { c, w, id } = await customer("alone 1");
    const lines = [];
    for (const t of ["alone 2", "alone 3", "alone 4", "alone 5"]) lines.push(await c.send(t));
    // Epoch 0 holds three; the fourth goes in epoch 1, hers, opened before it was sealed.
    expect(places(lines)).toEqual([
      [0, 1],
      [0, 2],
      [1, 0],
      [1, 1],
    ]);
    expect(w).toMatchObject({ putEpochs: 1, sends: 4, full: 0, stale: 0 });
    await agentReadsEach(id, ["alone 1", "alone 2", "alone 3", "alone 4", "alone 5"]);
    c.stop();
  });

  it("epoch_full when her count lagged (the agent's messages not read yet): she reads the history and rotates once", async () => {
    const { c, w, id } = await customer("lagging 1");
    w.withhold = true;
    // The agent fills epoch 0; the pushes of its messages never reach her.
    await fx.org.agent(["send", "--conversation", id, "agent fills 2"]);
    await fx.org.agent(["send", "--conversation", id, "agent fills 3"]);
    expect(c.history().map((l) => l.text)).toEqual(["lagging 1"]);

    const line = await c.send("lagging 4");
    expect([line.epoch, line.counter]).toEqual([1, 0]);
    expect(w).toMatchObject({ full: 1, putEpochs: 1, sends: 2, stale: 0 });
    expect(c.history().map((l) => l.text)).toEqual(["lagging 1", "agent fills 2", "agent fills 3", "lagging 4"]);
    await agentReadsEach(id, ["lagging 1", "agent fills 2", "agent fills 3", "lagging 4"]);
    c.stop();
  });

  it("epoch_full and the history still does not show it full (its count behind the relay's): the epoch is left all the same", async () => {
    const { c, w, id } = await customer("hidden 1");
    w.withhold = true;
    w.hideEpoch = 0;
    await fx.org.agent(["send", "--conversation", id, "agent hidden 2"]);
    await fx.org.agent(["send", "--conversation", id, "agent hidden 3"]);

    // The read after the refusal shows her one message of epoch 0: the relay's word is taken.
    const line = await c.send("hidden 4");
    expect([line.epoch, line.counter]).toEqual([1, 0]);
    expect(w).toMatchObject({ full: 1, putEpochs: 1, sends: 2, stale: 0 });
    expect(c.history().map((l) => l.text)).toEqual(["hidden 1", "hidden 4"]);
    await agentReadsEach(id, ["hidden 1", "agent hidden 2", "agent hidden 3", "hidden 4"]);
    c.stop();
  });

  it("her epoch loses to the agent's (stale_epoch): she sends in the winner's", async () => {
    const { c, w, id } = await customer("race 1");
    await c.send("race 2");
    await c.send("race 3");
    w.withhold = true;
    w.reset();
    // Epoch 0 is full: her next send opens epoch 1, but the agent's send (which rotates too,
    // finding it full) stores its epoch 1 between her read and her put.
    let agentSent = 0;
    w.beforePut = async () => {
      if (agentSent++ === 0) await fx.org.agent(["send", "--conversation", id, "agent rotated first"]);
    };
    const line = await c.send("race 4");
    expect(agentSent).toBe(1);
    expect(w).toMatchObject({ putEpochs: 1, stale: 1, sends: 1, full: 0 });
    // The agent's epoch 1, with its message at counter 0 of the agent: hers is counter 0 of hers.
    expect([line.epoch, line.counter]).toEqual([1, 0]);
    const lines = c.history();
    expect(lines.map((l) => l.text)).toEqual(["race 1", "race 2", "race 3", "agent rotated first", "race 4"]);
    expect(lines.find((l) => l.text === "agent rotated first")?.epoch).toBe(1);
    await agentReadsEach(id, ["race 1", "race 2", "race 3", "agent rotated first", "race 4"]);
    c.stop();
  });

  it("age limit: an epoch rotate_after_secs old by her clock is left for the next", async () => {
    let shift = 0;
    const { c, w, id } = await customer("young", { now: () => clock() + shift });
    const policy = c.policy;
    if (policy === null) throw new Error("no policy");
    // Five seconds short of the limit: still epoch 0.
    shift = policy.rotateAfterSecs - 5;
    const before = await c.send("nearly old");
    expect([before.epoch, before.counter]).toEqual([0, 1]);
    expect(w.putEpochs).toBe(0);
    shift = policy.rotateAfterSecs + 1;
    const after = await c.send("old now");
    expect([after.epoch, after.counter]).toEqual([1, 0]);
    expect(w).toMatchObject({ putEpochs: 1, sends: 2, full: 0, stale: 0 });
    await agentReadsEach(id, ["young", "nearly old", "old now"]);
    c.stop();
  });

  it("an epoch her key made in another store (a copy): she does not seal in it, she opens the next", async () => {
    const { c, store, id } = await customer("copied 1");
    const copy = await copyOf(store);
    await c.send("copied 2");
    await c.send("copied 3");
    // The original store opens epoch 1 (full epoch 0) and keeps its hash; the copy does not have it.
    const four = await c.send("copied 4");
    expect([four.epoch, four.counter]).toEqual([1, 0]);
    c.stop();

    const w = watched();
    const { customer: restored } = await onlineCustomer(fx.options(copy, { socket: w.socket }));
    const five = await restored.send("copied 5");
    // Epoch 1 is the other store's to seal in (its counters are not these): epoch 2, this store's.
    expect([five.epoch, five.counter]).toEqual([2, 0]);
    expect(w).toMatchObject({ putEpochs: 1, sends: 1, stale: 0 });
    await agentReadsEach(id, ["copied 1", "copied 2", "copied 3", "copied 4", "copied 5"]);
    restored.stop();
  });
});
