/**
 * A recovered account's send that loses its own next epoch (`customer-send.ts`), against the real
 * relay and `sealdesk` binaries, with no race left to timing. A recovered account sends only in
 * an epoch it opened itself (its fence), so its first send puts the next epoch; here another tab
 * of the same browser, or another browser the account was recovered into, has stored that epoch
 * first, and the relay answers `stale_epoch`. The tab then reads the history and sends in the
 * epoch read when the shared store notes it as the account's own, or opens the next; after
 * `OWN_EPOCH_TRIES` (3) losses the send is refused (`no_epoch`, detail `OWN_EPOCH_LOST`, which
 * the widget puts in plain words after "Not sent:"), and nothing is sent — a retry sends the
 * message once.
 *
 * The tab under test is watched on the wire: its `put_epoch` requests, the `stale_epoch`
 * answers it gets and its `send` requests are counted, and a `put_epoch` can be held while
 * another browser opens that epoch first. Items are never pushed to it (a single relay pushes
 * no item to the account that stored it, PROTOCOL §13.11; a push that would come is withheld
 * here, as one still on its way), so it learns another tab's epoch only by reading the history.
 */
import { fromCbor } from "@sealdesk/protocol";
import { describe, expect, it } from "vitest";
import { CustomerError, MemoryStore, OWN_EPOCH_LOST, RECOVERY_FENCE_KEY, recoverAccount, type Customer, type SocketFactory } from "../src/index.js";
import { OWN_EPOCH_TRIES } from "../src/customer-send.js";
import { onlineCustomer, orgOnRelay } from "./customer-fixture.js";
import { recoveryKit, sendLock } from "./recovery-fixture.js";
import { eventually, times } from "./relay.js";
import { requestKind, tampering, variantOf, type Frame } from "./tamper.js";

/** What one tab said and was answered on the wire. */
interface Wire {
  putEpochs: number;
  stale: number;
  sends: number;
  /** Runs before each `put_epoch` of the tab goes out (the frame held until it resolves). */
  beforePut?: () => Promise<void>;
}

/** A socket that counts into `w`, holds a `put_epoch` for `w.beforePut`, and withholds item pushes. */
function watched(w: Wire): SocketFactory {
  return tampering(
    (f) => {
      const body = (f.response as Frame | undefined)?.body as Frame | undefined;
      if ((body?.error as Frame | undefined)?.code === "stale_epoch") w.stale++;
      if (variantOf(f.push) === "item") return false;
    },
    (f) => {
      const kind = requestKind(f);
      if (kind === "send") w.sends++;
      if (kind !== "put_epoch") return;
      w.putEpochs++;
      return w.beforePut?.();
    },
  );
}

