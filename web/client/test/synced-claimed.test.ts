/**
 * An item claimed and still being handled is never overtaken (`SyncedConversation.once` and
 * `settled`; issue 20, the account's own items pushed to its other connections). Claiming moves
 * the cursor before the handling ends (an epoch record's policy and secret are still being read).
 * Two failures came of that, both only once a tab or device was pushed its account's own items:
 * - a second tab on one store read the first tab's stored epoch record back while the relay
 *   pushed it the first tab's message: the push, "next after the cursor", was handled at once,
 *   refused for want of its epoch (`no_epoch`), and the line was never shown
 *   (customer-register.e2e "two tabs on one store");
 * - the console was pushed the CLI's epoch record while it sent: its send was refused
 *   `stale_epoch`, and each sync after it read nothing past the cursor and returned while the
 *   record was still being handled, so every try sealed in the old epoch again (agent.e2e).
 * An item a tab stored itself (`stored`: its message) waits the same way, behind a push or an item
 * read back still being handled (own-items.e2e checks that the members hand theirs to it).
 * The handling is held on a gate here, and the test waits for the event loop only (no clock).
 */
import { describe, expect, it } from "vitest";
import { SyncedConversation, type Session } from "../src/index.js";
import type { Sequenced } from "../src/frames.js";

/** Lets every pending promise job run (a macrotask runs only after them): no clock involved. */
const drained = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * A conversation whose item 1 is handled only once `letGo` is called; `events` tells the order.
 * The relay's history after the cursor holds `history` (answered once `answer` is called when
 * `held`).
 */
function gated(history: number[] = [], held = false) {
  const id = new Uint8Array(16).fill(5);
  let letGo: () => void = () => undefined;
  const gate = new Promise<void>((r) => (letGo = r));
  const events: string[] = [];
  // The member's one ingest path (`Customer.ingest`, `AgentReader.ingest`).
  const ingest = (it: Sequenced): Promise<void> =>
    conv.once(it.seq, async () => {
      events.push(`start ${it.seq}`);
      if (it.seq === 1) await gate;
      events.push(`end ${it.seq}`);
    });
  const conv: SyncedConversation = new SyncedConversation(id, ingest, (kind) => new Error(kind));
  const item = (seq: number): Sequenced => ({ conversation: id, seq }) as unknown as Sequenced;
  let answer: () => void = () => undefined;
  const answered = held ? new Promise<void>((r) => (answer = r)) : Promise.resolve();
  const histories: number[] = [];
  const session = {
    call: async (req: { kind: string; after?: number }) => {
      histories.push(req.after ?? -1);
      await answered;
      return { kind: "items", items: history.filter((seq) => seq > (req.after ?? 0)).map(item), skipped: [], more: false };
    },
    request: () => Promise.resolve({ kind: "ok" }),
  } as unknown as Session;
  const errors: unknown[] = [];
  return { conv, ingest, session, item, events, letGo, answer, histories, fail: (e: unknown) => errors.push(e), errors };
}

