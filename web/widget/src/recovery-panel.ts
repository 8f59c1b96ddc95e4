/**
 * Recovery codes in the widget (issue 22), two panels in the panel strip:
 *
 * - "Recovery code": makes a new replaceable code (`Customer.newRecoveryCode`: the record the
 *   CLI's `recovery-code` makes, stored on the relay) and shows it once with the account's
 *   name, until the customer says it is written down. The code is kept nowhere: not in the store,
 *   not in the page once hidden.
 * - "I have a recovery code": offered while this browser holds no conversation with the org
 *   (a fresh profile, cleared storage). Name and code — either a code this panel or `sealdesk
 *   recovery-code` made, or the one `sealdesk init` showed — → `recoverAccount` → the account's keys and
 *   conversation in this browser's store → the page reloads as that account. Every refusal says
 *   why in plain words, and nothing is stored then.
 *
 * The other open tabs of this origin hold the browser's former account in memory: the tab that
 * recovered tells them over the widget's BroadcastChannel (`{ recovered: name }`), and each
 * stops its customer at once (nothing more is sent or kept as the former account) and reloads
 * as the recovered one — at once, or, while its message box holds unsent text, when the
 * customer says so, the text left on screen to be copied (`recoveredElsewhere`). A tab that
 * was sending meanwhile is covered by the send lock the recovery writes under
 * (`customer-recovery.ts`).
 *
 * Built with `textContent` only, like the rest of the widget.
 */
import { RecoveryError, RelayError, recoverAccount, type Customer, type RecoverOptions } from "@sealdesk/client";

/** What recovering needs from the page (the customer's own setup, its send lock included). */
export type RecoveryPage = Omit<RecoverOptions, "name" | "code">;

/** What the tab that recovered tells the others (over the widget's BroadcastChannel). */
export interface RecoveredMessage {
  /** The recovered account's name. */
  recovered: string;
}

/** The account named by a tab message telling of a recovery, or null for any other message. */
export function recoveredIn(data: unknown): string | null {
  if (data === null || typeof data !== "object" || !("recovered" in data)) return null;
  const name = (data as { recovered: unknown }).recovered;
  return typeof name === "string" ? name : null;
}

/**
 * Another tab recovered account `name` into this browser's store: this tab's customer (the
 * former account) stops now, and the page reloads as the recovered account — at once, unless
 * `draft` holds unsent text: then the alert says what happened, the text stays in the box
 * (the page keeps it read-only, to be copied), and "Continue as NAME" reloads.
 */
export function recoveredElsewhere(customer: Customer, name: string, draft: HTMLTextAreaElement): void {
  customer.stop();
  if (draft.value.trim() === "") {
    location.reload();
    return;
  }
  const alert = document.getElementById("alert");
  if (alert === null) return location.reload();
  const go = make("button", { id: "recovered-continue", type: "button", textContent: `Continue as ${name}` });
  go.addEventListener("click", () => location.reload());
  alert.replaceChildren(make("p", { textContent: `This browser now holds the account ${name}, recovered in another tab; this tab no longer sends as the account it had. Your unsent text is kept in the box: copy it, then continue.` }), go);
  alert.dataset.code = "recovered_elsewhere";
  alert.removeAttribute("title");
  alert.hidden = false;
  go.focus();
}

function make<K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<HTMLElementTagNameMap[K]> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  Object.assign(e, props);
  e.append(...children);
  return e;
}

/** A refusal to recover, in words. */
export function recoveryRefusal(e: unknown, name: string, org: string): string {
  const who = `“${name}”`;
  if (e instanceof RecoveryError) {
    switch (e.failure) {
      case "code_format":
        return "That is not a recovery code: check it for a typo (40 letters and digits, in groups of five).";
      case "no_account":
        return `The relay knows no account ${who} that this code opens: check the account name and the code (an account made in a browser is named web-…).`;
      case "code_replaced":
        return `This code was replaced: a newer recovery code was made for ${who}, and only the newest one works.`;
      case "card_mismatch":
        return `The relay's card for ${who} is not the one this code makes: it was changed. Tell ${org} through another channel.`;
      case "unknown_name":
        return `No recovery code was saved for ${who}: check the account name (an account made in a browser is named web-…).`;
      case "wrong_code":
        return `This code does not open ${who}: check it. If a newer code was made since, only the newest works.`;
      case "tampered":
        return `The relay's copy of ${who} does not open as it should under this code: it was changed. Tell ${org} through another channel.`;
      case "not_registered":
        return `The relay does not know the account ${who}.`;
      case "fingerprint_mismatch":
        return `${org}'s key on this relay does not match the fingerprint this page was given: stopped.`;
      case "has_conversation":
        return `This browser already holds a conversation with ${org}; recovering here would replace it.`;
      case "bad_answer":
        return `The relay answered something unexpected (${e.message}).`;
    }
  }
  if (e instanceof RelayError) return `The relay refused (${e.message}).`;
  return `The relay could not be reached (${e instanceof Error ? e.message : String(e)}); try again.`;
}

