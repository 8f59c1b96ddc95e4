/**
 * `SequenceHoles` with an agent's judge (PROTOCOL §13.10's table), without a relay: runs that
 * hold up are no holes, a lie is one with its claim (and stays one when a later run explains
 * the numbers), a pending claim becomes a lie once the epoch's record lists the reader, an
 * agent's numbers count only once its relay named runs or a head; and the withheld line's words.
 */
import { describe, expect, it } from "vitest";
import { SequenceHoles, withheldText, type Verdict } from "../src/index.js";

/** An agent who is a member of epoch 1, knows epoch 0 (no member) and not yet epoch 2. */
function agentHoles(known: Map<number, boolean>): SequenceHoles {
  const judge = (epoch: number | undefined): Verdict => {
    if (epoch === undefined) return "holds";
    const member = known.get(epoch);
    return member === undefined ? "unknown" : member ? "lie" : "holds";
  };
  return new SequenceHoles(judge, true);
}

describe("an agent's holes", () => {
  it("counts nothing before the relay names runs or a head", () => {
    const h = agentHoles(new Map());
    h.saw(1);
    h.saw(4);
    expect(h.open()).toEqual([]);
    h.head(4);
    expect(h.open()).toEqual([{ from: 2, to: 3 }]);
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
    expect(h.open()).toEqual([{ from: 2, to: 3, claimed: 1 }]);
    h.skipped({ from: 2, to: 3 });
    expect(h.open()).toEqual([{ from: 2, to: 3, claimed: 1 }]);
  });

  it("judges a run of an unknown epoch when its record arrives", () => {
    const known = new Map<number, boolean>();
    const h = agentHoles(known);
    h.skipped({ from: 1, to: 2, epoch: 2 });
    h.saw(3);
    expect(h.open()).toEqual([]);
    known.set(2, true);
    h.judgePending();
    expect(h.open()).toEqual([{ from: 1, to: 2, claimed: 2 }]);
  });

  it("shows a hole as withheld only once it was asked for", () => {
    const h = agentHoles(new Map());
    h.saw(1);
    h.head(3);
    expect(h.withheld()).toEqual([]);
    expect(h.toRefetch()).toEqual([{ from: 2, to: 3 }]);
    expect(h.withheld()).toEqual([{ from: 2, to: 3 }]);
  });
});

describe("the withheld line", () => {
  it("says how many items, where, and the false claim", () => {
    expect(withheldText({ from: 7, to: 7 })).toBe("The relay withheld 1 item here (#7): asked for again, not delivered.");
    expect(withheldText({ from: 7, to: 8, claimed: 2 })).toBe("The relay withheld 2 items here (#7 to #8): it claims these were items of epoch 2, which is false — you are allowed to read them.");
    expect(withheldText({ from: 7, to: 7, claimed: null })).toContain("it claims it was a consent or a notice, which is false");
  });
});
