/**
 * The customer chat widget: the page the relay serves (usually inside an iframe that
 * `embed.js` puts on the business's site). Configured by its query: `?org=NAME&fp=FINGERPRINT`
 * (the master fingerprint the business publishes). It talks only to the relay it came from
 * (`/v1/ws` on the same origin; the Content-Security-Policy allows nothing else).
 *
 * Keys and history stay in this browser: IndexedDB, encrypted under a non-extractable WebCrypto
 * key (`@sealdesk/client`'s `IdbStore`). Only one tab sends at a time (a Web Lock around each
 * send, the counter persisted before encrypting); the others follow over a BroadcastChannel.
 * The DOM is written with `textContent` only: nothing from the relay or the agent is HTML.
 */
import { Customer, CustomerError, RelayError, consentName, policySummary, storeSendLock, type ChatLine, type CustomerEvent, type NoticeAudience, type ShownNotice, type SocketLike } from "@sealdesk/client";
import { IdbStore } from "@sealdesk/client/idb";
import { STATES, UnansweredSends, clipIcon, downloadButton, el, joinsOpening, newBelow, noticeItem, releaseItem, replaceItem, showAlert, showUnreadable, time, unansweredItem, wasOffline, wasUnanswered, type Unanswered } from "@sealdesk/client/ui";
import { fromHex, toHex } from "@sealdesk/protocol";
import { showMarks, wireLiveSigns } from "./receipts.js";
import { wireRights } from "./rights.js";
import { wireUploads } from "./uploads.js";
import { wirePanels } from "./panels.js";
import { plainRefusal } from "./refusals.js";
import { recoveredElsewhere, recoveredIn, wireRecovery } from "./recovery-panel.js";
import { agentKeyReason } from "./agent-key-words.js";
import { wireHoles } from "./holes-view.js";

/**
 * Shows `text` in the alert; `support` (a code and the library's detail) goes only in its
 * `title` and `data-code`, for a support request, and is cleared by an alert without one.
 */
function alertSays(text: string, support?: { code: string; detail: string }): void {
  showAlert(text);
  const a = el("alert");
  if (support === undefined) {
    a.removeAttribute("title");
    delete a.dataset.code;
  } else {
    a.title = `${support.code}: ${support.detail}`;
    a.dataset.code = support.code;
  }
}

/** The widget's one conversation, as `UnansweredSends` names it. */
const WIDGET = "widget";

