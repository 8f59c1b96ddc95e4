/**
 * Attachments (PROTOCOL §9.8) without a relay: the reference decoded as the Rust crate encodes
 * it (`protocol/vectors/attachments.json`), a sealed file opened again, and every refusal of a
 * tampered, reordered, cut or padded file, and of a malformed reference.
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { fromHex, toHex } from "@sealdesk/protocol";
import { describe, expect, it } from "vitest";
import { AttachmentError, CHUNK_SIZE, attachmentLineText, decodeAttachmentRef, encodeAttachmentRef, openAttachment, safeFileName, sealAttachment, type AttachmentFailure } from "../src/attachment.js";

const here = dirname(fileURLToPath(import.meta.url));
const v = JSON.parse(readFileSync(resolve(here, "../../../protocol/vectors/attachments.json"), "utf8")) as Record<string, unknown>;
const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

function failure(f: () => unknown): AttachmentFailure {
  try {
    f();
  } catch (e) {
    if (e instanceof AttachmentError) return e.failure;
    throw e;
  }
  throw new Error("no error");
}

describe("attachment references", () => {
  it("decodes the vector's body as the Rust crate wrote it, and encodes it back", () => {
    const ref = decodeAttachmentRef(fromHex(v.body as string));
    expect(toHex(ref.id)).toBe(v.id);
    expect(toHex(ref.key)).toBe(v.key);
    expect(toHex(ref.sha256)).toBe(v.plaintext_sha256);
    expect(ref.size).toBe(v.size);
    expect(ref.name).toBe(v.name);
    expect(ref.mediaType).toBe(v.media_type);
    expect(ref.caption).toBe(v.text);
    expect(toHex(encodeAttachmentRef(ref))).toBe(v.body);
  });

  it("opens the vector's file from chunks sealed again", () => {
    const size = v.size as number;
    const plaintext = Uint8Array.from({ length: size }, (_, i) => (7 * i + 3) % 256);
    const ref = decodeAttachmentRef(fromHex(v.body as string));
    // The same id and key seal the same chunks; the last is in the vector in full.
    const sealed = sealAttachment(plaintext, ref.name, ref.mediaType, ref.caption, (n) => (n === 16 ? ref.id : ref.key));
    expect(toHex(sealed.chunks[2] ?? new Uint8Array())).toBe((v.chunks as { ciphertext: string | null }[])[2]?.ciphertext);
    expect(openAttachment(ref, sealed.chunks)).toEqual(plaintext);
  });

  it("refuses a malformed reference with a typed failure", () => {
    const body = fromHex(v.body as string);
    expect(failure(() => decodeAttachmentRef(body.subarray(0, body.length - 1)))).toBe("malformed");
    expect(failure(() => decodeAttachmentRef(Uint8Array.from([...body, 0])))).toBe("malformed");
    const other = body.slice();
    other[0] = 2;
    expect(failure(() => decodeAttachmentRef(other))).toBe("unknown_version");
    const huge = body.slice();
    huge.set([0, 0, 0, 0, 0x40, 0, 0, 1], 1 + 16 + 32 + 32);
    expect(failure(() => decodeAttachmentRef(huge))).toBe("too_large");
    const ref = decodeAttachmentRef(body);
    expect(failure(() => decodeAttachmentRef(encodeRaw({ ...ref, name: "" })))).toBe("malformed");
  });
});

/** A body with no checks on the way out (the encoder refuses what the decoder must refuse). */
function encodeRaw(r: { id: Uint8Array; key: Uint8Array; sha256: Uint8Array; size: number; name: string; mediaType: string; caption: string }): Uint8Array {
  const enc = new TextEncoder();
  const str = (s: string): number[] => {
    const b = enc.encode(s);
    return [0, 0, (b.length >> 8) & 255, b.length & 255, ...b];
  };
  const size = new Uint8Array(8);
  new DataView(size.buffer).setBigUint64(0, BigInt(r.size));
  return Uint8Array.from([1, ...r.id, ...r.key, ...r.sha256, ...size, ...str(r.name), ...str(r.mediaType), ...str(r.caption)]);
}

