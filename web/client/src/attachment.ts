/**
 * Attachments in the browser (PROTOCOL §9.8): a message of kind `attachment` carries a file's
 * *reference* (id, key, SHA-256, size, name, media type, caption); the ciphertext chunks live on
 * the relay (`attachment_get`). This module decodes a reference exactly as
 * `protocol/src/attachment.rs` does, opens the chunks with every check of §9.8 (each chunk at its
 * place with its final flag, the chunk count, the size, the hash), and seals a file for upload.
 * Mirrors `client/src/attachment.rs` (`safe_file_name`).
 */
import { gcm } from "@noble/ciphers/aes.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { Writer, labels } from "@sealdesk/protocol";
import type { ByteQuota, Request, Response } from "./frames.js";

/** Plaintext bytes per chunk. */
export const CHUNK_SIZE = 32 * 1024;
/** AES-GCM tag length. */
export const TAG_LEN = 16;
/** Largest attachment the protocol allows (a relay sets a smaller limit). */
export const MAX_SIZE = 2 ** 30;
/** Longest name, in UTF-8 bytes. */
export const MAX_NAME = 255;
/** Longest media type, in UTF-8 bytes. */
export const MAX_MEDIA_TYPE = 127;
/** The reference body's format byte. */
export const BODY_FORMAT = 1;

/** Why an attachment was refused. */
export type AttachmentFailure =
  /** The reference body does not decode (short, long, not UTF-8, empty or long name or type). */
  | "malformed"
  /** Another format byte than 1. */
  | "unknown_version"
  /** A size past the protocol's limit. */
  | "too_large"
  /** A chunk does not open at its place (tampered, reordered, truncated or wrong key). */
  | "chunk"
  /** Not exactly the chunks the size requires. */
  | "chunk_count"
  /** The plaintext's length is not the size the message says. */
  | "size"
  /** The plaintext does not match the message's SHA-256. */
  | "hash"
  /** The relay answered a request with something else than a chunk. */
  | "bad_answer";

/** An attachment refused for `failure`. */
export class AttachmentError extends Error {
  constructor(
    readonly failure: AttachmentFailure,
    detail?: string,
  ) {
    super(detail === undefined ? `attachment: ${failure}` : `attachment: ${failure}: ${detail}`);
    this.name = "AttachmentError";
  }
}

/** A file's reference, the body of a kind-4 message. */
export interface AttachmentRef {
  /** The attachment id the relay stores its chunks under (16 bytes). */
  id: Uint8Array;
  /** The random key (32 bytes). */
  key: Uint8Array;
  /** SHA-256 of the plaintext. */
  sha256: Uint8Array;
  /** Plaintext size in bytes. */
  size: number;
  /** The sender's file name (never a path: see {@link safeFileName}). */
  name: string;
  /** The sender's media type (advisory only). */
  mediaType: string;
  /** The caption (may be empty). */
  caption: string;
}

/** The number of chunks a file of `size` bytes has (at least one). */
export function chunkCount(size: number): number {
  return Math.max(1, Math.ceil(size / CHUNK_SIZE));
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const enc = new TextEncoder();

class BodyReader {
  private at = 0;
  constructor(private readonly b: Uint8Array) {}
  take(n: number): Uint8Array {
    if (this.b.length - this.at < n) throw new AttachmentError("malformed", "the body is cut short");
    const out = this.b.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }
  u32(): number {
    const b = this.take(4);
    return new DataView(b.buffer, b.byteOffset, 4).getUint32(0);
  }
  u64(): bigint {
    const b = this.take(8);
    return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0);
  }
  str(): string {
    const b = this.take(this.u32());
    try {
      return utf8.decode(b);
    } catch {
      throw new AttachmentError("malformed", "a string is not UTF-8");
    }
  }
  done(): boolean {
    return this.at === this.b.length;
  }
}

function checkText(what: string, s: string, max: number): void {
  const n = enc.encode(s).length;
  if (n === 0 || n > max) throw new AttachmentError("malformed", `${what}: ${n} bytes: use 1 to ${max}`);
}

/** Decodes a reference body (§9.8), as strictly as `AttachmentRef::from_body`. */
export function decodeAttachmentRef(body: Uint8Array): AttachmentRef {
  const r = new BodyReader(body);
  const format = r.take(1)[0];
  if (format !== BODY_FORMAT) throw new AttachmentError("unknown_version", `format ${String(format)}`);
  const id = r.take(16).slice();
  const key = r.take(32).slice();
  const hash = r.take(32).slice();
  const size = r.u64();
  if (size > BigInt(MAX_SIZE)) throw new AttachmentError("too_large", `${size} bytes`);
  const name = r.str();
  const mediaType = r.str();
  const caption = r.str();
  if (!r.done()) throw new AttachmentError("malformed", "trailing bytes after the caption");
  checkText("attachment name", name, MAX_NAME);
  checkText("attachment media type", mediaType, MAX_MEDIA_TYPE);
  return { id, key, sha256: hash, size: Number(size), name, mediaType, caption };
}

