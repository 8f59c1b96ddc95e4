/**
 * How a notice names a consent to the customer, as the CLI does: "your consent of 2 Dec 2026"
 * (the day it was issued, `client/src/notice.rs`'s `under_words`) when this customer's client
 * knows the consent — it was granted from this browser, so its record (`consent/<id>`) is in the
 * store — and otherwise a short id, the first 8 hex digits (as the CLI's short ids): never the
 * day a release entry claims, which its trustee, not the customer, signed.
 */
import { dayMonth } from "./dates.js";

/** The consents a customer's client knows: id (hex) → when it was issued (Unix seconds). */
export type KnownConsents = ReadonlyMap<string, number>;

/** The first 8 hex digits of an id (hex), as the CLI's short ids. */
export function shortHex(id: string): string {
  return id.slice(0, 8);
}

/**
 * A consent (`id`, hex) named for the customer: "of 2 Dec 2026" when `known` has it, else its
 * short id ("1a2b3c4d"), as in "under your consent of 2 Dec 2026".
 */
export function consentName(id: string, known: KnownConsents | undefined): string {
  const issuedAt = known?.get(id);
  return issuedAt === undefined ? shortHex(id) : `of ${dayMonth(issuedAt)}`;
}
