/**
 * How many of the runs the relay withheld the console draws, and the summary's words (issue 20;
 * `@sealdesk/client/ui`'s `holes.ts`, under Node): every run up to `HOLES_DRAWN`, past it the
 * first few in place and one line for the rest — thousands of invented holes stay a handful of
 * items —, with every count in the right number and every false claim of the relay still said.
 */
import { REFETCH_LIMIT, withheldText, type Hole } from "@sealdesk/client";
import { HOLES_DRAWN, HOLES_LISTED, holesDrawn, listedHoleText, moreHolesText, type MoreHoles } from "@sealdesk/client/ui";
import { describe, expect, it } from "vitest";

/** `n` runs of one item each, two numbers apart from #10 on, asked for `tries` times. */
const runs = (n: number, tries = REFETCH_LIMIT, claimed?: number | null): Hole[] =>
  Array.from({ length: n }, (_, i) => (claimed === undefined ? { from: 10 + 2 * i, to: 10 + 2 * i, tries } : { from: 10 + 2 * i, to: 10 + 2 * i, tries, claimed }));

/** The summary of `holes`, which must have one. */
const more = (holes: readonly Hole[]): MoreHoles => {
  const m = holesDrawn(holes).more;
  if (m === null) throw new Error("no summary");
  return m;
};

const AGENT = { kind: "agent" } as const;

describe("which withheld runs the console draws", () => {
  it("draws nothing when nothing is withheld", () => {
    expect(holesDrawn([])).toEqual({ lines: [], more: null });
  });

  it("draws one run on its own line", () => {
    const one = runs(1);
    expect(holesDrawn(one)).toEqual({ lines: one, more: null });
  });

  it("draws every run on its own line up to the cap", () => {
    const at = runs(HOLES_DRAWN);
    expect(holesDrawn(at)).toEqual({ lines: at, more: null });
  });

  it("past the cap, draws the first few in place and sums up the rest in one line", () => {
    const past = runs(HOLES_DRAWN + 1);
    const d = holesDrawn(past);
    expect(d.lines).toEqual(past.slice(0, HOLES_DRAWN - 1));
    // Never more items than the cap: the lines and the summary.
    expect(d.lines.length + 1).toBe(HOLES_DRAWN);
    expect(d.more).toMatchObject({ first: past[HOLES_DRAWN - 1], runs: 2, items: 2, listed: past.slice(HOLES_DRAWN - 1), unlisted: 0 });
  });

  it("keeps thousands of runs to the cap's items, listing only the first few of them", () => {
    const many = runs(4000, REFETCH_LIMIT, 0);
    const d = holesDrawn(many);
    expect(d.lines).toHaveLength(HOLES_DRAWN - 1);
    const m = more(many);
    expect(m.runs).toBe(4000 - (HOLES_DRAWN - 1));
    expect(m.items).toBe(m.runs);
    expect(m.from).toBe(10 + 2 * (HOLES_DRAWN - 1));
    expect(m.to).toBe(10 + 2 * 3999);
    expect(m.listed).toHaveLength(HOLES_LISTED);
    expect(m.unlisted).toBe(m.runs - HOLES_LISTED);
    expect(m.claimed).toBe(m.runs);
    expect(m.givenUp).toBe(m.runs);
  });

  it("counts the items of runs of many numbers, the runs given up and those the relay lied about", () => {
    const holes: Hole[] = [...runs(HOLES_DRAWN - 1), { from: 100, to: 109, tries: REFETCH_LIMIT }, { from: 200, to: 202, tries: 1, claimed: 2 }, { from: 300, to: 300, tries: REFETCH_LIMIT, claimed: null }];
    expect(more(holes)).toMatchObject({ runs: 3, items: 14, from: 100, to: 300, givenUp: 2, claimed: 2 });
  });
});

