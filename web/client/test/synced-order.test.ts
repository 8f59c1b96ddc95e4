/**
 * The pushes held back while a history sync runs are handled in order with the pushes after
 * them (`SyncedConversation`): a push that arrives while the held ones are still being handled
 * waits for them. Handled beside them, an agent's console took a customer's first message while
 * the epoch record before it was still being checked (its policy being read), refused the
 * message for want of its epoch, and never showed it (the console's Chromium test, 1 run in 5).
 */
import { describe, expect, it } from "vitest";
import { SyncedConversation, type Session } from "../src/index.js";
import type { Sequenced } from "../src/frames.js";

describe("pushes held during a sync and the pushes after them", () => {
  it("handles a push that arrives while the held ones are handled after them, not beside them", async () => {
    const id = new Uint8Array(16).fill(9);
    let answer: (r: unknown) => void = () => undefined;
    const history = new Promise((r) => (answer = r));
    const session = {
      call: () => history,
      request: () => Promise.resolve({ kind: "ok" }),
    } as unknown as Session;
    // Item 1's handling waits (an epoch record whose policy is being read) until let go.
    let letGo: () => void = () => undefined;
    const slow = new Promise<void>((r) => (letGo = r));
    let startedSlow: () => void = () => undefined;
    const slowStarted = new Promise<void>((r) => (startedSlow = r));
    const events: string[] = [];
    const conv: SyncedConversation = new SyncedConversation(
      id,
      async (it) => {
        if (!conv.claim(it.seq)) return;
        events.push(`start ${it.seq}`);
        if (it.seq === 1) {
          startedSlow();
          await slow;
        }
        events.push(`end ${it.seq}`);
      },
      (kind) => new Error(kind),
    );
    const item = (seq: number): Sequenced => ({ conversation: id, seq }) as unknown as Sequenced;
    const fail = (e: unknown): void => {
      throw e;
    };

    const sync = conv.sync(session);
    // Item 1 pushed while the history is read: held back.
    conv.push(item(1), () => session, fail);
    answer({ kind: "items", items: [], skipped: [], more: false });
    // The held item is being handled when item 2 is pushed.
    await slowStarted;
    conv.push(item(2), () => session, fail);
    await new Promise((r) => setTimeout(r, 10));
    letGo();
    await sync;
    await new Promise((r) => setTimeout(r, 10));
    expect(events).toEqual(["start 1", "end 1", "start 2", "end 2"]);
    expect(conv.cursor).toBe(2);
  });
});
