/**
 * `SequenceHoles` without a relay (a fake session answers the history requests): an agent's
 * judge (PROTOCOL §13.10's table) — runs that hold up are no holes, a lie is one with its claim
 * (and stays one when a later run explains the numbers), a pending claim becomes a lie once the
 * epoch's record lists the reader, an agent's numbers count only once its relay named runs or a
 * head; the Rust client's refetch rules — three requests per hole, each only after the cursor
 * moved, at most four pages per try, the holes kept in the store and restored; and the line's
 * words.
 */
import { describe, expect, it } from "vitest";
import { toCbor } from "@sealdesk/protocol";
import { customerHoleText, holesDrawn } from "../src/ui/index.js";
import { MAX_HOLES, MemoryStore, REFETCH_LIMIT, REFETCH_PAGES, SequenceHoles, missingCount, withheldText, type Hole, type Response, type Sequenced, type Session, type Verdict } from "../src/index.js";

/** An agent who is a member of the epochs `known` maps to true, no member of those mapped to false. */
function agentJudge(known: Map<number, boolean>): (epoch: number | undefined) => Verdict {
  return (epoch) => {
    if (epoch === undefined) return "holds";
    const member = known.get(epoch);
    return member === undefined ? "unknown" : member ? "lie" : "holds";
  };
}

function agentHoles(known: Map<number, boolean>): SequenceHoles {
  return new SequenceHoles(agentJudge(known), true);
}

/** A session whose history pages `answer` makes; `asked` lists each request's `after`. */
function fakeSession(answer: (after: number) => Response): { session: Session; asked: number[] } {
  const asked: number[] = [];
  const session = {
    call: (body: { kind: string; after?: number }) => {
      if (body.kind !== "history" || body.after === undefined) throw new Error(`unexpected ${body.kind}`);
      asked.push(body.after);
      return Promise.resolve(answer(body.after));
    },
  } as unknown as Session;
  return { session, asked };
}

const empty = (): Response => ({ kind: "items", items: [], more: false, skipped: [] });
const conversation = new Uint8Array(16);
const bad = (kind: string): Error => new Error(kind);
const nothing = (): Promise<void> => Promise.resolve();

describe("an agent's holes", () => {
  it("counts nothing before the relay names runs or a head", () => {
    const h = agentHoles(new Map());
    h.saw(1);
    h.saw(4);
    expect(h.open()).toEqual([]);
    h.page([], 6);
    h.saw(6);
    expect(h.open()).toEqual([{ from: 5, to: 5, tries: 0 }]);
  });

  it("takes runs of epochs it is no member of, or conversation-level, as no holes", () => {
    const h = agentHoles(new Map([[0, false]]));
    h.skipped({ from: 1, to: 3, epoch: 0 });
    h.skipped({ from: 4, to: 4 });
    h.saw(5);
    h.head(5);
    expect(h.open()).toEqual([]);
  });

  it("keeps a run claiming its own epoch as a hole with the claim, and a later honest-looking run does not close it", () => {
    const h = agentHoles(new Map([[1, true]]));
    h.saw(1);
    h.skipped({ from: 2, to: 3, epoch: 1 });
    h.saw(4);
    expect(h.open()).toEqual([{ from: 2, to: 3, tries: 0, claimed: 1 }]);
    h.skipped({ from: 2, to: 3 });
    expect(h.open()).toEqual([{ from: 2, to: 3, tries: 0, claimed: 1 }]);
  });

  it("judges a run of an unknown epoch when its record arrives", () => {
    const known = new Map<number, boolean>();
    const h = agentHoles(known);
    h.skipped({ from: 1, to: 2, epoch: 2 });
    h.saw(3);
    expect(h.open()).toEqual([]);
    known.set(2, true);
    h.judgePending();
    expect(h.open()).toEqual([{ from: 1, to: 2, tries: 0, claimed: 2 }]);
  });

  it("counts a request for the newest numbers at each page that ends short of the head", () => {
    const h = agentHoles(new Map());
    h.saw(1);
    h.head(3);
    expect(h.open()).toEqual([{ from: 2, to: 3, tries: 0 }]);
    h.head(3);
    expect(h.open()).toEqual([{ from: 2, to: 3, tries: 1 }]);
  });
});

