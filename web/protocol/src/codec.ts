/**
 * The canonical byte layout of everything signed, hashed or derived (PROTOCOL §1.1), mirroring
 * `protocol/src/codec.rs`. Never CBOR: a `Writer` starts with its domain label and appends fields.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { ProtocolError } from "./errors.js";

const utf8 = new TextEncoder();

/** Builds a canonical layout field by field. */
export class Writer {
  private buf: Uint8Array = new Uint8Array(256);
  private len = 0;

  /** A writer that starts with `str(label)`. */
  static withLabel(label: string): Writer {
    return new Writer().str(label);
  }

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  private uint(v: number | bigint, size: number): this {
    const big = BigInt(v);
    if (big < 0n || big >= 1n << BigInt(8 * size)) throw new ProtocolError("out_of_range", `u${8 * size}: ${big}`);
    this.reserve(size);
    for (let i = size - 1; i >= 0; i--) this.buf[this.len + size - 1 - i] = Number((big >> BigInt(8 * i)) & 0xffn);
    this.len += size;
    return this;
  }

  /** One byte. */
  u8(v: number): this {
    return this.uint(v, 1);
  }
  /** Big-endian `u16`. */
  u16(v: number): this {
    return this.uint(v, 2);
  }
  /** Big-endian `u32`. */
  u32(v: number): this {
    return this.uint(v, 4);
  }
  /** Big-endian `u64` (a `number` must be a safe integer; a `bigint` covers the full range). */
  u64(v: number | bigint): this {
    if (typeof v === "number" && !Number.isSafeInteger(v)) throw new ProtocolError("out_of_range", `u64: ${v}`);
    return this.uint(v, 8);
  }
  /** Fixed-size bytes, no length. */
  fixed(v: Uint8Array): this {
    this.reserve(v.length);
    this.buf.set(v, this.len);
    this.len += v.length;
    return this;
  }
  /** Variable bytes: `u32` length, then the bytes. */
  bytes(v: Uint8Array): this {
    return this.u32(v.length).fixed(v);
  }
  /** A string: `u32` length, then UTF-8. */
  str(v: string): this {
    return this.bytes(utf8.encode(v));
  }
  /** A list count (`u32`). */
  count(n: number): this {
    return this.u32(n);
  }
  /** A bool: `0x00` or `0x01`. */
  bool(v: boolean): this {
    return this.u8(v ? 1 : 0);
  }
  /** An option: `0x00`, or `0x01` then the item written by `write`. */
  option<T>(v: T | null | undefined, write: (w: this, v: T) => void): this {
    if (v === null || v === undefined) return this.u8(0);
    this.u8(1);
    write(this, v);
    return this;
  }
  /** The bytes written so far (a copy). */
  toBytes(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
  /** SHA-256 of the bytes written so far. */
  sha256(): Uint8Array {
    return sha256(this.buf.subarray(0, this.len));
  }
}

/** `SHA-256(str(label) ‖ bytes(p1) ‖ … ‖ bytes(pn))` (PROTOCOL §1.1). */
export function labelledHash(label: string, ...parts: Uint8Array[]): Uint8Array {
  const w = Writer.withLabel(label);
  for (const p of parts) w.bytes(p);
  return w.sha256();
}

/** `SHA-256(str(label) ‖ bytes(signed) ‖ signature[64])`: the object hashes of PROTOCOL §1.2. */
export function objectHash(label: string, signed: Uint8Array, signature: Uint8Array): Uint8Array {
  return Writer.withLabel(label).bytes(signed).fixed(signature).sha256();
}