describe("the summary's words", () => {
  it("says the runs given up as withheld, with how many runs and items, between which numbers", () => {
    const t = moreHolesText(more(runs(HOLES_DRAWN + 2)), AGENT);
    expect(t).toBe(
      `The relay withheld 3 more runs of items (3 items in all, #18 to #22) in this conversation — it may be hiding parts of it: not delivered after ${REFETCH_LIMIT} requests. Tell your security contact.`,
    );
  });

  it("says runs still asked for as never arrived", () => {
    const t = moreHolesText(more(runs(HOLES_DRAWN + 1, 1)), AGENT);
    expect(t).toBe("2 more runs of items (2 items in all, #18 to #20) never arrived in this conversation — the relay may be hiding parts of it: asking the relay again for them. Tell your security contact.");
  });

  it("tells given up from still asked for when both are summed up", () => {
    const holes = [...runs(HOLES_DRAWN - 1), { from: 50, to: 50, tries: REFETCH_LIMIT }, { from: 60, to: 61, tries: 1 }, { from: 70, to: 70, tries: 2 }];
    expect(moreHolesText(more(holes), AGENT)).toBe(
      `3 more runs of items (4 items in all, #50 to #70) never arrived in this conversation — the relay may be hiding parts of it: 1 not delivered after ${REFETCH_LIMIT} requests, 2 still asked for again. Tell your security contact.`,
    );
  });

  it("says one run and one item in the singular", () => {
    // With no line of their own (a cap of 0), a single run is summed up: one run, one item.
    const one = holesDrawn([{ from: 7, to: 7, tries: 1, claimed: 1 }], 0).more;
    expect(one).not.toBeNull();
    if (one === null) return;
    expect(moreHolesText(one, AGENT)).toBe(
      "1 more run of items (1 item in all, #7 to #7) never arrived in this conversation — the relay may be hiding parts of it: asking the relay again for it. The relay claims it holds only items you may not read, which is false — you are allowed to read them. Tell your security contact.",
    );
  });

  it("still says the relay's false claims, for some of the runs and for all of them", () => {
    const some = [...runs(HOLES_DRAWN - 1), { from: 50, to: 50, tries: REFETCH_LIMIT, claimed: 3 }, { from: 60, to: 60, tries: REFETCH_LIMIT }, { from: 70, to: 70, tries: REFETCH_LIMIT, claimed: null }];
    expect(moreHolesText(more(some), AGENT)).toContain("The relay claims 2 of these runs hold only items you may not read, which is false — you are allowed to read them.");
    const oneOf = [...runs(HOLES_DRAWN - 1), { from: 50, to: 50, tries: REFETCH_LIMIT, claimed: 3 }, { from: 60, to: 60, tries: REFETCH_LIMIT }];
    expect(moreHolesText(more(oneOf), AGENT)).toContain("The relay claims 1 of these runs holds only items you may not read, which is false");
    const all = moreHolesText(more(runs(3000, REFETCH_LIMIT, 0)), AGENT);
    expect(all).toContain("The relay claims all of these runs hold only items you may not read, which is false");
    // No claim, nothing said of one.
    expect(moreHolesText(more(runs(3000)), AGENT)).not.toContain("claims");
  });

  it("lists each run in the words of its own line, the relay's claim included", () => {
    const h: Hole = { from: 8, to: 9, tries: REFETCH_LIMIT, claimed: 2 };
    expect(listedHoleText(h, AGENT)).toBe(withheldText(h));
    expect(listedHoleText(h, AGENT)).toContain("which is false");
  });

  it("tells the customer (the widget) whom to ask", () => {
    const m = more(runs(1000));
    expect(moreHolesText(m, { kind: "customer", org: "acme" })).toBe(
      `The relay withheld 996 more runs of items (996 items in all, #18 to #2008) in this conversation — it may be hiding parts of it. Something may be missing here; ask acme if in doubt.`,
    );
    expect(listedHoleText({ from: 4, to: 4, tries: 1 }, { kind: "customer", org: "acme" })).toBe("Item #4");
    expect(listedHoleText({ from: 4, to: 6, tries: 1 }, { kind: "customer", org: "acme" })).toBe("Items #4 to #6 (3 items)");
  });
});
