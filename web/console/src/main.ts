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
import { Agent, AgentError, AttachmentError, VaultImportError, attachmentBlob, importCliVault, safeFileName, type AgentEvent, type AgentLine, type AttachmentRef, type ConversationStatus, type ConversationView, type SocketLike } from "@sealdesk/client";
import { IdbStore } from "@sealdesk/client/idb";
import { agentPolicySummary, findVaultFiles, unlockFailureText } from "./logic.js";

/**
 * Offers `bytes` as a download named after the sender's file name made safe (`safeFileName`),
 * as `application/octet-stream` (`attachmentBlob`): never opened in this page's origin.
 */
function offerFile(bytes: Uint8Array, name: string): void {
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

/** What a download showed, kept by line (the pane is rebuilt on every change). */
interface FileStatus {
  text: string;
  error?: string;
}
const fileStatuses = new Map<string, FileStatus>();

function showStatus(el: HTMLElement, st: FileStatus | undefined): void {
  el.textContent = st?.text ?? "";
  if (st?.error === undefined) delete el.dataset.error;
  else el.dataset.error = st.error;
}

/**
 * A "Download" button for an attachment line: fetches and checks the file, then offers it; a
 * file that fails a check shows the reason and is never offered. `key` names the line (its
 * conversation and sequence number), so the outcome survives the pane being rebuilt.
 */
function downloadButton(key: string, ref: AttachmentRef, fetchFile: (ref: AttachmentRef) => Promise<Uint8Array>): HTMLElement {
  const wrap = document.createElement("span");
  wrap.className = "attachment";
  const b = document.createElement("button");
  b.type = "button";
  b.className = "download";
  b.textContent = "Download";
  const status = document.createElement("span");
  status.className = "attachment-status";
  status.dataset.key = key;
  status.setAttribute("role", "status");
  showStatus(status, fileStatuses.get(key));
  const set = (st: FileStatus): void => {
    fileStatuses.set(key, st);
    document.querySelectorAll<HTMLElement>(".attachment-status").forEach((e) => {
      if (e.dataset.key === key) showStatus(e, st);
    });
  };
  b.addEventListener("click", () => {
    b.disabled = true;
    set({ text: "Fetching and checking…" });
    fetchFile(ref)
      .then((bytes) => {
        set({ text: "Checked ✓" });
        offerFile(bytes, ref.name);
      })
      .catch((e: unknown) => {
        const text = e instanceof AttachmentError && e.failure !== "bad_answer" ? "This file failed its integrity check (it was altered or is incomplete) and was not saved." : `The file could not be fetched: ${e instanceof Error ? e.message : String(e)}`;
        set({ text, error: e instanceof AttachmentError ? e.failure : "failed" });
      })
      .finally(() => {
        b.disabled = false;
      });
  });
  wrap.append(b, status);
  return wrap;
}

function el<T extends HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (e === null) throw new Error(`missing #${id}`);
  return e as T;
}

const STATES: Record<string, string> = {
  connecting: "Connecting…",
  online: "Connected · end-to-end encrypted",
  offline: "Offline · reconnecting",
  stopped: "Disconnected",
};

function showAlert(text: string): void {
  const a = el<HTMLDivElement>("alert");
  a.textContent = text;
  a.hidden = false;
}

