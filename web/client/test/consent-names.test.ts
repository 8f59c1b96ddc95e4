/**
 * How a notice names a consent to the customer (`consent-names.ts`), as the CLI does: "under
 * your consent of 2 Dec 2026" when the customer's client knows it (granted from this browser: the
 * day of its own record, never the day the trustee's entry claims), its short id (8 hex digits)
 * otherwise; an agent's words are unchanged. Both a single notice (`noticeText`) and one opening
 * (`openingBasis`, the shared `releaseItem`'s sentence) say it the same way.
 */
import { describe, expect, it } from "vitest";
import { toHex } from "@sealdesk/protocol";
import { TO_CUSTOMER, consentName, noticeText, openingOf, shortHex, type NoticeAudience } from "../src/index.js";
import { openingBasis } from "../src/ui/releases.js";
import { release, t1 } from "./audit-log.fixture.js";

/** 2 Dec 2026, 10:00 UTC: the day the customer's own record says the consent was issued. */
const ISSUED = 1_796_205_600;

describe("a consent named in a release notice", () => {
  const { entry } = release(t1);
  const event = entry.event;
  if (!("release" in event) || !("consent" in event.release.basis)) throw new Error("fixture: a release under a consent");
  const basis = event.release.basis;
  const id = toHex(basis.consent.id);
  const known: NoticeAudience = { kind: "customer", consents: new Map([[id, ISSUED]]) };

  it("says a consent the client knows by its day, any other by its short id", () => {
    expect(shortHex(id)).toBe(id.slice(0, 8));
    expect(shortHex(id)).toMatch(/^[0-9a-f]{8}$/);
    expect(consentName(id, new Map([[id, ISSUED]]))).toBe("of 2 Dec 2026");
    expect(consentName(id, new Map())).toBe(id.slice(0, 8));
    expect(consentName(id, undefined)).toBe(id.slice(0, 8));
  });

  it("names it so in a single notice, from the client's record and not the entry's claim", () => {
    const said = noticeText(event, "t1", known, null, null, false);
    expect(said).toBe("the trustee t1 released its share to acme for epochs 0–1 of this chat under your consent of 2 Dec 2026");
    // The entry claims another day (its trustee signed it): the customer's own record wins.
    expect(basis.consent.issuedAt).not.toBe(ISSUED);
    const unknown = noticeText(event, "t1", TO_CUSTOMER, null, null, false);
    expect(unknown).toBe(`the trustee t1 released its share to acme for epochs 0–1 of this chat under your consent ${id.slice(0, 8)}`);
    expect(unknown).not.toContain(id);
    // An agent's words are as before: the customer's consent, by its id.
    expect(noticeText(event, "t1", { kind: "agent", customer: "erin" }, null, null, false)).toContain(`under the customer's consent ${id}`);
  });

  it("names it so in one opening's notice", () => {
    const o = openingOf(entry);
    if (o === null) throw new Error("fixture: an opening");
    expect(openingBasis(o, known)).toBe("under your consent of 2 Dec 2026");
    expect(openingBasis(o, TO_CUSTOMER)).toBe(`under your consent ${id.slice(0, 8)}`);
    expect(openingBasis(o, { kind: "customer", consents: new Map([["00".repeat(16), ISSUED]]) })).toBe(`under your consent ${id.slice(0, 8)}`);
    expect(openingBasis(o, { kind: "agent", customer: "erin" })).toBe(`under the customer's consent ${id}`);
  });
});
