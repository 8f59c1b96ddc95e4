/**
 * The agent console: the page the relay serves at `/console/`. An agent made with the `sealdesk`
 * CLI unlocks it here once, from the CLI vault's files and passphrase (`importCliVault`); the
 * keys are then kept in this browser's IndexedDB under a non-extractable WebCrypto key, as the
 * widget keeps the customer's. It talks only to the relay it came from (`/v1/ws`, same origin).
 *
 * The DOM is written with `textContent` only: nothing from the relay, a customer or an agent is
 * HTML. Sending is blocked, loudly, when a pinned key changes (a customer's, another agent's, or
 * the org master's).
 */
import { Agent, AgentError, AuditLogError, VaultImportError, consentsClaimed, importCliVault, storeSendLock, withheldText, type AgentEvent, type Hole, type AgentLine, type ConversationStatus, type ConversationView, type SocketLike } from "@sealdesk/client";
import { IdbStore } from "@sealdesk/client/idb";
import { STATES, SendQueue, UnansweredSends, clipIcon, downloadButton, el, holesDrawn, moreHolesItem, newBelow, noticeItem, pageLock, redraw, sendKept, showAlert, showUnreadable, time, unansweredItem, type Unanswered } from "@sealdesk/client/ui";
import { agentPolicySummary, conversationTitle, findVaultFiles, lineMark, shortId, statusWords, unlockFailureText, unreadWords } from "./logic.js";
import { quotaLines, type QuotaLine } from "./quota.js";

const DB = "sealdesk-console";

/**
 * Brings `kept`'s drawing up to `next`'s in place: its class, and each of its first children
 * that differs from `next`'s at the same place replaced; the children past `next`'s (the page's
 * own controls, such as a download button) are left as they are, focus and state included.
 */
function updateInPlace(kept: HTMLElement, next: HTMLElement): void {
  if (kept.className !== next.className) kept.className = next.className;
  const now = Array.from(next.children);
  now.forEach((c, i) => {
    const was = kept.children[i];
    if (was === undefined) kept.append(c);
    else if (!was.isEqualNode(c)) was.replaceWith(c);
  });
}

async function unlock(store: IdbStore): Promise<void> {
  el("unlock").hidden = false;
  const result = el("unlock-result");
  return new Promise((resolve) => {
    el<HTMLFormElement>("unlock-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const button = el<HTMLButtonElement>("unlock-button");
      const input = el<HTMLInputElement>("passphrase");
      button.disabled = true;
      result.textContent = "Unlocking… (the passphrase's key derivation takes a few seconds)";
      void (async () => {
        try {
          const files = await findVaultFiles(Array.from(el<HTMLInputElement>("vault-files").files ?? []));
          const { keys, card } = await importCliVault(files, input.value);
          if (card.role !== "agent") throw new AgentError("no_identity", `${card.name} is a ${card.role} account, not an agent`);
          await Agent.keep(store, keys, card);
          keys.wipe();
          input.value = "";
          el("unlock").hidden = true;
          resolve();
        } catch (e) {
          result.textContent = e instanceof VaultImportError || e instanceof AgentError ? unlockFailureText(e) : `Not unlocked: ${e instanceof Error ? e.message : String(e)}`;
          input.select();
        } finally {
          button.disabled = false;
        }
      })();
    });
  });
}