function time(secs: number): string {
  return new Date(secs * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

const DB = "sealdesk-console";

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
  const agent = await Agent.load({
    url,
    store,
    socket: (u) => new WebSocket(u) as unknown as SocketLike,
    random: (n) => crypto.getRandomValues(new Uint8Array(n)),
    now: () => Math.floor(Date.now() / 1000),
    withSendLock: <T>(f: () => Promise<T>): Promise<T> => (navigator.locks === undefined ? f() : (navigator.locks.request(`${DB}/send`, f) as Promise<T>)),
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

  const view = (): ConversationView | null => (current === null ? null : agent.conversation(current));
  const canSend = (v: ConversationView | null): boolean => online && v !== null && v.blocked === null && !v.transferredOut;

  const renderList = (): void => {
    const convs = agent.conversations();
    el("list-empty").hidden = convs.length > 0;
    list.replaceChildren(
      ...convs.map((c) => {
        const li = document.createElement("li");
        const b = document.createElement("button");
        b.type = "button";
        b.dataset.conversation = c.id;
        b.setAttribute("aria-current", String(c.id === current));
        const name = document.createElement("span");
        name.className = "name";
        name.textContent = c.customer;
        const badge = document.createElement("span");
        badge.className = "unread";
        badge.textContent = String(c.unread);
        badge.hidden = c.unread === 0;
        badge.setAttribute("aria-label", `${c.unread} unread`);
        const sub = document.createElement("span");
        sub.className = "sub";
        sub.textContent = `${c.org} · ${c.transferredOut ? `transferred to ${c.agent}` : c.status}${c.blocked !== null ? " · KEY CHANGED" : ""}`;
        b.append(name, badge, sub);
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
    body.textContent = l.kind === "status" ? `set the status to ${l.text}` : l.text;
    const meta = document.createElement("span");
    meta.className = "meta";
    const mark = l.mine && l.kind === "text" ? (l.seq <= v.readByCustomer ? " · read" : l.seq <= v.deliveredToCustomer ? " · delivered" : " · sent") : "";
    meta.textContent = `${time(l.sentAt)} · verified ✓${mark}`;
    if (mark !== "") meta.dataset.mark = mark.slice(3);
    li.append(who, body, meta);
    if (l.attachment !== undefined) li.append(downloadButton(`${v.id}/${l.seq}`, l.attachment, (r) => agent.download(v.id, r)));
    return li;
  };

  const renderPane = (): void => {
    const v = view();
    el("tools").hidden = v === null;
    el("composer").hidden = v === null;
    if (v === null) return;
    el("conv-title").textContent = `${v.customer} · ${v.org}`;
    const policy = agent.policyOf(v.org);
    el("policy").hidden = policy === null;
    if (policy !== null) {
      el("policy-head").textContent = `${v.org}'s escrow policy (version ${policy.version})`;
      el("policy-text").textContent = agentPolicySummary(policy);
    }
    status.value = v.status;
    log.replaceChildren(...v.lines.map((l) => lineItem(l, v)));
    log.lastElementChild?.scrollIntoView({ block: "end" });
    el("typing").textContent = v.typing ? `${v.customer} is typing…` : "";
    const note = el("pane-note");
    note.hidden = !v.transferredOut;
    note.textContent = v.transferredOut ? `Transferred to ${v.agent}: you can no longer write in this conversation, or read what follows.` : "";
    const ok = canSend(v);
    text.disabled = !ok;
    send.disabled = !ok;
    status.disabled = !ok;
    el<HTMLButtonElement>("transfer").disabled = !ok;
    document.body.dataset.conversation = v.id;
    document.body.dataset.blocked = String(v.blocked !== null);
    if (v.blocked !== null) showAlert(`KEY CHANGED — sending is blocked. ${v.blocked} Check with them through another channel before you write.`);
  };

  const render = (): void => {
    renderList();
    renderPane();
  };

  const open = (id: string): void => {
    current = id;
    render();
    void agent.markRead(id).catch(() => undefined);
    text.focus();
  };

  agent.on((e: AgentEvent) => {
    switch (e.kind) {
      case "state":
        online = e.state === "online";
        conn.dataset.state = e.state;
        conn.textContent = STATES[e.state] ?? e.state;
        conn.title = e.detail ?? "";
        break;
      case "key_changed":
        showAlert(`KEY CHANGED — sending is blocked. ${e.detail}`);
        break;
      case "error":
        showAlert(`Error: ${e.error.message}`);
        break;
      case "changed":
        if (e.id === current && document.visibilityState === "visible") void agent.markRead(e.id).catch(() => undefined);
        break;
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
    if (t === "" || id === null || !canSend(view())) return;
    send.disabled = true;
    agent
      .send(id, t)
      .then(() => {
        text.value = "";
        typingSent = 0;
      })
      .catch((err: unknown) => showAlert(`Not sent: ${err instanceof Error ? err.message : String(err)}`))
      .finally(() => {
        render();
        text.focus();
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
  render();
  agent.start();
}

main().catch((e: unknown) => showAlert(`The console could not start: ${e instanceof Error ? e.message : String(e)}`));