describe("asking again (as the Rust client's refetch)", () => {
  it("asks for a hole three times, each only after the cursor moved, then gives it up", async () => {
    const h = new SequenceHoles();
    const { session, asked } = fakeSession(empty);
    h.saw(1);
    h.saw(3);
    expect(await h.refetch(session, conversation, nothing, bad)).toEqual([{ from: 2, to: 2, tries: 1 }]);
    // The cursor did not move: not asked again.
    await h.refetch(session, conversation, nothing, bad);
    expect(asked).toEqual([1]);
    for (const seq of [4, 5, 6, 7]) {
      h.saw(seq);
      await h.refetch(session, conversation, nothing, bad);
    }
    expect(asked).toEqual([1, 1, 1]);
    expect(h.withheld()).toEqual([{ from: 2, to: 2, tries: REFETCH_LIMIT }]);
  });

  it("counts one request for two asks made at once for one move of the cursor", async () => {
    const h = new SequenceHoles();
    const asked: number[] = [];
    let answer: (() => void) | undefined;
    const held = new Promise<void>((resolve) => (answer = resolve));
    const session = {
      call: async (body: { kind: string; after?: number }) => {
        asked.push(body.after ?? -1);
        await held;
        return empty();
      },
    } as unknown as Session;
    h.saw(1);
    h.saw(3);
    // Two asks (a push and a receipt) while the first still waits for the relay.
    const first = h.refetch(session, conversation, nothing, bad);
    const second = h.refetch(session, conversation, nothing, bad);
    await expect.poll(() => asked.length).toBe(1);
    answer?.();
    await Promise.all([first, second]);
    expect(asked).toEqual([1]);
    expect(h.withheld()).toEqual([{ from: 2, to: 2, tries: 1 }]);
  });

  it("reads at most four pages per try however many holes the relay invents, and takes an item that comes", async () => {
    const h = new SequenceHoles();
    // 250 holes (within MAX_HOLES): every even number up to 500.
    for (let seq = 1; seq <= 501; seq += 2) h.saw(seq);
    expect(h.open()).toHaveLength(250);
    // The relay answers each page with a run it claims it may skip, and more to come; the
    // first page brings item 2.
    const item2 = { seq: 2, conversation } as unknown as Sequenced;
    const { session, asked } = fakeSession((after) => ({ kind: "items", items: after === 1 ? [item2] : [], more: true, skipped: [{ from: after + 1, to: after + 50 }] }));
    const got: number[] = [];
    await h.refetch(
      session,
      conversation,
      (it) => {
        got.push(it.seq);
        h.saw(it.seq);
        return Promise.resolve();
      },
      bad,
    );
    expect(asked).toHaveLength(REFETCH_PAGES);
    expect(got).toEqual([2]);
    const open = h.open();
    expect(open).toHaveLength(249);
    // Every hole asked for counts the try, as in Rust; the run the relay named is a lie to a customer.
    expect(open.every((x) => x.tries === 1)).toBe(true);
    expect(open[0]).toEqual({ from: 4, to: 4, tries: 1, claimed: null });
  });

  it("keeps the holes in the store: a reload finds them with their requests and claims, and does not ask afresh", async () => {
    const store = new MemoryStore();
    const keep = { store, key: "conv/x/holes" };
    const known = new Map([[1, true]]);
    const first = new SequenceHoles(agentJudge(known), true, keep);
    await first.restore();
    first.saw(1);
    first.skipped({ from: 2, to: 2, epoch: 1 });
    first.saw(3);
    first.saw(5);
    const { session, asked } = fakeSession(empty);
    await first.refetch(session, conversation, nothing, bad);
    expect(asked).toEqual([1]);
    const kept = first.open();
    expect(kept).toEqual([
      { from: 2, to: 2, tries: 1, claimed: 1 },
      { from: 4, to: 4, tries: 1 },
    ]);

    // The page reloads: the history is read again from the start, and the relay now passes
    // the lie off as conversation-level items (which would hold up).
    const again = new SequenceHoles(agentJudge(known), true, keep);
    await again.restore();
    expect(again.open()).toEqual(kept);
    again.saw(1);
    again.skipped({ from: 2, to: 2 });
    again.saw(3);
    again.saw(5);
    await again.refetch(session, conversation, nothing, bad);
    expect(asked).toEqual([1]);
    expect(again.open()).toEqual(kept);
    // Once the cursor moves, the count goes on from where it was.
    again.saw(6);
    await again.refetch(session, conversation, nothing, bad);
    expect(again.open().map((x) => x.tries)).toEqual([2, 2]);
  });

  it("refuses a damaged record", async () => {
    const store = new MemoryStore();
    await store.put("k", new Uint8Array([0xa1, 0x61, 0x78, 0x01]));
    await expect(new SequenceHoles(undefined, false, { store, key: "k" }).restore()).rejects.toThrow("malformed");
  });
});