describe("opening a file", () => {
  const file = random(2 * CHUNK_SIZE + 100);
  const { ref, chunks } = sealAttachment(file, "report.pdf", "application/pdf", "", random);

  it("opens what was sealed, and an empty file as one empty chunk", () => {
    expect(chunks).toHaveLength(3);
    expect(openAttachment(ref, chunks)).toEqual(file);
    const empty = sealAttachment(new Uint8Array(), "empty.txt", "text/plain", "", random);
    expect(empty.chunks).toHaveLength(1);
    expect(openAttachment(empty.ref, empty.chunks)).toEqual(new Uint8Array());
  });

  it("refuses a tampered chunk", () => {
    const bad = chunks.map((c) => c.slice());
    const one = bad[1] as Uint8Array;
    one[5] = (one[5] ?? 0) ^ 1;
    expect(failure(() => openAttachment(ref, bad))).toBe("chunk");
  });

  it("refuses chunks reordered, cut short, or one too many", () => {
    expect(failure(() => openAttachment(ref, [chunks[1], chunks[0], chunks[2]] as Uint8Array[]))).toBe("chunk");
    expect(failure(() => openAttachment(ref, chunks.slice(0, 2)))).toBe("chunk_count");
    expect(failure(() => openAttachment(ref, [...chunks, chunks[2] as Uint8Array]))).toBe("chunk_count");
    // A stream cut after a chunk that is not the last does not open as if it were complete.
    expect(failure(() => openAttachment({ ...ref, size: 2 * CHUNK_SIZE }, chunks.slice(0, 2)))).toBe("chunk");
  });

  it("refuses a file whose hash or size is not the reference's", () => {
    expect(failure(() => openAttachment({ ...ref, sha256: new Uint8Array(32) }, chunks))).toBe("hash");
    expect(failure(() => openAttachment({ ...ref, size: ref.size - 1 }, chunks))).toBe("size");
    expect(failure(() => openAttachment({ ...ref, size: ref.size + 1 }, chunks))).toBe("size");
  });

  it("refuses chunks of another attachment (the id is in the key and the AAD)", () => {
    expect(failure(() => openAttachment({ ...ref, id: random(16) }, chunks))).toBe("chunk");
  });
});

describe("safeFileName", () => {
  it("keeps a plain name and reduces the rest", () => {
    expect(safeFileName("receipt.pdf")).toBe("receipt.pdf");
    expect(safeFileName("../../etc/passwd")).toBe("passwd");
    expect(safeFileName("C:\\Users\\x\\evil.exe")).toBe("evil.exe");
    expect(safeFileName(".bashrc")).toBe("bashrc");
    expect(safeFileName("a<b>\"c\u202e.txt")).toBe("a_b__c_.txt");
    expect(safeFileName("...")).toBe("attachment");
    expect(safeFileName("x".repeat(300))).toHaveLength(100);
  });
});

describe("attachmentLineText", () => {
  const ref = (name: string, size: number, caption: string) => ({ id: new Uint8Array(16), key: new Uint8Array(32), sha256: new Uint8Array(32), size, name, mediaType: "text/plain", caption });

  it("says the file's safe name, size and caption, with no emoji of its own (a page draws the mark)", () => {
    expect(attachmentLineText(ref("receipt.txt", 12, ""))).toBe("receipt.txt, 12 B");
    expect(attachmentLineText(ref("../label (torn).jpg", 70_000, "see"))).toBe("label (torn).jpg, 68.4 KiB: see");
    // An emoji is the sender's own, in the caption, never added.
    expect(attachmentLineText(ref("notes.txt", 1, "\u{1F4CE} here"))).toBe("notes.txt, 1 B: \u{1F4CE} here");
    expect(attachmentLineText(ref("x.bin", 3 * 1024 * 1024, ""))).not.toMatch(/\p{Extended_Pictographic}/u);
  });
});
