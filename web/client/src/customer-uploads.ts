/**
 * The customer's uploads, kept until their message is sent (PROTOCOL §9.8), as the CLI keeps
 * them (`client/src/attachment.rs`): before the first chunk goes out, the file and its
 * reference (random key and id) are written to the store (`upload/<id hex>`; in the browser the
 * encrypted IndexedDB store, so the file outlives a reload but is never kept in the clear). An
 * upload cut off (the connection lost, the page reloaded) is taken up again once a session is
 * up: sealing is deterministic for a given key and id, so chunk 0 is sent again and the relay's
 * progress says where to go on from; only the chunks it lacks are sent. The record is deleted
 * once the message that carries the reference is stored, or when the customer cancels.
 *
 * A resumed upload runs under the send lock, so two tabs never both send its message; an upload
 * whose message is already in the history (sent, the record not yet deleted) is only deleted.
 * An upload the relay refuses (`quota_exceeded`, `too_large`, …) is dropped, not retried: the
 * customer is told why and may choose again; only a lost connection keeps it.
 */
import { fromCbor, toCbor, toHex, type CborValue } from "@sealdesk/protocol";
import { chunkCount, decodeAttachmentRef, encodeAttachmentRef, sealChunks, uploadAttachment, type AttachmentRef, type SealedAttachment } from "./attachment.js";
import type { ByteQuota } from "./frames.js";
import { RelayError, type Session } from "./session.js";
import type { Store } from "./store.js";

/** Record-name prefix of an upload kept until its message is sent. */
export const UPLOAD_PREFIX = "upload/";

/** Where an upload stands, as the view shows it. */
export interface UploadState {
  /** The attachment id (hex): what `cancelUpload` takes. */
  id: string;
  name: string;
  size: number;
  /** Chunks the relay holds, of all. */
  stored: number;
  chunks: number;
  /** `interrupted`: kept, taken up again once online (or cancelled); `refused`: by the relay, dropped. */
  state: "uploading" | "interrupted" | "sent" | "cancelled" | "refused";
  /** Chunks sent (`attachment_put` requests) in this run: fewer than all when it resumed. */
  sent: number;
}

/** What the uploads need of the customer. */
export interface UploadsHost {
  store: Store;
  /** The conversation open now, or null. */
  conversation(): Uint8Array | null;
  /** Whether a line of the history already carries attachment `id`. */
  announced(id: Uint8Array): boolean;
  /** Seals and sends the reference's message, the send lock held already; its sequence number. */
  announceLocked(body: Uint8Array): Promise<number>;
  withSendLock<T>(f: () => Promise<T>): Promise<T>;
  /** Tells the view. */
  upload(state: UploadState): void;
  quota(quota: ByteQuota): void;
  fail(error: unknown): void;
}

interface Kept {
  ref: AttachmentRef;
  file: Uint8Array;
  conversation: Uint8Array;
}

/** The uploads of one customer. */
export class Uploads {
  /** Uploads running in this tab (attachment id hex). */
  private readonly running = new Set<string>();

  constructor(private readonly host: UploadsHost) {}

  /**
   * Keeps `sealed` (and its file) in the store, uploads it on `s` and sends its message; the
   * record is deleted once the message is stored. On an error the record stays, for `resume`.
   */
  async send(s: Session, conversation: Uint8Array, sealed: SealedAttachment, file: Uint8Array, announce: (body: Uint8Array) => Promise<number>): Promise<number> {
    const id = toHex(sealed.ref.id);
    await this.host.store.put(`${UPLOAD_PREFIX}${id}`, toCbor({ ref: encodeAttachmentRef(sealed.ref), file, conversation }));
    this.running.add(id);
    try {
      const sent = await this.upload(s, conversation, sealed);
      const seq = await announce(encodeAttachmentRef(sealed.ref));
      await this.done(sealed.ref, sent);
      return seq;
    } catch (e) {
      await this.stopped(sealed.ref, e);
      throw e;
    } finally {
      this.running.delete(id);
    }
  }