describe("the bound on the holes kept (MAX_HOLES)", () => {
  const total = (hs: readonly Hole[]): number => hs.reduce((n, h) => n + missingCount(h), 0);

  it("keeps thousands of runs alternating their claims within the bound, every missing number still counted", async () => {
    const store = new MemoryStore();
    const keep = { store, key: "conv/y/holes" };
    const h = new SequenceHoles(undefined, false, keep);
    await h.restore();
    h.saw(1);
    // A fake relay's pages: 5,000 one-number runs, claims alternating (an epoch's, then
    // conversation-level), so no two neighbours are alike; to a customer every run is a lie.
    const head = 5001;
    const { session } = fakeSession((after) => {
      const skipped = [];
      for (let seq = after + 1; seq <= Math.min(head, after + 100); seq++) skipped.push(seq % 2 === 0 ? { from: seq, to: seq, epoch: 1 } : { from: seq, to: seq });
      return { kind: "items", items: [], more: after + 100 < head, skipped, head };
    });
    for (let after = 1; after < head; after += 100) {
      const r = await session.call({ kind: "history", conversation, after, limit: 100 });
      if (r.kind !== "items") throw new Error(r.kind);
      h.page(r.skipped, r.head);
      for (const run of r.skipped) h.skipped(run);
    }
    h.head(head);
    const open = h.open();
    expect(open.length).toBeLessThanOrEqual(MAX_HOLES);
    expect(total(open)).toBe(5000);
    const summary = open[open.length - 1];
    expect(summary?.missing).toBeGreaterThan(0);
    expect(summary?.tries).toBeGreaterThanOrEqual(REFETCH_LIMIT);
    // Asking again reads the holes kept one by one, never the summary's span.
    await h.refetch(session, conversation, () => Promise.reject(new Error("nothing is handed in again")), bad);
    expect(total(h.open())).toBe(5000);
    // A reload finds the summary as it was.
    const again = new SequenceHoles(undefined, false, keep);
    await again.restore();
    expect(again.open()).toEqual(h.open());
  });

  it("keeps a relay adding one hole after each try within the bound; an item in a summary's span does not narrow it", () => {
    const h = new SequenceHoles();
    for (let k = 0; k < 3000; k++) {
      h.saw(2 * k + 2);
      // The page ends short of the head: the holes after the cursor count one more request.
      h.head(2 * k + 3);
    }
    const open = h.open();
    expect(open.length).toBeLessThanOrEqual(MAX_HOLES);
    expect(total(open)).toBe(3001);
    const summary = open.find((x) => x.missing !== undefined);
    expect(summary).toBeDefined();
    if (summary === undefined) return;
    h.saw(summary.from);
    expect(h.open()).toContainEqual(summary);
    expect(withheldText(summary)).toContain(`The relay withheld at least ${summary.missing} items somewhere in #${summary.from} to #${summary.to}`);
    // The customer's words and the summary of many runs count the missing numbers, not the span.
    expect(customerHoleText(summary, "acme")).toBe(`At least ${summary.missing} items somewhere in #${summary.from} to #${summary.to} were not delivered: the relay withheld so many that they are no longer listed one by one or asked for again. Something is missing here; ask acme if in doubt.`);
    expect(holesDrawn([summary], 0).more?.items).toBe(summary.missing);
  });

  it("refuses a kept summary counting more numbers than its span", async () => {
    const store = new MemoryStore();
    await store.put("k", toCbor({ cursor: 0, named: true, pending: [], open: [{ from: 1, to: 2, tries: 3, missing: 3 }] }));
    await expect(new SequenceHoles(undefined, false, { store, key: "k" }).restore()).rejects.toThrow("malformed");
  });
});

describe("the line shown in a hole's place", () => {
  it("says the items never arrived while they are asked for, and withheld after the last request, with the false claim", () => {
    expect(withheldText({ from: 7, to: 7, tries: 1 })).toBe("1 item never arrived here (#7): asking the relay again.");
    expect(withheldText({ from: 7, to: 7, tries: 3 })).toBe("The relay withheld 1 item here (#7): not delivered after 3 requests.");
    expect(withheldText({ from: 7, to: 8, tries: 3, claimed: 2 })).toBe("The relay withheld 2 items here (#7 to #8): not delivered after 3 requests; it claims these were items of epoch 2, which is false — you are allowed to read them.");
    expect(withheldText({ from: 7, to: 7, tries: 0, claimed: null })).toContain("it claims it was a consent or a notice, which is false");
  });
});
