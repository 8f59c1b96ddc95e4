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
import { Customer, CustomerError, policySummary, type ChatLine, type CustomerEvent, type Notice, type SocketLike } from "@sealdesk/client";
import { IdbStore } from "@sealdesk/client/idb";
import { STATES, downloadButton, el, showAlert, time } from "@sealdesk/client/ui";
import { fromHex } from "@sealdesk/protocol";

async function main(): Promise<void> {
  const params = new URLSearchParams(location.search);
  const org = params.get("org") ?? "";
  const fp = params.get("fp") ?? "";
  // An open token the business's page passed (hex, as `sealdesk token issue` prints it).
  const tokenHex = params.get("token") ?? "";
  el("org-name").textContent = org || "…";
  if (org === "" || fp === "") {
    showAlert("This chat is not set up: the page needs ?org=NAME&fp=FINGERPRINT.");
    return;
  }
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/ws`;
  const store = await IdbStore.open(`sealdesk/${org}`);
  const lockName = `sealdesk-send/${org}`;
  const customer = await Customer.load({
    url,
    org,
    masterFingerprint: fp,
    store,
    socket: (u) => new WebSocket(u) as unknown as SocketLike,
    random: (n) => crypto.getRandomValues(new Uint8Array(n)),
    now: () => Math.floor(Date.now() / 1000),
    withSendLock: <T>(f: () => Promise<T>): Promise<T> => (navigator.locks === undefined ? f() : (navigator.locks.request(lockName, f) as Promise<T>)),
    ...(/^([0-9a-f]{2})+$/i.test(tokenHex) ? { openToken: fromHex(tokenHex) } : {}),
  });
  const tabs = typeof BroadcastChannel === "undefined" ? null : new BroadcastChannel(`sealdesk/${org}`);

  const log = el<HTMLOListElement>("log");
  const text = el<HTMLTextAreaElement>("text");
  const send = el<HTMLButtonElement>("send");
  const file = el<HTMLInputElement>("file");
  const conn = el<HTMLParagraphElement>("conn");
  const rows = new Map<number, HTMLLIElement>();
  let online = false;
  let policyShown = false;

  const canSend = (): boolean => online && policyShown && customer.blockedBecause() === null;
  const refresh = (): void => {
    text.disabled = !canSend();
    file.disabled = !canSend();
    send.disabled = !canSend();
    document.body.dataset.conversation = customer.conversationId() ?? "";
    el<HTMLDetailsElement>("consent").hidden = !(customer.conversationId() !== null && customer.policy?.allowConsent === true);
  };
  const readMarks = (): void => {
    const upTo = customer.readUpTo();
    for (const [seq, li] of rows) {
      const mark = li.querySelector(".read");
      if (mark !== null && li.classList.contains("mine")) mark.textContent = seq <= upTo ? " · read" : "";
    }
  };
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
    body.textContent = l.text;
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
    li.scrollIntoView({ block: "end" });
  };
  const addNotice = (n: Notice): void => {
    if (rows.has(n.seq)) return;
    const li = document.createElement("li");
    li.className = `notice ${n.verified ? "verified" : "unverified"}`;
    li.dataset.seq = String(n.seq);
    li.dataset.verified = String(n.verified);
    const head = document.createElement("strong");
    const title = { release: "Release notice", closed: "Dispute closed", erasure: "Erasure notice", revocation: "Consent revoked", other: "Audit log notice" }[n.kind];
    head.textContent = n.verified ? title : `${title} (not verified)`;
    const body = document.createElement("p");
    body.textContent = `${n.text.charAt(0).toUpperCase()}${n.text.slice(1)}.`;
    const proof = document.createElement("span");
    proof.className = "meta";
    proof.textContent = n.verified
      ? `Verified ✓: signed by ${n.by}, proven in the public audit log (entry ${n.index} of ${n.provenIn}).`
      : "Not verified: treat it with suspicion.";
    li.append(head, body, proof);
    const after = [...rows.keys()].filter((s) => s > n.seq).sort((a, b) => a - b)[0];
    log.insertBefore(li, after === undefined ? null : (rows.get(after) ?? null));
    rows.set(n.seq, li);
    li.scrollIntoView({ block: "end" });
  };

  for (const l of customer.history()) addLine(l);
  for (const n of customer.releaseNotices()) addNotice(n);
  readMarks();
  if (customer.conversationId() !== null) el<HTMLDetailsElement>("policy").open = false;

  customer.on((e: CustomerEvent) => {
    switch (e.kind) {
      case "state":
        online = e.state === "online";
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
        readMarks();
        break;
      case "read":
        readMarks();
        break;
      case "notice":
        addNotice(e.notice);
        break;
      case "key_changed":
        showAlert(`Sending is blocked: ${e.detail}. Someone may be impersonating ${org}; ask them through another channel.`);
        break;
      case "refused":
        showAlert(`An item (#${e.seq}) failed verification and is not shown: ${e.reason}`);
        break;
      case "error":
        if (e.error instanceof CustomerError && e.error.failure === "fingerprint_mismatch") {
          showAlert(`Stopped: ${org}'s key on this relay does not match the fingerprint this page was given. Do not write here; tell ${org} through another channel. (${e.error.message})`);
        } else {
          showAlert(`Error: ${e.error.message}`);
        }
        break;
      case "delivered":
        break;
    }
    refresh();
  });
  tabs?.addEventListener("message", () => void customer.resync().then(refresh));

  el<HTMLFormElement>("composer").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = text.value.trim();
    if (t === "" || !canSend()) return;
    send.disabled = true;
    customer
      .send(t)
      .then((line) => {
        text.value = "";
        addLine(line);
        el<HTMLDetailsElement>("policy").open = false;
        tabs?.postMessage({ sent: line.seq });
      })
      .catch((err: unknown) => showAlert(`Not sent: ${err instanceof Error ? err.message : String(err)}`))
      .finally(() => {
        refresh();
        text.focus();
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
        addLine(line);
        el<HTMLDetailsElement>("policy").open = false;
        tabs?.postMessage({ sent: line.seq });
      })
      .catch((err: unknown) => showAlert(`File not sent: ${err instanceof Error ? err.message : String(err)}`))
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
        const result = el("consent-result");
        result.textContent = `Consent granted. Its id, to give the business: ${id}`;
        result.dataset.consent = id;
      })
      .catch((err: unknown) => showAlert(`Consent not granted: ${err instanceof Error ? err.message : String(err)}`))
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

main().catch((e: unknown) => showAlert(`The chat could not start: ${e instanceof Error ? e.message : String(e)}`));