describe("a recovered account's send that loses its own next epoch (stale_epoch)", () => {
  const fx = orgOnRelay("web-recovery-epoch-race");
  const { recoverOptions, cliCustomer, sentElsewhere } = recoveryKit(fx);
  const SAID = "sent from the terminal";
  const ANSWER = "answered";

  /** A CLI customer `name` with a conversation (one line each way), recovered into a fresh store: the store, the conversation's id, the code. */
  async function recovered(name: string): Promise<{ store: MemoryStore; id: string; code: string }> {
    const c = await cliCustomer(name, SAID, ANSWER);
    const store = new MemoryStore();
    await recoverAccount(recoverOptions(store, name, c.initCode));
    return { store, id: c.id, code: c.initCode };
  }

  /** A tab on `store`, online, its history read up to the line `upTo`; `wire` counted from then on. */
  async function tab(store: MemoryStore, upTo: string, o: { lock?: <T>(f: () => Promise<T>) => Promise<T>; wire?: Wire } = {}): Promise<Customer> {
    const { customer } = await onlineCustomer(fx.options(store, { ...(o.lock === undefined ? {} : { withSendLock: o.lock }), ...(o.wire === undefined ? {} : { socket: watched(o.wire) }) }));
    await eventually(`the history up to ${upTo}`, () => (customer.history().some((l) => l.text === upTo) ? true : undefined));
    // Counted from here: the first tab on a recovered store put epoch 0 before reading the
    // history that holds it (`stale_epoch`, taken as "another tab made it").
    if (o.wire !== undefined) Object.assign(o.wire, { putEpochs: 0, stale: 0, sends: 0 });
    return customer;
  }

  /** The store's fence record (`{ fence: null }` until this store's account opened an epoch of its own). */
  const fence = async (store: MemoryStore): Promise<unknown> => {
    const b = await store.get(RECOVERY_FENCE_KEY);
    return b === undefined ? undefined : fromCbor(b);
  };

  it("another tab opened the epoch, the account's own: the send reads it and goes in it", async () => {
    const { store, id } = await recovered("pia");
    const lock = sendLock();
    const wire: Wire = { putEpochs: 0, stale: 0, sends: 0 };
    const a = await tab(store, ANSWER, { lock });
    const b = await tab(store, ANSWER, { lock, wire });
    const first = await a.send("from the first tab");
    expect([first.epoch, first.counter]).toEqual([1, 0]);
    expect(await fence(store)).toEqual({ fence: 1 });

    // The second tab still holds epoch 0 only: it puts epoch 1, loses it, reads it, sends in it.
    const line = await b.send("from the second tab");
    expect(wire).toMatchObject({ putEpochs: 1, stale: 1, sends: 1 });
    expect([line.epoch, line.counter]).toEqual([1, 1]);
    expect(await fence(store)).toEqual({ fence: 1 });
    expect(b.history().map((l) => l.text)).toEqual([SAID, ANSWER, "from the first tab", "from the second tab"]);
    const agentSaw = await fx.org.agent(["history", "--conversation", id]);
    expect(times(agentSaw, "from the second tab")).toBe(1);
    a.stop();
    b.stop();
  });

  it("another browser opened the epoch, not this store's own: the send opens the next", async () => {
    const { store, id, code } = await recovered("quinn");
    const wire: Wire = { putEpochs: 0, stale: 0, sends: 0 };
    const b = await tab(store, ANSWER, { lock: sendLock(), wire });
    // The same account recovered into another browser: its first send opens epoch 1 there.
    expect(await sentElsewhere("quinn", code, ANSWER, "from another browser")).toEqual({ epoch: 1, counter: 0 });

    // Epoch 1 may hold counters this store never saw: this tab opens epoch 2, its own.
    const line = await b.send("from this browser");
    expect(wire).toMatchObject({ putEpochs: 2, stale: 1, sends: 1 });
    expect([line.epoch, line.counter]).toEqual([2, 0]);
    expect(await fence(store)).toEqual({ fence: 2 });
    expect(b.history().map((l) => l.text)).toEqual([SAID, ANSWER, "from another browser", "from this browser"]);
    const agentSaw = await fx.org.agent(["history", "--conversation", id]);
    expect(times(agentSaw, "from this browser")).toBe(1);
    b.stop();
  });

  it(`lost ${OWN_EPOCH_TRIES} times: refused with a plain reason, nothing sent; a retry sends it once`, async () => {
    const { store, id, code } = await recovered("rosa");
    const wire: Wire = { putEpochs: 0, stale: 0, sends: 0 };
    const b = await tab(store, ANSWER, { lock: sendLock(), wire });
    // Before each of the tab's puts goes out, another browser of the account opens that epoch.
    const elsewhere: { epoch: number; counter: number }[] = [];
    const failed: unknown[] = [];
    wire.beforePut = async () => {
      const n = elsewhere.length + 1;
      await sentElsewhere("rosa", code, n === 1 ? ANSWER : `elsewhere ${n - 1}`, `elsewhere ${n}`).then(
        (l) => void elsewhere.push(l),
        (e: unknown) => void failed.push(e),
      );
    };

    const err = await b.send("lost three times").catch((e: unknown) => e);
    expect(failed).toEqual([]);
    expect(elsewhere).toEqual([1, 2, 3].map((epoch) => ({ epoch, counter: 0 })));
    expect(err).toBeInstanceOf(CustomerError);
    expect((err as CustomerError).failure).toBe("no_epoch");
    // The widget tells it in plain words (widget/test/send-epoch-lost.e2e.test.ts), by this detail.
    expect((err as CustomerError).detail).toBe(OWN_EPOCH_LOST);
    expect((err as CustomerError).message).toBe("no_epoch: another device of this account keeps opening the next epoch first");
    expect(wire).toMatchObject({ putEpochs: OWN_EPOCH_TRIES, stale: OWN_EPOCH_TRIES, sends: 0 });
    expect(await fence(store)).toEqual({ fence: null });
    expect(b.history().some((l) => l.text === "lost three times")).toBe(false);
    expect(times(await fx.org.agent(["history", "--conversation", id]), "lost three times")).toBe(0);

    // The customer sends it again, nobody racing: one more loss (epoch 3, not read yet), then epoch 4, its own.
    delete wire.beforePut;
    const line = await b.send("lost three times");
    expect([line.epoch, line.counter]).toEqual([4, 0]);
    expect(wire).toMatchObject({ putEpochs: OWN_EPOCH_TRIES + 2, stale: OWN_EPOCH_TRIES + 1, sends: 1 });
    expect(await fence(store)).toEqual({ fence: 4 });
    expect(b.history().filter((l) => l.text === "lost three times")).toHaveLength(1);
    expect(times(await fx.org.agent(["history", "--conversation", id]), "lost three times")).toBe(1);
    b.stop();
  });
});
