/**
 * The customer's rights in the widget: the account's consents — granted here or on another
 * device (the CLI, another browser), read from the conversation and the audit log, and drawn
 * again when the customer's `consents` event says they changed — with where each stands (active, used, expired, revoked — the CLI's words), each named by the day it was
 * issued as everywhere else on the page ("your consent of 2 Dec 2026", with its short id only
 * when another shares the day: `consentName`), and a Revoke button for an active one, which says "revoked" only once the relay's log proves it (and whether the business's
 * trustees have vouched for it yet — a revocation not yet witnessed is checked again until it
 * is, and its confirmation line then says so in place); "Export my history" (a JSON download of the verified
 * history, the CLI's `history --export` shape); "Erase this conversation" (asked twice, then the
 * customer's signed request; the copy here stays readable). Text only (`textContent`).
 */
import { RECHECK_NOTICES_MS, consentName, dayMonth, type ConsentStatus, type Customer, type KnownConsents, type RevokeOutcome } from "@sealdesk/client";
import { redraw } from "@sealdesk/client/ui";

function byId<T extends HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (e === null) throw new Error(`missing #${id}`);
  return e as T;
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** The confirmation of a revocation made in this tab, in the customer's words. */
function revokedText(o: RevokeOutcome): string {
  if (o.state === "used") return `Not revoked: a trustee already released under this consent (audit log entry #${o.index}); a revocation cannot undo that, so nothing was logged.`;
  return o.witnessed
    ? `Revoked (audit log entry #${o.index}), proven in the log and vouched for by the business's key trustees: they will refuse it.`
    : `Revoked (audit log entry #${o.index}), but NOT YET CONFIRMED by the business's independent trustees; they usually confirm within a minute (checked again every ${RECHECK_NOTICES_MS / 1000} s). If it stays unconfirmed, the relay may be hiding it from them.`;
}

/** Wires the consent list, export and erase; `changed` is called when sending may have stopped. */
export function wireRights(customer: Customer, changed: () => void): { refreshConsents: () => void } {
  const list = byId<HTMLUListElement>("consents");
  const status = byId<HTMLParagraphElement>("consent-status");
  /**
   * The revocation the status line confirms while it is not yet witnessed: its proof checked
   * again (nothing logged again, `revokeConsent` of a consent revoked here) every
   * `RECHECK_NOTICES_MS` until the trustees vouch for a log holding it; the same line then says
   * so. A newer revocation takes the line (and the timer) over.
   */
  let witnessing: ReturnType<typeof setInterval> | null = null;
  const stopWitnessing = (): void => {
    if (witnessing !== null) clearInterval(witnessing);
    witnessing = null;
  };
  const confirmRevoked = (id: string, o: RevokeOutcome): void => {
    stopWitnessing();
    status.dataset.outcome = o.state;
    if (o.state === "revoked") {
      status.dataset.consent = id;
      status.dataset.witnessed = String(o.witnessed);
    }
    status.textContent = revokedText(o);
    if (o.state !== "revoked" || o.witnessed) return;
    let checking = false;
    const timer = setInterval(() => {
      if (checking) return;
      checking = true;
      customer
        .revokeConsent(id)
        .then((again) => {
          // Still this revocation's line: said witnessed once it is (a failed check is tried again).
          if (witnessing !== timer || again.state !== "revoked" || !again.witnessed) return;
          stopWitnessing();
          status.dataset.witnessed = "true";
          status.textContent = revokedText(again);
        })
        .catch(() => undefined)
        .finally(() => (checking = false));
    }, RECHECK_NOTICES_MS);
    witnessing = timer;
  };

  /** One consent's row; `known` holds every consent listed (to tell apart two of one day). */
  const row = (c: ConsentStatus, known: KnownConsents): HTMLLIElement => {
    const li = document.createElement("li");
    li.dataset.consent = c.id;
    li.dataset.key = c.id;
    li.dataset.issued = String(c.issuedAt);
    li.dataset.state = c.state;
    const what = document.createElement("span");
    const until = dayMonth(c.expiresAt);
    const name = `your consent ${consentName(c.id, known)}`;
    what.textContent = `“${c.purpose}”, ${name} — ${c.state}${c.state === "active" ? `, until ${until}` : ""}${c.entry === null ? "" : `, audit log entry #${c.entry}`}`;
    li.append(what);
    if (c.state === "active") {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = "Revoke";
      b.setAttribute("aria-label", `Revoke ${name} for “${c.purpose}”`);
      b.addEventListener("click", () => {
        b.disabled = true;
        stopWitnessing();
        delete status.dataset.witnessed;
        delete status.dataset.consent;
        status.textContent = "Revoking: waiting for the audit log to prove it…";
        customer
          .revokeConsent(c.id)
          .then((o) => confirmRevoked(c.id, o))
          .catch((e: unknown) => {
            status.dataset.outcome = "failed";
            status.textContent = `Not revoked: ${message(e)}`;
          })
          .finally(refreshConsents);
      });
      li.append(b);
    }
    return li;
  };

  function refreshConsents(): void {
    customer
      .consentStates()
      .then((all) => {
        // Drawn again in place: a Revoke button focused (or about to take an Enter) keeps it.
        const known = new Map(all.map((c) => [c.id, c.issuedAt] as const));
        redraw(list, all.map((c) => row(c, known)), byId("panels"));
        list.hidden = all.length === 0;
        // "Consent granted …" no longer holds once that consent is revoked (or expired).
        const result = byId("consent-result");
        const shown = all.find((c) => c.id === result.dataset.consent);
        if (shown !== undefined && shown.state !== "active" && shown.state !== "used") {
          result.textContent = "";
          delete result.dataset.consent;
        }
      })
      .catch(() => undefined);
  }

  // Export: the verified history as a JSON file (this browser's own data, not a received file).
  byId<HTMLButtonElement>("export").addEventListener("click", () => {
    const out = byId("data-status");
    try {
      const data = customer.exportHistory();
      const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: "application/json" }));
      const a = document.createElement("a");
      a.href = url;
      a.download = `sealdesk-history-${data.conversation}.json`;
      a.hidden = true;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      out.textContent = `Exported ${data.lines.length} lines (plaintext: keep the file safe).`;
    } catch (e) {
      out.textContent = `Not exported: ${message(e)}`;
    }
  });

  // Erase: asked twice (an inline confirmation, reachable by keyboard).
  const erase = byId<HTMLButtonElement>("erase");
  const confirm = byId<HTMLDivElement>("erase-confirm");
  erase.addEventListener("click", () => {
    confirm.hidden = false;
    byId<HTMLButtonElement>("erase-no").focus();
  });
  byId<HTMLButtonElement>("erase-no").addEventListener("click", () => {
    confirm.hidden = true;
    erase.focus();
  });
  byId<HTMLButtonElement>("erase-yes").addEventListener("click", () => {
    const out = byId("data-status");
    const yes = byId<HTMLButtonElement>("erase-yes");
    yes.disabled = true;
    customer
      .erase()
      .then(() => {
        confirm.hidden = true;
        erase.disabled = true;
        out.dataset.erased = "true";
        out.textContent = "Erased on the relay. Your copy in this browser stays readable; nothing more can be sent in this conversation.";
      })
      .catch((e: unknown) => {
        out.textContent = `Not erased: ${message(e)}`;
      })
      .finally(() => {
        yes.disabled = false;
        changed();
      });
  });
  if (customer.isErased()) {
    erase.disabled = true;
    byId("data-status").textContent = "This conversation was erased on the relay; this is your copy in this browser.";
  }
  return { refreshConsents };
}