/** The "Recovery code" panel: make a code, show it once. */
function savePanel(customer: Customer): HTMLDetailsElement {
  const name = make("code", { id: "recovery-name", textContent: customer.card.name });
  const button = make("button", { id: "recovery-make", type: "button", textContent: "Make a recovery code" });
  const code = make("code", { id: "recovery-code", className: "recovery-code" });
  const done = make("button", { id: "recovery-done", type: "button", textContent: "I have written it down" });
  const shown = make(
    "div",
    { id: "recovery-shown", className: "recovery-shown", hidden: true },
    make("p", {}, "Your new recovery code (with your account name ", make("code", { textContent: customer.card.name }), "):"),
    code,
    make("p", { textContent: "Write this down now: it is shown only this once, and this page does not keep it. Anyone who has it can read your chats and write as you. Making a new one retires this one." }),
    done,
  );
  const status = make("p", { id: "recovery-status", role: "status" });
  status.setAttribute("aria-live", "polite");
  button.addEventListener("click", () => {
    button.disabled = true;
    status.textContent = "Making a new code…";
    delete status.dataset.outcome;
    customer
      .newRecoveryCode()
      .then((text) => {
        code.textContent = text;
        shown.hidden = false;
        status.dataset.outcome = "made";
        status.textContent = "A new recovery code is in force; the one before no longer works.";
        // The strip is short: the code, not the end of the panel, is what must be in view.
        done.focus({ preventScroll: true });
        shown.scrollIntoView({ block: "start" });
      })
      .catch((e: unknown) => {
        status.dataset.outcome = "failed";
        // A refusal changed nothing; an answer that never came may have left the new code in force.
        status.textContent =
          e instanceof RelayError
            ? `No new code: the relay refused (${e.message}). The code before, if any, still works.`
            : "The relay did not confirm the new code: it may be in force although you have not seen it. Make a new one to be sure (that retires it).";
        status.scrollIntoView({ block: "nearest" });
      })
      .finally(() => {
        button.disabled = false;
      });
  });
  done.addEventListener("click", () => {
    code.textContent = "";
    shown.hidden = true;
    button.textContent = "Make a new recovery code";
    button.focus();
  });
  return make(
    "details",
    { id: "recovery", className: "policy recovery" },
    make("summary", { textContent: "Recovery code" }),
    make("p", {}, "If this browser loses its data, a recovery code and your account name ", name, " bring this account and its conversation back in another browser."),
    make("p", { className: "recovery-note", textContent: "If this page closes before a new code is shown, that code is in force but lost: make a new one, which retires it." }),
    make("p", {}, button),
    shown,
    status,
  );
}

/** The "I have a recovery code" panel: name and code, then the page reloads as that account. */
function recoverPanel(customer: Customer, page: RecoveryPage, tabs: BroadcastChannel | null): HTMLDetailsElement {
  const name = make("input", { id: "recover-name", name: "recover-name", required: true, autocomplete: "off", spellcheck: false });
  const code = make("input", { id: "recover-code", name: "recover-code", required: true, autocomplete: "off", spellcheck: false });
  const go = make("button", { id: "recover-go", type: "submit", textContent: "Recover" });
  const status = make("p", { id: "recover-status", role: "status" });
  status.setAttribute("aria-live", "polite");
  const form = make(
    "form",
    { id: "recover-form", className: "consent-form" },
    make("p", { textContent: `Chatted with ${page.org} before, in a browser whose data is gone? Your account name and recovery code bring that account and its conversation here.` }),
    make("label", { htmlFor: "recover-name", textContent: "Account name" }),
    name,
    make("label", { htmlFor: "recover-code", textContent: "Recovery code" }),
    code,
    go,
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const who = name.value.trim();
    go.disabled = true;
    status.textContent = "Recovering…";
    delete status.dataset.outcome;
    // The fresh account of this page stops first: the store becomes the recovered account's.
    customer.stop();
    recoverAccount({ ...page, name: who, code: code.value })
      .then((done) => {
        code.value = "";
        status.dataset.outcome = "recovered";
        status.textContent = `Recovered ${done.name}; loading your conversation…`;
        // The other tabs hold the former account: they load the recovered one too.
        tabs?.postMessage({ recovered: done.name } satisfies RecoveredMessage);
        location.reload();
      })
      .catch((e: unknown) => {
        status.dataset.outcome = e instanceof RecoveryError ? e.failure : "failed";
        status.textContent = `Not recovered: ${recoveryRefusal(e, who, page.org)} Nothing was stored.`;
        status.scrollIntoView({ block: "nearest" });
        go.disabled = false;
        customer.start();
      });
  });
  return make("details", { id: "recover", className: "policy recovery" }, make("summary", { textContent: "I have a recovery code" }), form, status);
}

/**
 * Adds both panels to `strip`; "I have a recovery code" shows only while there is no
 * conversation. A recovery is told to the other tabs over `tabs` (see the module docs).
 */
export function wireRecovery(strip: HTMLElement, customer: Customer, page: RecoveryPage, tabs: BroadcastChannel | null): void {
  const recover = recoverPanel(customer, page, tabs);
  strip.prepend(recover);
  strip.append(savePanel(customer));
  const show = (): void => {
    recover.hidden = customer.conversationId() !== null;
  };
  show();
  customer.on(show);
}
