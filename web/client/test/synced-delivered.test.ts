/**
 * A push held back while a history sync runs is acknowledged too (`SyncedConversation`, §13.11's
 * delivery marks): the relay is told "delivered" up to it once it is handled. The mark sent at
 * the sync's end covers only what the history held; without one after the held pushes, the
 * customer's line stayed "sent" until some later push (the widget's live test, under load: the
 * agent's first sync of a new conversation still running when the first message arrived).
 */
import { describe, expect, it } from "vitest";
import { SyncedConversation, type Session } from "../src/index.js";
import type { Sequenced } from "../src/frames.js";

describe("delivery marks of pushes held during a sync", () => {
  it("tells the relay it received a push that came while the history was read", async () => {
    const id = new Uint8Array(16).fill(7);
    let answer: (r: unknown) => void = () => undefined;
    const history = new Promise((r) => (answer = r));
    const delivered: number[] = [];
    const session = {
      call: () => history,
      request: (req: { kind: string; seq?: number }) => {
        if (req.kind === "delivered") delivered.push(req.seq ?? -1);
        return Promise.resolve({ kind: "ok" });
      },
    } as unknown as Session;
    const conv: SyncedConversation = new SyncedConversation(
      id,
      (it) => {
        conv.claim(it.seq);
        return Promise.resolve();
      },
      (kind) => new Error(kind),
    );
    const item = { conversation: id, seq: 1 } as unknown as Sequenced;

    const sync = conv.sync(session);
    // The message pushed while the history is still being read: held back.
    conv.push(item, () => session, (e) => {
      throw e;
    });
    answer({ kind: "items", items: [], skipped: [], more: false });
    await sync;
    expect(conv.cursor).toBe(1);
    expect(delivered).toEqual([1]);
  });
});
