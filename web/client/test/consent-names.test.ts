/**
 * How a notice names a consent to the customer (`consent-names.ts`), as the CLI does: "under
 * your consent of 2 Dec 2026" when the customer's client knows it (granted from this browser: the
 * day of its own record, never the day the trustee's entry claims), its short id (8 hex digits)
 * otherwise, with the short id after the day only where two consents share it; an agent reads
 * the days the release entries claim (`consentsClaimed`), as the CLI says them to anyone but the
 * customer. Never a full id. Both a single notice (`noticeText`, a revocation's too) and one
 * opening (`openingBasis`, the shared `releaseItem`'s sentence) say it the same way.
 */
import { describe, expect, it } from "vitest";
import { toHex, type AuditEvent } from "@sealdesk/protocol";
import { TO_CUSTOMER, consentName, dayMonth, consentsClaimed, noticeText, openingOf, shortHex, type NoticeAudience } from "../src/index.js";
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

  it("adds the short id only where two consents the reader knows share a day", () => {
    const other = "ab".repeat(16);
    // The same day (an hour later): both need their short ids.
    const twins = new Map([
      [id, ISSUED],
      [other, ISSUED + 3_600],
    ]);
    expect(consentName(id, twins)).toBe(`of 2 Dec 2026, ${id.slice(0, 8)}`);
    expect(consentName(other, twins)).toBe("of 2 Dec 2026, abababab");
    // Another day: the days alone tell them apart.
    const apart = new Map([
      [id, ISSUED],
      [other, ISSUED + 86_400],
    ]);
    expect(consentName(id, apart)).toBe("of 2 Dec 2026");
    expect(consentName(other, apart)).toBe("of 3 Dec 2026");
  });

  it("names a revoked consent by its day, never its full id", () => {
    const revoked: AuditEvent = { consent_revocation: { conversation: new Uint8Array(16), consent: basis.consent.id } };
    expect(noticeText(revoked, null, known, null, null, false)).toBe("your consent of 2 Dec 2026 was revoked");
    expect(noticeText(revoked, null, TO_CUSTOMER, null, null, false)).toBe(`your consent ${id.slice(0, 8)} was revoked`);
    const agent = noticeText(revoked, null, { kind: "agent", customer: "erin", consents: consentsClaimed([{ event } as never]) }, null, null, false);
    expect(agent).toBe(`the customer's consent of ${dayMonth(basis.consent.issuedAt)} was revoked`);
    expect(noticeText(revoked, null, { kind: "agent", customer: "erin" }, null, null, false)).toBe(`the customer's consent ${id.slice(0, 8)} was revoked`);
    for (const said of [agent, noticeText(revoked, null, TO_CUSTOMER, null, null, false)]) expect(said).not.toContain(id);
  });

  it("names it so in a single notice, from the client's record and not the entry's claim", () => {
    const said = noticeText(event, "t1", known, null, null, false);
    expect(said).toBe("the trustee t1 released its share to acme for epochs 0–1 of this chat under your consent of 2 Dec 2026");
    // The entry claims another day (its trustee signed it): the customer's own record wins.
    expect(basis.consent.issuedAt).not.toBe(ISSUED);
    const unknown = noticeText(event, "t1", TO_CUSTOMER, null, null, false);
    expect(unknown).toBe(`the trustee t1 released its share to acme for epochs 0–1 of this chat under your consent ${id.slice(0, 8)}`);
    expect(unknown).not.toContain(id);
    // An agent's words: the customer's consent, by the day the entries claim (as the CLI
    // says it to anyone but the customer), else its short id.
    const claimed = consentsClaimed([{ event } as never]);
    expect(claimed.get(id)).toBe(basis.consent.issuedAt);
    expect(noticeText(event, "t1", { kind: "agent", customer: "erin", consents: claimed }, null, null, false)).toContain(`under the customer's consent of ${dayMonth(basis.consent.issuedAt)}`);
    expect(noticeText(event, "t1", { kind: "agent", customer: "erin" }, null, null, false)).toContain(`under the customer's consent ${id.slice(0, 8)}`);
  });

  it("names it so in one opening's notice", () => {
    const o = openingOf(entry);
    if (o === null) throw new Error("fixture: an opening");
    expect(openingBasis(o, known)).toBe("under your consent of 2 Dec 2026");
    expect(openingBasis(o, TO_CUSTOMER)).toBe(`under your consent ${id.slice(0, 8)}`);
    expect(openingBasis(o, { kind: "customer", consents: new Map([["00".repeat(16), ISSUED]]) })).toBe(`under your consent ${id.slice(0, 8)}`);
    expect(openingBasis(o, { kind: "agent", customer: "erin" })).toBe(`under the customer's consent ${id.slice(0, 8)}`);
  });
});
