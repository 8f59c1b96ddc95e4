/**
 * A sync's paging bounded against a lying relay (PROTOCOL §13.10, `paging.ts`; the Rust client's
 * `client/src/client/paging.rs` rules): a fake session answers every `history` page with one
 * skipped run and `more`, which moves an agent's cursor without a single signed item. A head that
 * grows with every page is not chased past the head the first page named; a head far beyond
 * anything served stops the sync at `MAX_SYNC_PAGES` pages with a warning, what was read kept and
 * the next sync going on from there; impossible answers are refused.
 */
import { describe, expect, it } from "vitest";
import { MAX_SYNC_PAGES, Paging, PagingError, SequenceHoles, SyncedConversation, type Response, type Session } from "../src/index.js";

/** A session whose history pages `answer` makes from the request's `after`; `asked` lists them. */
function fakeSession(answer: (after: number) => Response): { session: Session; asked: number[] } {
  const asked: number[] = [];
  const session = {
    call: (body: { kind: string; after?: number }) => {
      if (body.kind !== "history" || body.after === undefined) throw new Error(`unexpected ${body.kind}`);
      asked.push(body.after);
      return Promise.resolve(answer(body.after));
    },
    request: () => Promise.resolve({ kind: "ok" }),
  } as unknown as Session;
  return { session, asked };
}

/** An agent's log (runs of an epoch it is no member of hold up, so they move the cursor). */
function agentLog(warned: PagingError[]): SyncedConversation {
  const holes = new SequenceHoles(() => "holds", true);
  return new SyncedConversation(new Uint8Array(16), () => Promise.resolve(), (kind) => new Error(kind), holes, (e) => warned.push(e));
}

/** One skipped run of one number after `after`, with `more` and the head `head(after)`. */
const oneRun = (head: (after: number) => number | undefined) => (after: number): Response => {
  const h = head(after);
  return { kind: "items", items: [], more: true, skipped: [{ from: after + 1, to: after + 1, epoch: 0 }], ...(h === undefined ? {} : { head: h }) };
};

describe("a sync's paging", () => {
  it("ends at the head the first page named, however the head grows", async () => {
    const warned: PagingError[] = [];
    const log = agentLog(warned);
    const { session, asked } = fakeSession(oneRun((after) => after + 5));
    await log.sync(session);
    // The first page named head 5: pages after 0..4, then done at 5, not chasing 6, 7, …
    expect(asked).toEqual([0, 1, 2, 3, 4]);
    expect(log.cursor).toBe(5);
    expect(warned).toEqual([]);
  });

  it("stops at MAX_SYNC_PAGES pages under a head far away, keeps what it read, and goes on next time", async () => {
    const warned: PagingError[] = [];
    const log = agentLog(warned);
    const { session, asked } = fakeSession(oneRun(() => 2 ** 50));
    await log.sync(session);
    expect(asked.length).toBe(MAX_SYNC_PAGES);
    expect(log.cursor).toBe(MAX_SYNC_PAGES);
    expect(warned.length).toBe(1);
    expect(warned[0]?.detail).toContain(`after ${MAX_SYNC_PAGES} pages from sequence 0`);
    expect(warned[0]?.detail).toContain(`of the head ${2 ** 50} it named`);
    await log.sync(session);
    expect(asked.length).toBe(2 * MAX_SYNC_PAGES);
    expect(asked[MAX_SYNC_PAGES]).toBe(MAX_SYNC_PAGES);
    expect(warned.length).toBe(2);
  });

  it("refuses a head that goes back, a page beyond its own head, and a head no longer named", async () => {
    const back = fakeSession(oneRun((after) => 100 - after));
    const e1 = await agentLog([]).sync(back.session).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(PagingError);
    expect((e1 as PagingError).detail).toContain("went back from 100 to 99");

    const beyond = fakeSession(oneRun(() => 0));
    const e2 = await agentLog([]).sync(beyond.session).catch((e: unknown) => e);
    expect((e2 as PagingError).detail).toContain("a page ends at sequence 1, beyond the head 0");

    const dropped = fakeSession(oneRun((after) => (after === 0 ? 50 : undefined)));
    const e3 = await agentLog([]).sync(dropped.session).catch((e: unknown) => e);
    expect((e3 as PagingError).detail).toContain("names no head, where an earlier page of the same walk named 50");
  });

  it("judges pages as the Rust client does", () => {
    const p = new Paging(0);
    expect(p.next(0, 1, 1, true, 3)).toEqual({ kind: "after", after: 1 });
    expect(p.next(1, 2, 2, true, 4)).toEqual({ kind: "after", after: 2 });
    expect(p.next(2, 3, 3, true, 5)).toEqual({ kind: "done" });
    // A page with more that does not move the walk on ends it (the same page would come again).
    expect(new Paging(5).next(5, undefined, 5, true, 9)).toEqual({ kind: "done" });
    // A relay older than `head`: bounded by the page count alone.
    const old = new Paging(0);
    for (let i = 0; i < MAX_SYNC_PAGES - 1; i++) expect(old.next(i, i + 1, i + 1, true, undefined).kind).toBe("after");
    expect(old.next(MAX_SYNC_PAGES - 1, MAX_SYNC_PAGES, MAX_SYNC_PAGES, true, undefined)).toEqual({ kind: "budget" });
  });
});