async function main(): Promise<void> {
  const params = new URLSearchParams(location.search);
  const org = params.get("org") ?? "";
  const fp = params.get("fp") ?? "";
  // An open token the business's page passed (hex, as `sealdesk token issue` prints it).
  const tokenHex = params.get("token") ?? "";
  el("org-name").textContent = org || "…";
  if (org === "" || fp === "") {
    alertSays("This chat is not set up: the page needs ?org=NAME&fp=FINGERPRINT.");
    return;
  }
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/ws`;
  const store = await IdbStore.open(`sealdesk/${org}`);
  const lockName = `sealdesk-send/${org}`;
  const setup = {
    url,
    org,
    masterFingerprint: fp,
    store,
    socket: (u: string) => new WebSocket(u) as unknown as SocketLike,
    random: (n: number) => crypto.getRandomValues(new Uint8Array(n)),
    now: () => Math.floor(Date.now() / 1000),
    // What an older relay showed it does not know, kept for an hour across the origin's tabs
    // (neither a reload nor another tab asks it again); `localStorage` itself may throw where
    // storage is denied.
    relayMemory: () => window.localStorage,
    // One tab seals at a time, from a counter's reservation to the relay's answer; a recovery
    // writes the store under the same lock. Without Web Locks, this tab's sends still go one at
    // a time (`storeSendLock`); the tabs then may overtake one another at the relay.
    withSendLock: <T>(f: () => Promise<T>): Promise<T> => (navigator.locks === undefined ? storeSendLock(store)(f) : (navigator.locks.request(lockName, f) as Promise<T>)),
  };
  const customer = await Customer.load({
    ...setup,
    ...(/^([0-9a-f]{2})+$/i.test(tokenHex) ? { openToken: fromHex(tokenHex) } : {}),
  });
  // The customer's public signing key (hex): what the business's web server names in an open
  // token (`sealdesk token issue --customer`), read by the page that embeds the widget.
  document.body.dataset.customerKey = toHex(customer.card.signingKey);
  const tabs = typeof BroadcastChannel === "undefined" ? null : new BroadcastChannel(`sealdesk/${org}`);

  const log = el<HTMLOListElement>("log");
  const text = el<HTMLTextAreaElement>("text");
  const send = el<HTMLButtonElement>("send");
  const file = el<HTMLInputElement>("file");
  const conn = el<HTMLParagraphElement>("conn");
  const rows = new Map<number, HTMLLIElement>();
  // The log follows its newest item only while the customer left it at its end; scrolled up to
  // read, it stands still and "New messages below" says what came (`newBelow`, as in the
  // console). Pressed, the button goes: the focus to the message box, not lost to the body.
  const below = newBelow(log, el<HTMLButtonElement>("new-below"), () => {
    if (!text.disabled) text.focus();
  });
  let online = false;
  let policyShown = false;
  // The account another tab recovered into this browser (this tab's customer is stopped), or null.
  let recoveredAs: string | null = null;

  const canSend = (): boolean => online && policyShown && customer.blockedBecause() === null;
  const refresh = (): void => {
    if (recoveredAs !== null) {
      // Stopped, its unsent text kept to be copied (`recoveredElsewhere`): nothing is sent here.
      text.disabled = false;
      text.readOnly = true;
      send.disabled = true;
      file.disabled = true;
      return;
    }
    // The box takes the focus before the policy is shown: on a relay that shows the policy only
    // to registered accounts, focusing it is what begins the chat.
    text.disabled = !(online && customer.blockedBecause() === null);
    file.disabled = !canSend();
    send.disabled = !canSend();
    document.body.dataset.conversation = customer.conversationId() ?? "";
    el<HTMLDetailsElement>("consent").hidden = !(customer.conversationId() !== null && customer.policy?.allowConsent === true && !customer.isErased());
    el<HTMLDetailsElement>("your-data").hidden = customer.conversationId() === null;
  };
  const readMarks = (): void => showMarks(rows, customer);
  const showError = (err: unknown): void => {
    if (err instanceof CustomerError && err.failure === "fingerprint_mismatch") {
      alertSays(`Stopped: ${org}'s key on this relay does not match the fingerprint this page was given. Do not write here; tell ${org} through another channel. (${err.message})`);
    } else {
      alertSays(`Error: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  const live = wireLiveSigns(customer, text, el("typing"));
  const rights = wireRights(customer, () => refresh());
  const uploads = wireUploads(customer, org);
  wireRecovery(el("panels"), customer, setup, tabs);
  wirePanels(el("panels"));
  el<HTMLDetailsElement>("consent").addEventListener("toggle", () => rights.refreshConsents());
  const addLine = (l: ChatLine): void => {
    if (rows.has(l.seq)) return;
    const li = document.createElement("li");
    li.className = `line ${l.mine ? "mine" : "theirs"}`;
    li.dataset.seq = String(l.seq);
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = l.mine ? "You" : l.sender;
    const body = document.createElement("p");
    body.className = "text";
    // A file's line: the drawn paperclip, named "Attachment" for screen readers, then its text.
    if (l.attachment !== undefined) body.append(clipIcon(), l.text);
    else body.textContent = l.text;
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = `${time(l.sentAt)} · verified ✓`;
    const read = document.createElement("span");
    read.className = "read";
    meta.append(read);
    li.append(who, body, meta);
    if (l.attachment !== undefined) li.append(downloadButton(l.attachment, (r) => customer.download(r)));
    const after = [...rows.keys()].filter((s) => s > l.seq).sort((a, b) => a - b)[0];
    const next = after === undefined ? null : (rows.get(after) ?? null);
    log.insertBefore(li, next);
    rows.set(l.seq, li);
  };
  // The trustees' shares of one opening (same org, epochs and basis), shown as one notice.
  const openings = new Map<string, ShownNotice[]>();
  // The account's consents (id → issued), granted here or on another device: a notice names one
  // by its day, as the CLI does ("under your consent of 2 Dec 2026"), any other by its short id.
  const consents = new Map<string, number>();
  const audience: NoticeAudience = { kind: "customer", consents };
  const knowConsents = (): Promise<void> =>
    customer
      .consentStates()
      .then((all) => {
        const before = consents.size;
        for (const c of all) consents.set(c.id, c.issuedAt);
        if (consents.size !== before) for (const n of customer.releaseNotices()) addNotice(n);
      })
      // Unread records: their consents are named by their short ids.
      .catch(() => undefined);
  const place = (seq: number, li: HTMLLIElement, old: HTMLLIElement | undefined): void => {
    if (old !== undefined && old.isConnected) {
      replaceItem(old, li);
      return;
    }
    const after = [...rows.keys()].filter((s) => s > seq && rows.get(s) !== li).sort((a, b) => a - b)[0];
    log.insertBefore(li, after === undefined ? null : (rows.get(after) ?? null));
  };
  const addNotice = (n: ShownNotice): void => {
    // A notice judged again (witnessed since, or found not genuine) replaces its line in place.
    const old = rows.get(n.seq);
    if (old !== undefined && !old.classList.contains("notice")) return;
    // Taken out of the opening it was shown in (found not genuine since): that one is redrawn.
    for (const [key, shares] of openings) {
      const at = shares.findIndex((s) => s.seq === n.seq);
      if (at < 0 || (joinsOpening(n) && n.opening?.key === key)) continue;
      shares.splice(at, 1);
      if (shares.length === 0) openings.delete(key);
      else drawOpening(key, shares, old);
    }
    if (joinsOpening(n) && n.opening !== null) {
      const shares = openings.get(n.opening.key) ?? [];
      const at = shares.findIndex((s) => s.seq === n.seq);
      if (at >= 0) shares[at] = n;
      else shares.push(n);
      openings.set(n.opening.key, shares);
      drawOpening(n.opening.key, shares, old ?? rows.get(shares[0]?.seq ?? -1));
      return;
    }
    const li = noticeItem(n, audience);
    rows.set(n.seq, li);
    place(n.seq, li, old);
  };
  function drawOpening(key: string, shares: ShownNotice[], old: HTMLLIElement | undefined): void {
    const p = customer.policy;
    const li = releaseItem(shares, p === null || p === undefined ? null : { trustees: p.trustees.length, threshold: p.trusteeThreshold }, audience);
    li.dataset.opening = key;
    const first = Math.min(...shares.map((s) => s.seq));
    const mine = log.querySelector<HTMLLIElement>(`li.notice[data-opening="${CSS.escape(key)}"]`) ?? undefined;
    for (const s of shares) rows.set(s.seq, li);
    // A share shown on its own before (not yet judged) goes into its opening's notice.
    if (mine !== undefined && old !== undefined && old !== mine) old.remove();
    place(first, li, mine ?? (old !== undefined && old.dataset.opening === undefined ? old : undefined));
  }

  // Items the relay never delivered: each run a line in its place, updated in place as it is
  // asked for again and given up (`holes-view.ts`), the first few runs only and the rest summed
  // up in one line (`holesDrawn`: a relay inventing thousands of holes costs a handful of lines).
  const holes = wireHoles(log, rows, org);

  // Sends the relay did not answer (`unanswered.ts`): each an item at the log's end, "not
  // confirmed yet", until the next session's read shows it stored (then its line is shown in its
  // place, and the item goes) or not (then "Send again", pressed by the customer only).
  const unanswered = new UnansweredSends();
  const unansweredItems = new Map<number, HTMLLIElement>();
  const drawUnanswered = (u: Unanswered, old: Unanswered = u): void => {
    const li = unansweredItem(u, "You", (x) => sendAgain(x));
    const was = unansweredItems.get(old.id);
    unansweredItems.delete(old.id);
    if (was !== undefined && was.isConnected) replaceItem(was, li);
    else log.append(li);
    unansweredItems.set(u.id, li);
  };
  const dropUnanswered = (u: Unanswered): void => {
    unanswered.remove(u);
    unansweredItems.get(u.id)?.remove();
    unansweredItems.delete(u.id);
  };
  const confirmUnanswered = (): void => {
    for (const u of unanswered.confirmedBy(WIDGET, customer.history())) dropUnanswered(u);
  };
  /**
   * Sends `t` (typed, or an unanswered one's text sent again: `again`); shown once stored. Left
   * unanswered, it is kept as not confirmed yet (in `again`'s place); the promise says whether it
   * is settled, i.e. the box may be cleared.
   */
  const sendText = (t: string, again: Unanswered | null): Promise<boolean> => {
    // Folded, not spread: a spread of a long history's numbers overflows the call stack.
    const after = customer.history().reduce((m, l) => Math.max(m, l.seq), 0);
    const from = setup.now();
    return customer.send(t).then(
      (line) => {
        if (again !== null) dropUnanswered(again);
        // What the customer sent is shown, as chat apps do: scrolled up or not, the log goes to
        // its end — not left where it was with "New messages below" over their own words.
        below.follow();
        addLine(line);
        below.drawn();
        readMarks();
        live.sent();
        el<HTMLDetailsElement>("policy").open = false;
        tabs?.postMessage({ sent: line.seq });
        return true;
      },
      (err: unknown) => {
        // Another tab recovered an account meanwhile: its alert says so, and offers to go on.
        if (recoveredAs !== null) return false;
        if (wasUnanswered(err)) {
          // Its fate unknown: in the log as not confirmed yet, never "not sent" with the text
          // back in the box (sent again, it would be a second message).
          const u = unanswered.add(WIDGET, t, after, from, setup.now(), online);
          if (again !== null) unanswered.remove(again);
          below.follow();
          drawUnanswered(u, again ?? u);
          below.drawn();
          return true;
        }
        if (again !== null) {
          again.state = "not_stored";
          drawUnanswered(again);
        }
        // No session (the connection dropped a moment ago): nothing went out, the text is kept.
        if (wasOffline(err)) alertSays("Reconnecting: this message was not sent. What you wrote is kept; send it once connected.", { code: "closed", detail: err instanceof Error ? err.message : String(err) });
        else alertSays(`Not sent: ${plainRefusal(err)}`);
        return false;
      },
    );
  };
  function sendAgain(u: Unanswered): void {
    if (!canSend()) {
      alertSays("Reconnecting: send it again once connected.");
      return;
    }
    u.state = "resending";
    drawUnanswered(u);
    void sendText(u.text, u).finally(refresh);
  }

  for (const l of customer.history()) addLine(l);
  for (const n of customer.releaseNotices()) addNotice(n);
  holes.show(customer.withheld());
  below.drawn();
  void knowConsents();
  readMarks();
  if (customer.conversationId() !== null) el<HTMLDetailsElement>("policy").open = false;

  // Entries of the audit log of a kind this version cannot read (PROTOCOL §12.3): one line.
  const logNote = document.getElementById("log-note");
  const sayUnreadable = (): void => showUnreadable(store, logNote);
  sayUnreadable();
  customer.on((e: CustomerEvent) => {
    sayUnreadable();
    switch (e.kind) {
      case "state":
        online = e.state === "online";
        if (online) live.seen();
        // A session is up after its read: what it read back is confirmed, the rest not stored.
        if (online) {
          confirmUnanswered();
          for (const u of unanswered.settle()) drawUnanswered(u);
        } else unanswered.disconnected();
        // An older relay shows the policy only to a registered account: registered once the
        // customer goes to write, and shown before anything is sent.
        if (online && customer.policyWaitsForBegin()) el("summary").textContent = "Click in the message box to start: who can read this chat is shown here before you write.";
        conn.dataset.state = e.state;
        conn.textContent = STATES[e.state] ?? e.state;
        conn.title = e.detail ?? "";
        break;
      case "policy":
        policyShown = true;
        el("summary").textContent = policySummary(e.policy);
        el("fingerprint").textContent = e.fingerprint;
        el("fp-note").textContent = "It matches the fingerprint this page was given.";
        break;
      case "line":
        addLine(e.line);
        confirmUnanswered();
        below.drawn();
        readMarks();
        if (!e.line.mine) live.seen();
        break;
      case "read":
        readMarks();
        break;
      case "notice":
        addNotice(e.notice);
        below.drawn();
        break;
      case "key_changed":
        alertSays(`Sending is blocked: ${e.detail}. Someone may be impersonating ${org}; ask them through another channel.`);
        break;
      case "agent_key_unconfirmed":
        // Nothing changed (sending stays allowed), but what the relay served is told as it is:
        // the reason in words, the code and detail kept for support.
        alertSays(
          e.pushed
            ? `The relay said ${e.agent}'s key changed, but ${org}'s certificate does not confirm it (${agentKeyReason(e.code)}); nothing changed, and you can go on.`
            : `${e.agent}'s key could not be checked against ${org}'s certificate (${agentKeyReason(e.code)}); the key you started with is kept and you can go on. If this stays, ask ${org} through another channel.`,
          { code: e.code, detail: e.reason },
        );
        break;
      case "refused":
        alertSays(`An item (#${e.seq}) failed verification and is not shown: ${e.reason}`);
        break;
      case "withheld":
        holes.show(e.holes);
        below.drawn();
        break;
      case "upload":
        uploads.upload(e.upload);
        break;
      case "bytes_quota":
        uploads.bytesQuota(e.quota);
        break;
      case "open_quota":
        uploads.openQuota(e.open, e.most);
        break;
      case "error":
        showError(e.error);
        break;
      case "delivered":
        readMarks();
        break;
      case "consents":
        // Granted or revoked on another device of this account: the list and the notices' names.
        rights.refreshConsents();
        void knowConsents();
        break;
      case "typing":
        break;
    }
    refresh();
  });
  tabs?.addEventListener("message", (ev: MessageEvent<unknown>) => {
    // Another tab recovered an account into this browser: this one goes on as it.
    const recovered = recoveredIn(ev.data);
    if (recovered === null) return void customer.resync().then(refresh);
    recoveredAs = recovered;
    recoveredElsewhere(customer, recovered, text);
    refresh();
  });

  // The policy is shown as soon as the widget is online, on an unregistered session; a fresh
  // account is registered on the relay only by the first message or file, or a recovery code
  // (issue 22): a visitor who only reads, or who recovers an account instead, leaves nothing on
  // the relay. An account the relay knows begins by itself. A relay that shows the policy only
  // to registered accounts (older than PROTOCOL §13.7's public policy) gets the registration
  // when the customer goes to write (the box focused), and the policy then.
  const beginChat = (): Promise<void> =>
    customer
      .begin()
      .catch((err: unknown) => (err instanceof RelayError ? alertSays(`The chat could not start: ${plainRefusal(err)}`) : showError(err)))
      .finally(refresh);
  text.addEventListener("focus", () => {
    if (!policyShown && customer.policyWaitsForBegin()) void beginChat();
  });

  el<HTMLFormElement>("composer").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = text.value.trim();
    if (t === "") return;
    if (!canSend()) {
      // Written before the policy came (a fast typist, a slow relay): sent once it is shown.
      if (online && !policyShown && customer.blockedBecause() === null) {
        void beginChat().then(() => {
          if (canSend()) el<HTMLFormElement>("composer").requestSubmit();
        });
      }
      return;
    }
    send.disabled = true;
    sendText(t, null)
      .then((settled) => {
        if (settled) text.value = "";
      })
      .finally(() => {
        refresh();
        if (recoveredAs === null) text.focus();
      });
  });
  // A file chosen is sent at once, encrypted and uploaded in chunks, with the text typed as its caption.
  file.addEventListener("change", () => {
    const f = file.files?.[0];
    if (f === undefined || !canSend()) return;
    file.disabled = true;
    f.arrayBuffer()
      .then((buf) => customer.sendFile(new Uint8Array(buf), f.name, f.type, text.value.trim()))
      .then((line) => {
        text.value = "";
        // The file's line shown, as after a message: the log to its end.
        below.follow();
        addLine(line);
        below.drawn();
        el<HTMLDetailsElement>("policy").open = false;
        tabs?.postMessage({ sent: line.seq });
      })
      .catch(async (err: unknown) => {
        // Kept (the connection was lost): it goes on once connected, listed under the log.
        const kept = (await customer.pendingUploads()).length > 0;
        alertSays(kept ? `The file is not sent yet (${plainRefusal(err)}): it goes on by itself once connected, or cancel it below.` : `File not sent: ${plainRefusal(err)}`);
      })
      .finally(() => {
        file.value = "";
        refresh();
      });
  });
  el<HTMLFormElement>("consent-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const purpose = el<HTMLInputElement>("purpose").value.trim();
    if (purpose === "") return;
    const grant = el<HTMLButtonElement>("grant");
    grant.disabled = true;
    customer
      .grantConsent(purpose)
      .then((id) => {
        rights.refreshConsents();
        // Named by its day once its record is read (its short id too if another shares the day).
        return knowConsents().then(() => {
          const result = el("consent-result");
          result.textContent = `Consent granted and shared with the business (your consent ${consentName(id, consents)}).`;
          result.dataset.consent = id;
        });
      })
      .catch((err: unknown) => alertSays(`Consent not granted: ${err instanceof Error ? err.message : String(err)}`))
      .finally(() => {
        grant.disabled = false;
      });
  });
  text.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) {
      ev.preventDefault();
      el<HTMLFormElement>("composer").requestSubmit();
    }
  });
  customer.start();
}

main().catch((e: unknown) => alertSays(`The chat could not start: ${e instanceof Error ? e.message : String(e)}`));