/** The reference body of `ref` (§9.8). */
export function encodeAttachmentRef(ref: AttachmentRef): Uint8Array {
  checkText("attachment name", ref.name, MAX_NAME);
  checkText("attachment media type", ref.mediaType, MAX_MEDIA_TYPE);
  return new Writer().u8(BODY_FORMAT).fixed(ref.id).fixed(ref.key).fixed(ref.sha256).u64(ref.size).str(ref.name).str(ref.mediaType).str(ref.caption).toBytes();
}

function chunkKey(ref: Pick<AttachmentRef, "id" | "key">): Uint8Array {
  return hkdf(sha256, ref.key, undefined, Writer.withLabel(labels.ATTACHMENT_KEY).fixed(ref.id).toBytes(), 32);
}

function nonce(index: number): Uint8Array {
  return new Writer().fixed(new Uint8Array(4)).u64(index).toBytes();
}

function aad(id: Uint8Array, index: number, last: boolean): Uint8Array {
  return Writer.withLabel(labels.ATTACHMENT_AAD).fixed(id).u64(index).bool(last).toBytes();
}

/** The ciphertext length of chunk `index` of a file of `size` bytes, or `null` past the last. */
export function chunkCiphertextLen(size: number, index: number): number | null {
  if (index >= chunkCount(size)) return null;
  return Math.min(CHUNK_SIZE, size - index * CHUNK_SIZE) + TAG_LEN;
}

/**
 * Opens the chunks of `ref` (in order, index 0 to n − 1) with every check of §9.8; returns the
 * plaintext, or throws an {@link AttachmentError} (nothing of a file that fails is returned).
 */
export function openAttachment(ref: AttachmentRef, chunks: readonly Uint8Array[]): Uint8Array {
  const n = chunkCount(ref.size);
  if (ref.size > MAX_SIZE) throw new AttachmentError("too_large");
  if (chunks.length !== n) throw new AttachmentError("chunk_count", `${chunks.length} chunks, the size requires ${n}`);
  const k = chunkKey(ref);
  const parts: Uint8Array[] = [];
  let total = 0;
  try {
    chunks.forEach((ct, i) => {
      let pt: Uint8Array;
      try {
        pt = gcm(k, nonce(i), aad(ref.id, i, i === n - 1)).decrypt(ct);
      } catch {
        throw new AttachmentError("chunk", `chunk ${i} does not open: tampered, reordered, truncated or wrong key`);
      }
      total += pt.length;
      if (total > ref.size) throw new AttachmentError("size", `more than the ${ref.size} bytes the message says`);
      parts.push(pt);
    });
  } finally {
    k.fill(0);
  }
  if (total !== ref.size) throw new AttachmentError("size", `${total} bytes, the message says ${ref.size}`);
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  if (!constantTimeEqual(sha256(out), ref.sha256)) {
    out.fill(0);
    throw new AttachmentError("hash", "the file does not match the hash in its message");
  }
  return out;
}

function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return d === 0;
}

/** A file sealed for upload: its reference and its ciphertext chunks. */
export interface SealedAttachment {
  ref: AttachmentRef;
  chunks: Uint8Array[];
}

/**
 * Seals `plaintext` under a fresh key and id from `random` (§9.8): the chunks to upload and the
 * reference to send as a kind-4 message once they are stored.
 */
export function sealAttachment(plaintext: Uint8Array, name: string, mediaType: string, caption: string, random: (n: number) => Uint8Array): SealedAttachment {
  if (plaintext.length > MAX_SIZE) throw new AttachmentError("too_large", `${plaintext.length} bytes`);
  const ref: AttachmentRef = { id: random(16), key: random(32), sha256: sha256(plaintext), size: plaintext.length, name, mediaType, caption };
  checkText("attachment name", name, MAX_NAME);
  checkText("attachment media type", mediaType, MAX_MEDIA_TYPE);
  return { ref, chunks: sealChunks(ref, plaintext) };
}

/**
 * The ciphertext chunks of `plaintext` under `ref`'s key and id. Sealing is deterministic for a
 * given key and id, so an interrupted upload sealed again yields the chunks the relay holds.
 */
export function sealChunks(ref: Pick<AttachmentRef, "id" | "key">, plaintext: Uint8Array): Uint8Array[] {
  const n = chunkCount(plaintext.length);
  const k = chunkKey(ref);
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const part = plaintext.subarray(i * CHUNK_SIZE, Math.min((i + 1) * CHUNK_SIZE, plaintext.length));
    chunks.push(gcm(k, nonce(i), aad(ref.id, i, i === n - 1)).encrypt(part));
  }
  k.fill(0);
  return chunks;
}

