/** Byte helpers: hex, concatenation and a constant-time comparison. Bytes are always `Uint8Array`. */
import { ProtocolError } from "./errors.js";

/** Lowercase hex of `b`. */
export function toHex(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

/** Bytes of an even-length hex string. */
export function fromHex(h: string): Uint8Array {
  if (h.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(h)) throw new ProtocolError("bad_hex");
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** The concatenation of `parts`. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Whether `a` and `b` are equal, in time depending only on their lengths. */
export function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return d === 0;
}

/** `b` checked to be exactly `n` bytes long. */
export function fixedLength(b: Uint8Array, n: number, what: string): Uint8Array {
  if (b.length !== n) throw new ProtocolError("bad_length", `${what}: ${b.length} bytes, expected ${n}`);
  return b;
}
