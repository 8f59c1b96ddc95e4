/**
 * `@sealdesk/client/ui`: the DOM helpers the widget and the console share — the element lookup,
 * the connection states in words, the alert line, times, the "Download" button of an attachment
 * line with its status line and its drawn paperclip (`clip.ts`), the one line on audit-log entries this version cannot read (`showUnreadable`), the "New messages below" button of a log scrolled up in (`new-below.ts`), a release notice in words, and the shares of one opening as one
 * notice (`releases.ts`), drawing a list again without losing the focus or the scroll
 * position (`redraw.ts`), and the runs the relay withheld drawn within bounds (`holes.ts`), and a send the relay did not answer shown as not confirmed
 * yet until a read tells its fate (`unanswered.ts`). A
 * separate entry (as `idb`), so the package's main entry stays free of the DOM and runs under
 * Node; a page imports both. Its
 * styles are `base.css` (`@sealdesk/client/ui/base.css`). Everything is written with
 * `textContent`: nothing from the relay or another member is HTML.
 */
import { lineTime } from "../dates.js";
import { AttachmentError, attachmentBlob, safeFileName, type AttachmentRef } from "../attachment.js";
import { TO_CUSTOMER, noticeSigner, noticeText, type Notice, type NoticeAudience } from "../notice.js";
import { unreadableNote } from "../audit-listing.js";
import type { Store } from "../store.js";

import { UNCONFIRMED_TITLE, unconfirmedBody } from "./releases.js";

export { clipIcon } from "./clip.js";
export { NEW_BELOW, newBelow, type NewBelow } from "./new-below.js";
export { redraw, replaceItem } from "./redraw.js";
export { HOLES_DRAWN, HOLES_LISTED, customerClaimText, customerHoleText, holesDrawn, listedHoleText, moreHolesItem, moreHolesText, setText, updateMoreHolesItem, type HolesAudience, type HolesDrawn, type MoreHoles } from "./holes.js";
export { SendQueue, UNANSWERED_SAYS, UnansweredSends, pageLock, sendKept, unansweredItem, wasOffline, wasUnanswered, type KeptOutcome, type LineSeen, type Unanswered, type UnansweredOptions, type UnansweredState } from "./unanswered.js";
export { UNCONFIRMED, UNCONFIRMED_TITLE, joinsOpening, openingBasis, releaseItem, unconfirmedBody, type ReleaseShare, type TrusteeCount } from "./releases.js";

/** The element `#id`. */
export function el<T extends HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (e === null) throw new Error(`missing #${id}`);
  return e as T;
}

/** A connection state (`ConnectionState`) in words. */
export const STATES: Record<string, string> = {
  connecting: "Connecting…",
  online: "Connected · end-to-end encrypted",
  offline: "Offline · reconnecting",
  stopped: "Disconnected",
};

/** Shows `text` in the page's `#alert`. */
export function showAlert(text: string): void {
  const a = el<HTMLDivElement>("alert");
  a.textContent = text;
  a.hidden = false;
}

/**
 * Says in `note` the audit-log entries of a kind this version cannot read that `store` keeps
 * (PROTOCOL §12.3, `unreadableNote`), in one line; hides it when there are none.
 */
export function showUnreadable(store: Store, note: HTMLElement | null): void {
  void unreadableNote(store).then((line) => {
    if (note === null) return;
    note.hidden = line === null;
    note.textContent = line === null ? "" : `The audit log holds ${line}: what it records (it could concern you) is not shown.`;
  });
}

/** A line's time (Unix seconds): "14:05" today, "5 Dec 2026, 14:05" before (`dates.ts`, not the browser's locale). */
export function time(secs: number): string {
  return lineTime(secs, Math.floor(Date.now() / 1000));
}

/**
 * Offers `bytes` as a download named after the sender's file name made safe (`safeFileName`),
 * as `application/octet-stream` (`attachmentBlob`): never opened in this page's origin.
 */
