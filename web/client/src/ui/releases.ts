/**
 * One opening of the conversation as one notice: each trustee's share of a release is its own
 * audit-log entry, judged on its own; a page shows the shares of one opening (same org, epochs
 * and consent or ticket: `Opening`) as one list item that says how many of the org's trustees
 * released it ("released by 2 of 3 trustees"), as the CLI's `history` shows one notice per
 * release. Text only (`textContent`).
 */
import type { Opening } from "../customer-notices.js";
import { TO_CUSTOMER, consentWords, type Notice, type NoticeAudience } from "../notice.js";

/** A trustee's share of an opening, as checked (`verified`, or `unwitnessed` with why). */
export type ReleaseShare = Notice & { opening: Opening | null; unwitnessed: string | null };

/** How many trustees the org has, and how many must release for an opening. */
export interface TrusteeCount {
  trustees: number;
  threshold: number;
}

/**
 * The one sentence a notice not yet witnessed says, in plain words for the customer (as the
 * CLI's "NOT YET CONFIRMED by the org's independent trustees; they usually confirm within a
 * minute"); the rest is behind "Details".
 */
export const UNCONFIRMED =
  "Recorded, but the business's independent trustees have not confirmed it yet. They usually do within a minute; until then, do not rely on it. This notice updates by itself.";

/** The title of a notice not yet witnessed: its kind's title, then this. */
export const UNCONFIRMED_TITLE = "not yet confirmed";

/**
 * The body of a notice not yet witnessed: one plain sentence, and behind a disclosure
 * ("Details") what it says (`full`) and why it is not confirmed (`proof`).
 */
export function unconfirmedBody(full: string, proof: string): HTMLElement[] {
  // The full text is the notice's one `p` (as a confirmed notice's), inside the disclosure.
  const plain = document.createElement("span");
  plain.className = "plain";
  plain.textContent = UNCONFIRMED;
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = "Details";
  const what = document.createElement("p");
  what.className = "full";
  what.textContent = full;
  const why = document.createElement("span");
  why.className = "meta";
  why.textContent = proof;
  details.append(summary, what, why);
  return [plain, details];
}

/** "t1", "t1 and t2", "t1, t2 and t3". */
function names(list: readonly string[]): string {
  if (list.length <= 1) return list.join("");
  return `${list.slice(0, -1).join(", ")} and ${list[list.length - 1] ?? ""}`;
}

/**
 * Whether a share may join its opening's notice: verified, or only not yet witnessed. A share
 * found NOT GENUINE is never merged into a genuine one: it is shown on its own (`noticeItem`).
 */
export function joinsOpening(n: ReleaseShare): boolean {
  return n.kind === "release" && n.opening !== null && (n.verified || (n.unwitnessed ?? null) !== null);
}

/**
 * What an opening was made under, in `audience`'s words: "under your consent of 2 Dec 2026" (a
 * consent the customer's client knows; else its short id: `consentWords`), "under dispute ticket
 * …, approved by 2 arbiters".
 */
export function openingBasis(o: Opening, audience: NoticeAudience): string {
  if (o.consent !== null) return `under ${consentWords(o.consent, audience)}`;
  return `under dispute ticket ${o.ticket ?? ""}, approved by ${o.approvers === 1 ? "1 arbiter" : `${o.approvers} arbiters`}`;
}

/**
 * The notice of one opening, from its shares (at least one, each `joinsOpening`): verified once
 * every share is, otherwise "not yet confirmed" (`data-state` as `noticeItem`'s; `data-shares`:
 * how many shares; `data-seqs`: their places).
 */
export function releaseItem(shares: readonly ReleaseShare[], count: TrusteeCount | null, audience: NoticeAudience = TO_CUSTOMER): HTMLLIElement {
  const sorted = [...shares].sort((a, b) => a.seq - b.seq);
  const first = sorted[0];
  const o = first?.opening ?? null;
  const verified = sorted.every((n) => n.verified);
  const li = document.createElement("li");
  li.className = `notice release ${verified ? "verified" : "pending"}`;
  li.dataset.seq = String(first?.seq ?? 0);
  li.dataset.seqs = sorted.map((n) => n.seq).join(" ");
  li.dataset.shares = String(sorted.length);
  li.dataset.state = verified ? "verified" : "unwitnessed";
  li.dataset.verified = String(verified);
  li.dataset.witnessed = String(verified);
  const head = document.createElement("strong");
  head.textContent = verified ? "Release notice" : `Release notice — ${UNCONFIRMED_TITLE}`;
  const trustees = sorted.map((n) => n.signer ?? "a trustee");
  const epochs = o === null ? "" : o.first === o.last ? `epoch ${o.first}` : `epochs ${o.first}–${o.last}`;
  const basis = o === null ? "" : openingBasis(o, audience);
  const of = count === null ? `${sorted.length} ${sorted.length === 1 ? "trustee" : "trustees"}` : `${sorted.length} of ${count.trustees} ${count.trustees === 1 ? "trustee" : "trustees"}`;
  const needed = count === null ? "" : `; ${count.threshold} needed`;
  const said = `${o?.org ?? "The business"} opened ${epochs} of this chat ${basis}: released by ${of} (${names(trustees)}${needed}).`;
  const body = document.createElement("p");
  body.textContent = said;
  const proof = document.createElement("span");
  proof.className = "meta";
  const entries = sorted.map((n) => String(n.index));
  const provenIn = Math.max(...sorted.map((n) => n.provenIn));
  const by = `signed by ${sorted.length === 1 ? "trustee" : "trustees"} ${names(trustees)}`;
  const where = `${sorted.length === 1 ? "entry" : "entries"} ${names(entries)} of ${provenIn}`;
  if (!verified) {
    li.append(head, ...unconfirmedBody(said, `Signed and proven in the audit log (${where}), but not yet vouched for by enough of the business's key trustees. Until then treat it as unconfirmed.`));
    return li;
  }
  proof.textContent = `Verified ✓: ${by}, proven in the public audit log (${where}), vouched for by the business's key trustees.`;
  li.append(head, body, proof);
  return li;
}