describe("an item claimed and still being handled", () => {
  it("is not overtaken by the next item pushed (a second tab reads back the stored epoch record, the message is pushed)", async () => {
    const { conv, ingest, session, item, events, letGo, histories, fail, errors } = gated();
    // The tab reads its stored item 1 back (`Customer.loadConversation`): claimed, being handled.
    const readBack = ingest(item(1));
    // The first tab's message is pushed: the next item after the cursor, but item 1 is not done.
    conv.push(item(2), () => session, fail);
    await drained();
    expect(events).toEqual(["start 1"]);
    letGo();
    await readBack;
    await drained();
    expect(events).toEqual(["start 1", "end 1", "start 2", "end 2"]);
    expect(conv.cursor).toBe(2);
    // Next after the cursor once item 1 was handled: no history read for it.
    expect(histories).toEqual([]);
    expect(errors).toEqual([]);
  });

  it("is not overtaken by an item this tab stored itself while a push of it is being handled (issue 20: two tabs, the other's line pushed)", async () => {
    const { conv, session, item, events, letGo, histories, fail, errors } = gated();
    // The other tab's line pushed: claimed (the cursor is past it), its handling under way.
    conv.push(item(1), () => session, fail);
    await drained();
    expect(events).toEqual(["start 1"]);
    // This tab's own message, stored next: the next item after the cursor, handed to the ordered path.
    let handled = false;
    const own = conv.stored(item(2), session).then(() => {
      handled = true;
    });
    await drained();
    expect(events).toEqual(["start 1"]);
    expect(handled).toBe(false);
    letGo();
    await own;
    expect(events).toEqual(["start 1", "end 1", "start 2", "end 2"]);
    // Next after the cursor once item 1 was handled: no history read for it.
    expect(histories).toEqual([]);
    expect(errors).toEqual([]);
  });

  it("an item this tab stored itself takes its turn after the pushes before it, not beside them", async () => {
    const { conv, session, item, events, letGo, histories, fail, errors } = gated([2, 3]);
    // Item 1 pushed and being handled; item 2 pushed behind it (not claimed yet).
    conv.push(item(1), () => session, fail);
    conv.push(item(2), () => session, fail);
    await drained();
    expect(events).toEqual(["start 1"]);
    const own = conv.stored(item(3), session);
    letGo();
    await own;
    expect(events).toEqual(["start 1", "end 1", "start 2", "end 2", "start 3", "end 3"]);
    // In turn, each was the next item after the cursor: no history read (beside the pushes,
    // item 3 found the cursor at 1 and read the history to get there).
    expect(histories).toEqual([]);
    expect(errors).toEqual([]);
  });

  it("is not overtaken by an item this tab stored itself while one read back is being handled", async () => {
    const { conv, ingest, session, item, events, letGo, histories, errors } = gated();
    // Read back from the store (`Customer.loadConversation`): claimed through `once`, not pushed.
    const readBack = ingest(item(1));
    let handled = false;
    const own = conv.stored(item(2), session).then(() => {
      handled = true;
    });
    await drained();
    expect(events).toEqual(["start 1"]);
    expect(handled).toBe(false);
    letGo();
    await Promise.all([readBack, own]);
    expect(events).toEqual(["start 1", "end 1", "start 2", "end 2"]);
    expect(histories).toEqual([]);
    expect(errors).toEqual([]);
  });

  it("is handled before a sync says the conversation is read (the console's send after stale_epoch)", async () => {
    const { conv, session, item, events, letGo, histories, fail, errors } = gated([2]);
    // The CLI's epoch record pushed: claimed (the cursor is past it), its handling under way.
    conv.push(item(1), () => session, fail);
    await drained();
    expect(events).toEqual(["start 1"]);
    expect(conv.cursor).toBe(1);
    // The send was refused stale_epoch: the console reads the conversation up to date.
    let read = false;
    const sync = conv.sync(session).then(() => {
      read = true;
    });
    await drained();
    expect(read).toBe(false);
    letGo();
    await sync;
    // The CLI's message after its record, read from the history, waited for the record.
    expect(events).toEqual(["start 1", "end 1", "start 2", "end 2"]);
    expect(histories).toEqual([1]);
    expect(errors).toEqual([]);
  });

  it("claimed while a sync reads the history is handled before that sync ends", async () => {
    const { conv, ingest, session, item, events, letGo, answer, errors } = gated([], true);
    let read = false;
    const sync = conv.sync(session).then(() => {
      read = true;
    });
    await drained();
    // Handled directly meanwhile (an item this device stored, or read back from the store).
    const direct = ingest(item(1));
    answer();
    await drained();
    expect(read).toBe(false);
    letGo();
    await Promise.all([sync, direct]);
    expect(read).toBe(true);
    expect(events).toEqual(["start 1", "end 1"]);
    expect(errors).toEqual([]);
  });
});