  /** The uploads kept (interrupted, or running now), for the view. */
  async pending(): Promise<UploadState[]> {
    const out: UploadState[] = [];
    for (const k of await this.host.store.keys(UPLOAD_PREFIX)) {
      const kept = await this.read(k);
      if (kept === null) continue;
      const id = toHex(kept.ref.id);
      out.push({ id, name: kept.ref.name, size: kept.ref.size, stored: 0, chunks: chunkCount(kept.ref.size), state: this.running.has(id) ? "uploading" : "interrupted", sent: 0 });
    }
    return out;
  }

  /** Forgets upload `id` (hex): it is not taken up again (the relay deletes its chunks in time). */
  async cancel(id: string): Promise<void> {
    const kept = await this.read(`${UPLOAD_PREFIX}${id}`);
    await this.host.store.delete(`${UPLOAD_PREFIX}${id}`);
    if (kept !== null) this.tell(kept.ref, 0, "cancelled", 0);
  }

  /**
   * Takes up every upload kept for the open conversation that no call in this tab is running:
   * under the send lock, the relay's chunks completed, then its message sent; errors go to
   * `fail` and the record stays.
   */
  async resume(s: Session): Promise<void> {
    const conversation = this.host.conversation();
    if (conversation === null) return;
    for (const k of await this.host.store.keys(UPLOAD_PREFIX)) {
      const id = k.slice(UPLOAD_PREFIX.length);
      if (this.running.has(id)) continue;
      this.running.add(id);
      try {
        await this.host.withSendLock(async () => {
          // Another tab may have finished it meanwhile.
          const kept = await this.read(k);
          if (kept === null || toHex(kept.conversation) !== toHex(conversation)) return;
          if (this.host.announced(kept.ref.id)) {
            await this.done(kept.ref, 0);
            return;
          }
          const sent = await this.upload(s, conversation, { ref: kept.ref, chunks: sealChunks(kept.ref, kept.file) });
          await this.host.announceLocked(encodeAttachmentRef(kept.ref));
          await this.done(kept.ref, sent);
        });
      } catch (e) {
        const kept = await this.read(k).catch(() => null);
        if (kept !== null) await this.stopped(kept.ref, e);
        this.host.fail(e);
      } finally {
        this.running.delete(id);
      }
    }
  }

  /** Uploads what the relay lacks of `sealed`; the chunks sent (requests, chunk 0 again included). */
  private async upload(s: Session, conversation: Uint8Array, sealed: SealedAttachment): Promise<number> {
    let sent = 0;
    const out = await uploadAttachment(s, conversation, sealed, (stored) => {
      sent += 1;
      this.tell(sealed.ref, stored, "uploading", sent);
    });
    if (out.quota !== undefined) this.host.quota(out.quota);
    return sent;
  }

  /** The upload failed with `e`: dropped when the relay refused it, else kept for `resume`. */
  private async stopped(ref: AttachmentRef, e: unknown): Promise<void> {
    if (e instanceof RelayError) await this.host.store.delete(`${UPLOAD_PREFIX}${toHex(ref.id)}`);
    this.tell(ref, 0, e instanceof RelayError ? "refused" : "interrupted", 0);
  }

  /** The upload's message is stored: its record deleted, the view told. */
  private async done(ref: AttachmentRef, sent: number): Promise<void> {
    await this.host.store.delete(`${UPLOAD_PREFIX}${toHex(ref.id)}`);
    this.tell(ref, chunkCount(ref.size), "sent", sent);
  }

  private tell(ref: AttachmentRef, stored: number, state: UploadState["state"], sent: number): void {
    this.host.upload({ id: toHex(ref.id), name: ref.name, size: ref.size, stored, chunks: chunkCount(ref.size), state, sent });
  }

  private async read(key: string): Promise<Kept | null> {
    const b = await this.host.store.get(key);
    if (b === undefined) return null;
    const m: CborValue = fromCbor(b);
    if (m === null || typeof m !== "object" || m instanceof Uint8Array || Array.isArray(m)) return null;
    const { ref, file, conversation } = m;
    if (!(ref instanceof Uint8Array) || !(file instanceof Uint8Array) || !(conversation instanceof Uint8Array)) return null;
    return { ref: decodeAttachmentRef(ref), file, conversation };
  }
}
