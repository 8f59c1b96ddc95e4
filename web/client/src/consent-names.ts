/**
 * How a page names a consent, as the CLI does: "your consent of 2 Dec 2026" (the day it was
 * issued, `client/src/notice.rs`'s `under_words`), with its short id — the first 8 hex digits,
 * as the CLI's short ids — only where two consents would read the same ("of 2 Dec 2026,
 * 1a2b3c4d"), and the short id alone for a consent whose day the reader does not know. A full
 * id is never shown: 32 hex digits tell a person nothing.
 *
 * Whose days count: the customer's client knows the consents granted from this browser (their
 * records, `consent/<id>`, in the store), never the day a release entry claims, which its
 * trustee, not the customer, signed; an agent reads the days the conversation's release entries
 * claim (`consentsClaimed`), as the CLI says them to anyone but the customer.
 */
import { toHex } from "@sealdesk/protocol";
import { dayMonth } from "./dates.js";
import type { Notice } from "./notice.js";

/** The consents a reader knows: id (hex) → when it was issued (Unix seconds). */
export type KnownConsents = ReadonlyMap<string, number>;

/** The first 8 hex digits of an id (hex), as the CLI's short ids. */
export function shortHex(id: string): string {
  return id.slice(0, 8);
}

/**
 * A consent (`id`, hex) named: "of 2 Dec 2026" when `known` has it, "of 2 Dec 2026, 1a2b3c4d"
 * when another consent `known` has was issued the same day, else its short id ("1a2b3c4d"); as
 * in "under your consent of 2 Dec 2026".
 */
export function consentName(id: string, known: KnownConsents | undefined): string {
  const issuedAt = known?.get(id);
  if (issuedAt === undefined || known === undefined) return shortHex(id);
  const day = dayMonth(issuedAt);
  const twin = [...known].some(([other, at]) => other !== id && dayMonth(at) === day);
  return twin ? `of ${day}, ${shortHex(id)}` : `of ${day}`;
}

/** The consents the release entries among `notices` were made under, with the days they claim. */
export function consentsClaimed(notices: readonly Notice[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const n of notices) {
    const e = n.event;
    if (e !== undefined && "release" in e && "consent" in e.release.basis) out.set(toHex(e.release.basis.consent.id), e.release.basis.consent.issuedAt);
  }
  return out;
}
