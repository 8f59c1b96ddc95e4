/**
 * The customer's words for a withheld run the relay made a false claim about (`ui/holes.ts`,
 * under Node; issue 20): the run's own line says what the relay claimed — items of a part of
 * the chat she was not in (an epoch), or a consent or notice meant for someone else
 * (conversation-level) — and that it is false, while it is asked for and once given up; the
 * summary line counts the runs claimed; a run without a claim reads as before.
 */
import { describe, expect, it } from "vitest";
import { REFETCH_LIMIT, type Hole } from "../src/index.js";
import { customerClaimText, customerHoleText, holesDrawn, listedHoleText, moreHolesText } from "../src/ui/index.js";

const ORG = "acme";
const CUSTOMER = { kind: "customer", org: ORG } as const;

describe("the relay's false claim in the customer's words", () => {
  it("says nothing more for a run without a claim", () => {
    const h: Hole = { from: 7, to: 7, tries: 1 };
    expect(customerClaimText(h, ORG)).toBe("");
    expect(customerHoleText(h, ORG)).toBe("Item #7 has not arrived: asking the relay again (asked 1 of 3 times).");
    expect(customerHoleText({ ...h, tries: REFETCH_LIMIT }, ORG)).toBe("Item #7 was not delivered: the relay withheld it for good (asked 3 times). Something may be missing here; ask acme if in doubt.");
  });

  it("says an epoch claim is false, while asked for and once given up", () => {
    const h: Hole = { from: 7, to: 7, tries: 2, claimed: 0 };
    const claim = "The relay claims it belongs to a part of this chat you were not in, which is false: you may read everything in your own conversation. Tell acme.";
    expect(customerHoleText(h, ORG)).toBe(`Item #7 has not arrived: asking the relay again (asked 2 of 3 times). ${claim}`);
    expect(customerHoleText({ ...h, tries: REFETCH_LIMIT }, ORG)).toBe(`Item #7 was not delivered: the relay withheld it for good (asked 3 times). ${claim}`);
  });

  it("says a conversation-level claim is false, for a run of several items too", () => {
    const h: Hole = { from: 7, to: 9, tries: REFETCH_LIMIT, claimed: null };
    expect(customerHoleText(h, ORG)).toBe(
      "Items #7 to #9 were not delivered: the relay withheld them for good (asked 3 times). The relay claims they are consents or notices meant for someone else, which is false: you may read everything in your own conversation. Tell acme.",
    );
    expect(listedHoleText(h, CUSTOMER)).toBe("Items #7 to #9 (3 items): the relay's claim about them is false");
    expect(listedHoleText({ from: 4, to: 4, tries: 1, claimed: 2 }, CUSTOMER)).toBe("Item #4: the relay's claim about it is false");
  });

  it("counts the claimed runs in the summary line", () => {
    const runs: Hole[] = Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? { from: 10 + 2 * i, to: 10 + 2 * i, tries: 1, claimed: 1 } : { from: 10 + 2 * i, to: 10 + 2 * i, tries: 1 }));
    const more = holesDrawn(runs).more;
    if (more === null) throw new Error("no summary");
    expect(more.claimed).toBe(2);
    expect(moreHolesText(more, CUSTOMER)).toBe(
      "The relay withheld 4 more runs of items (4 items in all, #18 to #24) in this conversation — it may be hiding parts of it. It claims 2 of these runs hold only items you may not read, which is false: everything in your own conversation is yours to read. Tell acme.",
    );
  });
});
