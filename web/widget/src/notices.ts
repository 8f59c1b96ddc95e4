/**
 * How the widget shows an audit-log notice (a release, an erasure, a revocation, a dispute
 * closed): verified (signed by the party allowed to make it, proven in the log, vouched for by
 * enough of the org's trustees), not yet witnessed (proven, but too few trustees vouch for the
 * log yet: checked again by itself, never shown as genuine), or not verified (NOT GENUINE). A
 * notice whose verdict changes is shown again in place (same `data-seq`). Text only
 * (`textContent`): nothing from the relay is HTML.
 */
import type { ShownNotice } from "@sealdesk/client";

const TITLES: Record<ShownNotice["kind"], string> = {
  release: "Release notice",
  closed: "Dispute closed",
  erasure: "Erasure notice",
  revocation: "Consent revoked",
  other: "Audit log notice",
};

/** The notice's list item, built afresh (the caller puts it in place). */
export function noticeItem(n: ShownNotice): HTMLLIElement {
  const pending = n.unwitnessed !== null;
  const li = document.createElement("li");
  li.className = `notice ${n.verified ? "verified" : pending ? "pending" : "unverified"}`;
  li.dataset.seq = String(n.seq);
  li.dataset.verified = String(n.verified);
  li.dataset.witnessed = String(!pending);
  const head = document.createElement("strong");
  const title = TITLES[n.kind];
  head.textContent = n.verified ? title : pending ? `${title} (not yet witnessed)` : `${title} (not verified)`;
  const body = document.createElement("p");
  body.textContent = `${n.text.charAt(0).toUpperCase()}${n.text.slice(1)}.`;
  const proof = document.createElement("span");
  proof.className = "meta";
  proof.textContent = n.verified
    ? `Verified ✓: signed by ${n.by}, proven in the public audit log (entry ${n.index} of ${n.provenIn}), vouched for by the business's key trustees.`
    : pending
      ? "Signed and proven in the audit log, but not yet vouched for by enough of the business's key trustees. It is checked again by itself; until then treat it as unconfirmed."
      : "Not verified: treat it with suspicion.";
  li.append(head, body, proof);
  return li;
}