async function main(): Promise<void> {
  const store = await IdbStore.open(DB);
  if (!(await Agent.has(store))) await unlock(store);
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/ws`;
  const now = (): number => Math.floor(Date.now() / 1000);
  const agent = await Agent.load({
    url,
    store,
    socket: (u) => new WebSocket(u) as unknown as SocketLike,
    random: (n) => crypto.getRandomValues(new Uint8Array(n)),
    now,
    withSendLock: <T>(f: () => Promise<T>): Promise<T> => (navigator.locks === undefined ? storeSendLock(store)(f) : (navigator.locks.request(`${DB}/send`, f) as Promise<T>)),
    // What an older relay showed it does not know, kept for an hour across the origin's tabs
    // (neither a reload nor another tab asks it again); `localStorage` itself may throw where
    // storage is denied.
    relayMemory: () => window.localStorage,
  });
  el("app").hidden = false;
  el("me").textContent = agent.name;
  document.body.dataset.agent = agent.name;

  const list = el<HTMLUListElement>("list");
  const log = el<HTMLOListElement>("log");
  const text = el<HTMLTextAreaElement>("text");
  const send = el<HTMLButtonElement>("send");
  const conn = el<HTMLParagraphElement>("conn");
  const status = el<HTMLSelectElement>("status");
  let online = false;
  let current: string | null = null;
  let typingSent = 0;
  const file = el<HTMLInputElement>("file");
  const upload = el<HTMLProgressElement>("upload");
  const uploadStatus = el("upload-status");
  let uploading = false;
  /** The stored-bytes warnings shown in `#quota`, one per quota. */
  let quotas: QuotaLine[] = [];
  /** The conversation the log shows (drawn last). */
  let drawn: string | null = null;
  /**
   * The log follows its newest line only when the agent left it at its end; scrolled up, it
   * stands still and "New messages below" says what came (`@sealdesk/client/ui`'s `newBelow`,
   * as in the widget). Pressed, the button goes: the focus to the answer, not lost to the body.
   */
  const below = newBelow(log, el<HTMLButtonElement>("new-below"), () => {
    if (!text.disabled) text.focus();
  });
  /**
   * Sends whose fate is not known yet (`unanswered.ts`), kept in the encrypted store from before
   * each is sealed: each at the end of its conversation's log, "not confirmed yet", until the
   * next session's read shows it stored (then its line is drawn and the item goes) or not (then
   * "Send again", pressed by the agent only); written while reconnecting, "sending once
   * reconnected", sent in order once a session is up. A reload finds them again.
   */
  const random = (n: number): Uint8Array => crypto.getRandomValues(new Uint8Array(n));
  // Another tab's kept sends are its own to settle while it is open (`pageLock`).
  const pages = await pageLock(`${DB}/page/`, random);
  const unanswered = new UnansweredSends({ store, me: agent.card.signingKey, random, now, error: (e) => showAlert(`Error: ${e instanceof Error ? e.message : String(e)}`), pages });
  await unanswered.load();
  const sending = new SendQueue();
  /**
   * Takes out the unanswered sends a line read back shows stored (texts only: not a status
   * line), looking through the conversations `convs` (the views a render draws from).
   */
  const confirmUnanswered = (convs: readonly ConversationView[] = agent.conversations()): void => {
    for (const c of convs) {
      if (unanswered.of(c.id).length > 0) unanswered.confirmedBy(c.id, c.lines.filter((l) => l.kind === "text"));
    }
  };
  /** Each line with a file, drawn once and kept (its download button in it), by conversation and sequence number. */
  const attachmentLines = new Map<string, HTMLLIElement>();

  const view = (): ConversationView | null => (current === null ? null : agent.conversation(current));
  /** Whether the agent may write in `v` (online or not: written while reconnecting, it waits). */
  const mayWrite = (v: ConversationView | null): v is ConversationView => v !== null && v.blocked === null && !v.transferredOut;
  const canSend = (v: ConversationView | null): boolean => online && mayWrite(v);

  const renderList = (convs: readonly ConversationView[]): void => {
    el("list-empty").hidden = convs.length > 0;
    // Drawn again on every event: in place (`redraw`), so a focused conversation keeps the focus.
    redraw(
      list,
      convs.map((c) => {
        const li = document.createElement("li");
        li.dataset.key = c.id;
        const b = document.createElement("button");
        b.type = "button";
        b.dataset.conversation = c.id;
        b.setAttribute("aria-current", String(c.id === current));
        // Unread is said without the badge's colour too: the name in bold (`.has-unread`), the
        // count in the item's accessible name.
        b.classList.toggle("has-unread", c.unread > 0);
        const name = document.createElement("span");
        name.className = "name";
        name.textContent = c.customer;
        // Two conversations may carry the same customer name: the short id tells them apart.
        const short = document.createElement("span");
        short.className = "short";
        short.textContent = shortId(c.id);
        const badge = document.createElement("span");
        badge.className = "unread";
        badge.textContent = String(c.unread);
        badge.hidden = c.unread === 0;
        badge.setAttribute("aria-label", `${c.unread} unread`);
        const sub = document.createElement("span");
        sub.className = "sub";
        sub.append(short, ` · ${c.org} · ${c.transferredOut ? `transferred to ${c.agent}` : statusWords(c.status)}${c.blocked !== null ? " · KEY CHANGED" : ""}`);
        b.append(name, badge, sub);
        b.setAttribute("aria-label", `${conversationTitle(c.customer, c.id)}${unreadWords(c.unread)}`);
        b.addEventListener("click", () => open(c.id));
        li.append(b);
        return li;
      }),
    );
  };

  const lineItem = (l: AgentLine, v: ConversationView): HTMLLIElement => {
    const li = document.createElement("li");
    li.className = `line ${l.kind === "event" ? "event" : l.mine ? "mine" : "theirs"}`;
    li.dataset.seq = String(l.seq);
    if (l.kind === "event") {
      li.textContent = l.text;
      return li;
    }
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = l.mine ? `You (${l.sender})` : l.sender;
    const body = document.createElement("p");
    body.className = "text";
    // A file's line: the drawn paperclip, named "Attachment" for screen readers, then its text.
    if (l.attachment !== undefined) body.append(clipIcon(), l.text);
    else body.textContent = l.kind === "status" ? `set the status to ${l.text}` : l.text;
    const meta = document.createElement("span");
    meta.className = "meta";
    // The agent's own texts and files carry their mark: sent, delivered, read.
    const mark = lineMark(l, v);
    meta.textContent = `${time(l.sentAt)} · verified ✓${mark === null ? "" : ` · ${mark}`}`;
    if (mark !== null) meta.dataset.mark = mark;
    li.append(who, body, meta);
    if (l.attachment === undefined) return li;
    // A line with a file is the same element on every redraw (its download's progress and
    // outcome, and the focus, are in its button): kept per conversation and sequence number, its
    // drawing — the mark included — brought up to date in place, the button left where it is.
    const key = `${v.id}/${l.seq}`;
    const kept = attachmentLines.get(key);
    if (kept !== undefined) {
      updateInPlace(kept, li);
      return kept;
    }
    const ref = l.attachment;
    li.append(downloadButton(ref, (r) => agent.download(v.id, r)));
    attachmentLines.set(key, li);
    return li;
  };

  const withheldItem = (h: Hole): HTMLLIElement => {
    const li = document.createElement("li");
    li.className = "line withheld";
    li.dataset.from = String(h.from);
    li.dataset.to = String(h.to);
    li.dataset.tries = String(h.tries);
    if (h.claimed !== undefined) li.dataset.claimed = h.claimed === null ? "conversation" : String(h.claimed);
    li.textContent = withheldText(h);
    return li;
  };

  const renderPane = (): void => {
    const v = view();
    el("tools").hidden = v === null;
    el("composer").hidden = v === null;
    if (v === null) {
      // Nothing to choose yet is said so, not "Choose a conversation" over an empty list.
      const none = agent.conversations().length === 0;
      el("conv-title").textContent = none ? "No conversation yet" : "Choose a conversation";
      el("pane-empty").hidden = false;
      el("pane-empty").textContent = none
        ? "A customer's first message to your org opens a conversation here, in the list on the left."
        : "Open one from the list on the left (Tab to it, then Enter); a number beside a name counts its unread messages.";
      return;
    }
    el("pane-empty").hidden = true;
    el("conv-title").textContent = `${conversationTitle(v.customer, v.id)} · ${v.org}`;
    const policy = agent.policyOf(v.org);
    el("policy").hidden = policy === null;
    if (policy !== null) {
      el("policy-head").textContent = `${v.org}'s escrow policy (version ${policy.version})`;
      el("policy-text").textContent = agentPolicySummary(policy);
    }
    status.value = v.status;
    // The lines, with the release notices (checked as the widget checks them, said of the
    // customer) among them by time.
    const audience = { kind: "agent", customer: v.customer, consents: consentsClaimed(v.notices) } as const;
    // What the relay withheld, each in its place among the lines (by sequence number): the first
    // few runs on lines of their own, the rest summed up in one line in the place of the first of
    // them (`holesDrawn`: a relay inventing thousands of holes costs a handful of items).
    const holes = holesDrawn(v.withheld);
    const withheld: { to: number; li: HTMLLIElement }[] = holes.lines.map((h) => ({ to: h.to, li: withheldItem(h) }));
    if (holes.more !== null) {
      const more = moreHolesItem(holes.more, { kind: "agent" });
      more.classList.add("line");
      withheld.push({ to: holes.more.first.to, li: more });
    }
    const items: HTMLLIElement[] = [];
    let n = 0;
    let w = 0;
    for (const l of v.lines) {
      for (let x = v.notices[n]; x !== undefined && x.at < l.sentAt; x = v.notices[++n]) items.push(noticeItem(x, audience));
      for (let h = withheld[w]; h !== undefined && h.to < l.seq; h = withheld[++w]) items.push(h.li);
      items.push(lineItem(l, v));
    }
    items.push(...withheld.slice(w).map((h) => h.li), ...v.notices.slice(n).map((x) => noticeItem(x, audience)));
    // Drawn again every few seconds and on every event: in place (`redraw`: the focus and the
    // scroll position kept), following the newest line only when the agent was at the end.
    // Scrolled up, the log stays where the agent left it; what comes at its end is said by the
    // "New messages below" button instead, until the agent is at the end again.
    // Another conversation opened is shown from its end.
    if (drawn !== v.id) below.follow();
    for (const li of items) li.dataset.key = li.classList.contains("more") ? "withheld/more" : `${li.classList.contains("notice") ? "notice" : li.classList.contains("withheld") ? "withheld" : "line"}/${li.dataset.seq ?? li.dataset.from ?? ""}`;
    for (const u of unanswered.of(v.id)) {
      const li = unansweredItem(u, `You (${agent.name})`, (x) => sendAgain(x), (x) => dismiss(x));
      li.dataset.key = `unanswered/${u.id}`;
      items.push(li);
    }
    redraw(log, items);
    below.drawn();
    drawn = v.id;
    el("typing").textContent = v.typing ? `${v.customer} is typing…` : "";
    const note = el("pane-note");
    note.hidden = !v.transferredOut;
    note.textContent = v.transferredOut ? `Transferred to ${v.agent}: you can no longer write in this conversation, or read what follows.` : "";
    const ok = canSend(v);
    // Reconnecting, the box stays usable: what is written waits for the session.
    text.disabled = !mayWrite(v);
    send.disabled = !mayWrite(v);
    file.disabled = !ok || uploading;
    status.disabled = !ok;
    el<HTMLButtonElement>("transfer").disabled = !ok;
    document.body.dataset.conversation = v.id;
    document.body.dataset.blocked = String(v.blocked !== null);
    if (v.blocked !== null) showAlert(`KEY CHANGED — sending is blocked. ${v.blocked} Check with them through another channel before you write.`);
  };

  const render = (): void => {
    // One look at the conversations per render: the unanswered sends confirmed and the list drawn from it.
    const convs = agent.conversations();
    confirmUnanswered(convs);
    renderList(convs);
    renderPane();
  };

  const open = (id: string): void => {
    current = id;
    render();
    void agent.markRead(id).catch(() => undefined);
    void agent.checkNotices().catch(() => undefined);
    text.focus();
  };

  // Entries of the audit log of a kind this version cannot read (PROTOCOL §12.3): one line.
  const logNote = document.getElementById("log-note");
  const sayUnreadable = (): void => showUnreadable(store, logNote);
  sayUnreadable();
  agent.on((e: AgentEvent) => {
    sayUnreadable();
    switch (e.kind) {
      case "state":
        online = e.state === "online";
        // A session is up after its read: what it read back is confirmed, the rest not stored.
        if (online) {
          confirmUnanswered();
          unanswered.settle();
          // Then what was written while reconnecting goes out, in the order written.
          for (const u of unanswered.queued()) void sendText(u.conversation, u.text, u).finally(render);
        } else {
          unanswered.disconnected();
          // Stopped for good: what waited was not sent (its text kept, with "Send again").
          if (e.state === "stopped") unanswered.stopped();
        }
        conn.dataset.state = e.state;
        conn.textContent = STATES[e.state] ?? e.state;
        conn.title = e.detail ?? "";
        break;
      case "key_changed":
        showAlert(`KEY CHANGED — sending is blocked. ${e.detail}`);
        break;
      case "error":
        showAlert(
          e.error instanceof AuditLogError
            ? `The relay's audit log was REFUSED (${e.error.failure}): ${e.error.message}. Release notices cannot be checked against it; tell your security contact.`
            : `Error: ${e.error.message}`,
        );
        if (e.error instanceof AuditLogError) document.body.dataset.auditLog = e.error.failure;
        break;
      case "changed":
        if (e.id === current && document.visibilityState === "visible") void agent.markRead(e.id).catch(() => undefined);
        break;
      case "bytes_quota": {
        // The relay's warning ahead of a stored-bytes quota: after this agent's message or file,
        // or pushed (§13.12) when anyone's bytes bring it to 80%, and again at sign-in.
        // One line per quota (the account's, each org's): a newer warning replaces its own.
        // Each a short line, its words behind a disclosure: in full, four lines at 800 px that
        // could not be put away. The live region says the line (a closed disclosure's words are
        // not read out); an opened one stays open when a newer figure comes (`redraw`).
        quotas = quotaLines(quotas, e.quota, e.quota.scope === "org" ? e.org : null);
        const q = el<HTMLDivElement>("quota");
        redraw(
          q,
          quotas.map((line) => {
            // In a div: `redraw` keeps open the disclosures inside an item, not the item itself.
            const item = document.createElement("div");
            item.dataset.key = line.key;
            const d = document.createElement("details");
            const summary = document.createElement("summary");
            summary.textContent = line.summary;
            // One line however long the org's name (cut with an ellipsis, `.quota summary`):
            // the whole line in its tooltip, the warning in full behind the disclosure.
            summary.title = line.summary;
            const p = document.createElement("p");
            p.dataset.scope = line.scope;
            p.textContent = line.text;
            d.append(summary, p);
            item.append(d);
            return item;
          }),
        );
        q.hidden = false;
        break;
      }
      case "conversations":
      case "policy":
        break;
    }
    render();
  });

  el<HTMLFormElement>("composer").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = text.value.trim();
    const id = current;
    if (t === "" || id === null || !mayWrite(view())) return;
    send.disabled = true;
    sendText(id, t, null)
      .then((settled) => {
        if (!settled) return;
        text.value = "";
        typingSent = 0;
      })
      .finally(() => {
        render();
        text.focus();
      });
  });
  /**
   * Sends `t` in conversation `id` (typed, or a kept one's text: `again`, sent again when pressed
   * or from the queue once reconnected), after the sends asked for before it. Offline, it waits
   * in the log; left unanswered, it is kept as not confirmed yet. The promise says whether it is
   * in hand, i.e. the box may be cleared.
   */
  async function sendText(id: string, t: string, again: Unanswered | null): Promise<boolean> {
    let u = again;
    if (u === null) {
      try {
        u = await unanswered.begin(id, t, !online);
      } catch (err) {
        showAlert(`Not sent: this browser could not keep the message (${err instanceof Error ? err.message : String(err)}).`);
        return false;
      }
    }
    const kept = u;
    if (current === id) below.follow();
    if (!online) {
      if (kept.state !== "queued") await unanswered.queue(kept).catch((e: unknown) => showAlert(`Error: ${e instanceof Error ? e.message : String(e)}`));
      return true;
    }
    if (again !== null) {
      kept.state = "resending";
      render();
    }
    return sending.run(async () => {
      const out = await sendKept(unanswered, kept, (sealed) => agent.send(id, t, sealed), () => online);
      // What the agent sent is shown, as chat apps do: scrolled up or not, the log goes to its
      // end (the redraw after) — not left where it was with "New messages below" over the
      // agent's own words. A customer's line still leaves a scrolled-up log where it is.
      if (current === id) below.follow();
      // Stored, its fate unknown (never "not sent" with the text back in the box: sent again,
      // it would be a second message), or waiting for the session: in hand.
      if (out.kind !== "refused") return true;
      showAlert(`Not sent: ${out.error instanceof Error ? out.error.message : String(out.error)}`);
      return false;
    });
  }
  function sendAgain(u: Unanswered): void {
    const v = agent.conversation(u.conversation);
    if (!mayWrite(v)) {
      showAlert("Not sent: this conversation cannot be written in now.");
      return;
    }
    void sendText(u.conversation, u.text, u).finally(render);
  }
  function dismiss(u: Unanswered): void {
    unanswered.remove(u).catch((e: unknown) => showAlert(`Error: ${e instanceof Error ? e.message : String(e)}`));
    render();
  }
  // A file chosen is sent at once: sealed, uploaded in chunks (the bar shows the chunks the
  // relay holds), then announced, with the text typed as its caption.
  file.addEventListener("change", () => {
    const f = file.files?.[0];
    const id = current;
    if (f === undefined || id === null || !canSend(view())) return;
    uploading = true;
    file.disabled = true;
    upload.hidden = false;
    upload.value = 0;
    uploadStatus.textContent = `Encrypting ${f.name}…`;
    delete uploadStatus.dataset.done;
    f.arrayBuffer()
      .then((buf) =>
        agent.sendFile(id, new Uint8Array(buf), f.name, f.type, text.value.trim(), (stored, chunks) => {
          upload.value = stored / chunks;
          uploadStatus.textContent = `Uploading ${f.name}: ${Math.round((100 * stored) / chunks)}%`;
        }),
      )
      .then(() => {
        text.value = "";
        uploadStatus.textContent = `Sent ${f.name}`;
        uploadStatus.dataset.done = "true";
        // The file's line shown, as after a message: the log to its end (the redraw below).
        if (current === id) below.follow();
      })
      .catch((err: unknown) => {
        uploadStatus.textContent = "";
        showAlert(`File not sent: ${err instanceof Error ? err.message : String(err)}`);
      })
      .finally(() => {
        uploading = false;
        upload.hidden = true;
        file.value = "";
        render();
        // The file input, disabled while the file went, lost the keyboard's focus to the page's
        // body: back to the answer, as after a message. Focus the agent put elsewhere meanwhile
        // (another conversation) is left there.
        if (document.activeElement === null || document.activeElement === document.body || document.activeElement === file) text.focus();
      });
  });
  text.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) {
      ev.preventDefault();
      el<HTMLFormElement>("composer").requestSubmit();
    }
  });
  text.addEventListener("input", () => {
    const now = Date.now();
    if (current !== null && now - typingSent > 4000 && text.value !== "") {
      typingSent = now;
      void agent.signal(current, "typing").catch(() => undefined);
    }
  });
  status.addEventListener("change", () => {
    const id = current;
    if (id === null) return;
    agent.setStatus(id, status.value as ConversationStatus).catch((err: unknown) => showAlert(`Status not set: ${err instanceof Error ? err.message : String(err)}`));
  });
  el<HTMLFormElement>("transfer-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const id = current;
    const to = el<HTMLInputElement>("transfer-to").value.trim();
    if (id === null || to === "") return;
    el<HTMLButtonElement>("transfer").disabled = true;
    agent
      .transfer(id, to)
      .then(() => {
        el<HTMLInputElement>("transfer-to").value = "";
      })
      .catch((err: unknown) => showAlert(`Not transferred: ${err instanceof Error ? err.message : String(err)}`))
      .finally(render);
  });
  // The typing indicator expires without an event: look again every few seconds.
  setInterval(renderPane, 3000);
  // The relay tells this session when the audit log grows (`audit_grew`); a notice not yet
  // witnessed is checked again, and a relay that does not tell is asked, every few seconds
  // (each look reads only the entries new since the last verified head).
  setInterval(() => {
    if (agent.noticesPending() || !agent.watchesAudit()) void agent.checkNotices().catch(() => undefined);
  }, 5_000);
  render();
  agent.start();
}

main().catch((e: unknown) => showAlert(`The console could not start: ${e instanceof Error ? e.message : String(e)}`));
