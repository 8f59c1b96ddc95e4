/**
 * The widget's uploads and the relay's quota warnings: each upload kept until its message is
 * sent is listed under the log with where it stands ("3 of 6 parts") and a Cancel button; one
 * cut off (a lost connection, a reload) says it goes on once connected, and does
 * (`@sealdesk/client`'s `customer-uploads.ts`). The relay's warning ahead of a quota (§9.8
 * stored bytes, §13.12 open conversations) is said plainly: how much is used, of how much, and
 * what to do. Written with `textContent` only.
 */
import { formatSize, type ByteQuota, type Customer, type UploadState } from "@sealdesk/client";
import { el } from "@sealdesk/client/ui";

/** The stored-bytes warning in words (after an upload or a plain message): used, of how much, what to do. */
export function bytesQuotaText(q: ByteQuota, org: string): string {
  const pct = Math.floor((q.used * 100) / Math.max(1, q.most));
  const head =
    q.scope === "account"
      ? `Messages and files you sent through this relay now take ${formatSize(q.used)} of the ${formatSize(q.most)} it keeps for you (${pct}%).`
      : `Messages and files in ${org}'s conversations now take ${formatSize(q.used)} of the ${formatSize(q.most)} this relay keeps for ${org} (${pct}%).`;
  const act =
    q.scope === "account"
      ? "When it is full, new messages and files are refused until older conversations are erased or expire: erase a conversation you no longer need (Your data), or send smaller files."
      : `When it is full, new messages and files are refused for everyone writing to ${org}: send only the files you need, or ask ${org}.`;
  return `${head} ${act}`;
}

/** The open-conversations warning in words. */
export function openQuotaText(open: number, most: number, org: string): string {
  return `You have ${open} of the ${most} conversations this relay lets you keep open with ${org} at once. Go on in this one rather than opening more.`;
}

/** An upload's line in words. */
export function uploadText(u: UploadState): string {
  const what = `${u.name} (${formatSize(u.size)})`;
  switch (u.state) {
    case "uploading":
      return `Sending ${what}: ${u.stored} of ${u.chunks} parts…`;
    case "interrupted":
      return `${what} was not sent completely: it goes on by itself once connected.`;
    case "sent":
      return `${what} sent.`;
    case "cancelled":
      return `${what} cancelled.`;
    case "refused":
      return `${what} was refused by the relay.`;
  }
}

/** Lists the uploads in `#uploads` and shows quota warnings in `#quota`; returns the event handler. */
export function wireUploads(customer: Customer, org: string): { upload(u: UploadState): void; bytesQuota(q: ByteQuota): void; openQuota(open: number, most: number): void } {
  const list = el<HTMLUListElement>("uploads");
  const quota = el<HTMLParagraphElement>("quota");
  const items = new Map<string, HTMLLIElement>();
  const show = (u: UploadState): void => {
    let li = items.get(u.id);
    if (u.state === "sent" || u.state === "cancelled" || u.state === "refused") {
      li?.remove();
      items.delete(u.id);
      list.hidden = items.size === 0;
      return;
    }
    if (li === undefined) {
      li = document.createElement("li");
      li.dataset.upload = u.id;
      const text = document.createElement("span");
      text.className = "upload-text";
      const cancel = document.createElement("button");
      cancel.type = "button";
      cancel.className = "cancel";
      cancel.textContent = "Cancel";
      cancel.setAttribute("aria-label", `Cancel sending ${u.name}`);
      cancel.addEventListener("click", () => void customer.cancelUpload(u.id));
      li.append(text, cancel);
      list.append(li);
      items.set(u.id, li);
    }
    li.dataset.state = u.state;
    const text = li.querySelector<HTMLElement>(".upload-text");
    if (text !== null) text.textContent = uploadText(u);
    // A running upload is cancelled once it stops; only a kept one can be.
    const cancel = li.querySelector<HTMLButtonElement>(".cancel");
    if (cancel !== null) cancel.hidden = u.state !== "interrupted";
    list.hidden = false;
  };
  const warn = (text: string): void => {
    quota.textContent = text;
    quota.hidden = false;
  };
  void customer.pendingUploads().then((all) => all.forEach(show));
  return {
    upload: show,
    bytesQuota: (q) => warn(bytesQuotaText(q, org)),
    openQuota: (open, most) => warn(openQuotaText(open, most, org)),
  };
}