export function offerFile(bytes: Uint8Array, name: string): void {
  const url = URL.createObjectURL(attachmentBlob(bytes));
  const a = document.createElement("a");
  a.href = url;
  a.download = safeFileName(name);
  a.rel = "noopener";
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/**
 * A "Download" button for an attachment line, with its status line: fetches and checks the file,
 * then offers it; a file that fails a check shows the reason (`data-error`: the failure) and is
 * never offered. A page that draws its lines again keeps the element (the outcome is in it).
 */
export function downloadButton(ref: AttachmentRef, fetchFile: (ref: AttachmentRef) => Promise<Uint8Array>): HTMLElement {
  const wrap = document.createElement("span");
  wrap.className = "attachment";
  const b = document.createElement("button");
  b.type = "button";
  b.className = "download";
  b.textContent = "Download";
  const status = document.createElement("span");
  status.className = "attachment-status";
  status.setAttribute("role", "status");
  b.addEventListener("click", () => {
    b.disabled = true;
    status.textContent = "Fetching and checking…";
    delete status.dataset.error;
    fetchFile(ref)
      .then((bytes) => {
        status.textContent = "Checked ✓";
        offerFile(bytes, ref.name);
      })
      .catch((e: unknown) => {
        status.dataset.error = e instanceof AttachmentError ? e.failure : "failed";
        status.textContent = e instanceof AttachmentError && e.failure !== "bad_answer" ? "This file failed its integrity check (it was altered or is incomplete) and was not saved." : `The file could not be fetched: ${e instanceof Error ? e.message : String(e)}`;
      })
      .finally(() => {
        b.disabled = false;
      });
  });
  wrap.append(b, status);
  return wrap;
}

const NOTICE_TITLES: Record<Notice["kind"], string> = {
  release: "Release notice",
  closed: "Dispute closed",
  erasure: "Erasure notice",
  revocation: "Consent revoked",
  other: "Audit log notice",
};

/**
 * A release (or erasure, revocation, dispute-closed) notice as a list item, in `audience`'s words
 * (the customer's by default: "under your consent"; an agent's: "under the customer's consent",
 * signed by "the customer <name>"), in one of three states (`data-state`):
 *
 * - `verified`: "Verified ✓: signed by …, proven in the public audit log (entry i of n), vouched
 *   for by the business's key trustees";
 * - `unwitnessed`: signed and proven, but too few of the org's trustees vouch for the log yet
 *   (titled "… — not yet confirmed", one plain sentence, the rest behind "Details"; the caller
 *   checks it again), never shown as genuine;
 * - `unverified`: NOT GENUINE, or a repeat: "treat it with suspicion".
 *
 * `data-verified` and `data-witnessed` say the verdict too; `data-seq` is the notice's place.
 * A notice without its event (an older caller's) is said in its own `text`.
 */
export function noticeItem(n: Notice, audience: NoticeAudience = TO_CUSTOMER): HTMLLIElement {
  const pending = !n.verified && (n.unwitnessed ?? null) !== null;
  const state = n.verified ? "verified" : pending ? "unwitnessed" : "unverified";
  const li = document.createElement("li");
  li.className = `notice ${n.verified ? "verified" : pending ? "pending" : "unverified"}`;
  li.dataset.seq = String(n.seq);
  li.dataset.state = state;
  li.dataset.verified = String(n.verified);
  li.dataset.witnessed = String(!pending);
  const head = document.createElement("strong");
  const title = NOTICE_TITLES[n.kind];
  head.textContent = n.verified ? title : pending ? `${title} — ${UNCONFIRMED_TITLE}` : `${title} (not verified)`;
  const text = n.event === undefined ? n.text : noticeText(n.event, n.signer, audience, n.failure ?? null, n.unwitnessed ?? null, n.repeat ?? false);
  const said = `${text.charAt(0).toUpperCase()}${text.slice(1)}.`;
  if (pending) {
    li.append(head, ...unconfirmedBody(said, "Signed and proven in the audit log, but not yet vouched for by enough of the business's key trustees. Until then treat it as unconfirmed."));
    return li;
  }
  const body = document.createElement("p");
  body.textContent = said;
  const proof = document.createElement("span");
  proof.className = "meta";
  proof.textContent = n.verified
    ? `Verified ✓: signed by ${noticeSigner(n.by, audience)}, proven in the public audit log (entry ${n.index} of ${n.provenIn}), vouched for by the business's key trustees.`
    : "Not verified: treat it with suspicion.";
  li.append(head, body, proof);
  return li;
}