/**
 * A name safe to offer for download, as `client/src/attachment.rs` makes it: the last path
 * component, every character but letters, digits, `. _ - + ( )` and space replaced by `_`, at
 * most 100 characters, leading dots dropped; `attachment` when nothing is left.
 */
export function safeFileName(name: string): string {
  const parts = name.split(/[/\\]/);
  const last = parts[parts.length - 1] ?? "";
  const cleaned = [...last]
    .map((c) => (/^[\p{L}\p{N}._\-+() ]$/u.test(c) ? c : "_"))
    .slice(0, 100)
    .join("");
  const trimmed = cleaned.trim().replace(/^\.+/, "").trim();
  return trimmed === "" ? "attachment" : trimmed;
}

/** "12.3 KiB" and the like. */
export function formatSize(size: number): string {
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${(size / 1024).toFixed(1)} KiB`;
  return `${(size / (1024 * 1024)).toFixed(1)} MiB`;
}

/**
 * The line a chat shows for an attachment: "name, size" and the caption. No mark of its own
 * (it was a "📎", an empty box where no emoji font is): a page draws one from the line's
 * `attachment` (`@sealdesk/client/ui`'s `clipIcon`, named "Attachment" for screen readers), and
 * an export says `kind: "attachment"`.
 */
export function attachmentLineText(ref: AttachmentRef): string {
  const head = `${safeFileName(ref.name)}, ${formatSize(ref.size)}`;
  return ref.caption === "" ? head : `${head}: ${ref.caption}`;
}

/**
 * The opened file as a Blob to offer for download. Its type is always
 * `application/octet-stream`: the sender's media type is not trusted, since a `blob:` URL has
 * the page's origin and a `text/html` one would run in it if opened.
 */
export function attachmentBlob(plaintext: Uint8Array): Blob {
  return new Blob([plaintext.slice().buffer], { type: "application/octet-stream" });
}

/** What the download and upload need of a session: a request answered, errors thrown. */
export interface AttachmentCaller {
  call(body: Request): Promise<Response>;
}

/**
 * Fetches the chunks of `ref` in `conversation` (`attachment_get`, index 0 to n − 1) and opens
 * them ({@link openAttachment}): the file, or an {@link AttachmentError}. A chunk the relay
 * answers for another index or another size is refused before it is opened.
 */
export async function downloadAttachment(s: AttachmentCaller, conversation: Uint8Array, ref: AttachmentRef): Promise<Uint8Array> {
  const n = chunkCount(ref.size);
  const chunks: Uint8Array[] = [];
  for (let index = 0; index < n; index++) {
    const r = await s.call({ kind: "attachment_get", conversation, attachment: ref.id, index });
    if (r.kind !== "attachment_chunk") throw new AttachmentError("bad_answer", r.kind);
    if (r.index !== index) throw new AttachmentError("chunk", `asked for chunk ${index}, got ${r.index}`);
    if (r.size !== ref.size) throw new AttachmentError("size", `the relay holds ${r.size} bytes, the message says ${ref.size}`);
    chunks.push(r.data);
  }
  return openAttachment(ref, chunks);
}

/** How an upload went: the chunks sent beyond those the relay had, and its quota warning. */
export interface UploadOutcome {
  /** Chunks the relay stored from this call (fewer than all when an upload is resumed). */
  sent: number;
  /** The relay's warning ahead of a stored-bytes quota, if it gave one. */
  quota?: ByteQuota;
}

/**
 * Uploads the chunks of `sealed` (`attachment_put`, in order from 0), going on from where the
 * relay says it is (`attachment_progress`), until it holds every chunk: an interrupted upload
 * resumes by sending chunk 0 again. `progress` hears each answer (chunks held, of all).
 */
export async function uploadAttachment(s: AttachmentCaller, conversation: Uint8Array, sealed: SealedAttachment, progress?: (stored: number, chunks: number) => void): Promise<UploadOutcome> {
  const n = sealed.chunks.length;
  const out: UploadOutcome = { sent: 0 };
  let index = 0;
  while (index < n) {
    const data = sealed.chunks[index];
    if (data === undefined) throw new AttachmentError("chunk_count");
    const r = await s.call({ kind: "attachment_put", conversation, attachment: sealed.ref.id, size: sealed.ref.size, index, data });
    if (r.kind !== "attachment_progress") throw new AttachmentError("bad_answer", r.kind);
    if (r.chunks !== n || r.stored <= index || r.stored > n) throw new AttachmentError("bad_answer", `progress ${r.stored} of ${r.chunks}`);
    if (r.stored === index + 1) out.sent += 1;
    if (r.quota !== undefined) out.quota ??= r.quota;
    index = r.stored;
    progress?.(index, n);
  }
  return out;
}
