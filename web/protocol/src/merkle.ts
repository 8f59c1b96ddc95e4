/**
 * RFC 9162 Merkle tree hashing (PROTOCOL §12.2): roots, inclusion proofs (§2.1.3) and
 * consistency proofs (§2.1.4), built and verified. Mirrors `protocol/src/merkle.rs`.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { concat, equal } from "./bytes.js";
import { ProtocolError } from "./errors.js";

/** `SHA-256(0x00 ‖ leaf)`. */
export function leafHash(leaf: Uint8Array): Uint8Array {
  return sha256(concat(new Uint8Array([0]), leaf));
}

/** `SHA-256(0x01 ‖ l ‖ r)`. */
export function nodeHash(l: Uint8Array, r: Uint8Array): Uint8Array {
  return sha256(concat(new Uint8Array([1]), l, r));
}

/** The root of an empty tree: `SHA-256("")`. */
export const EMPTY_ROOT: Uint8Array = sha256(new Uint8Array(0));

function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** The root over leaf hashes `d`. */
export function root(d: readonly Uint8Array[]): Uint8Array {
  if (d.length === 0) return EMPTY_ROOT;
  if (d.length === 1) return d[0] as Uint8Array;
  const k = split(d.length);
  return nodeHash(root(d.slice(0, k)), root(d.slice(k)));
}

/** The audit path of leaf `m` in the tree over `d` (RFC 9162 §2.1.3.1). */
export function inclusionPath(m: number, d: readonly Uint8Array[]): Uint8Array[] {
  if (m < 0 || m >= d.length) throw new ProtocolError("out_of_range", "leaf index");
  if (d.length === 1) return [];
  const k = split(d.length);
  return m < k ? [...inclusionPath(m, d.slice(0, k)), root(d.slice(k))] : [...inclusionPath(m - k, d.slice(k)), root(d.slice(0, k))];
}

/** Whether `path` proves leaf hash `leaf` at `index` in a tree of `size` with `rootHash` (§2.1.3.2). */
export function verifyInclusion(leaf: Uint8Array, index: number, size: number, path: readonly Uint8Array[], rootHash: Uint8Array): boolean {
  if (index >= size || size === 0) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equal(r, rootHash);
}

function subproof(m: number, d: readonly Uint8Array[], b: boolean): Uint8Array[] {
  const n = d.length;
  if (m === n) return b ? [] : [root(d)];
  const k = split(n);
  return m <= k ? [...subproof(m, d.slice(0, k), b), root(d.slice(k))] : [...subproof(m - k, d.slice(k), false), root(d.slice(0, k))];
}

/** The consistency proof from the first `old` leaves to all of `d` (RFC 9162 §2.1.4.1). */
export function consistencyPath(old: number, d: readonly Uint8Array[]): Uint8Array[] {
  if (old < 0 || old > d.length) throw new ProtocolError("out_of_range", "old size");
  if (old === 0 || old === d.length) return [];
  return subproof(old, d, true);
}

/** Whether `path` proves the tree of `oldSize`/`oldRoot` a prefix of `newSize`/`newRoot` (§2.1.4.2). */
export function verifyConsistency(oldSize: number, newSize: number, oldRoot: Uint8Array, newRoot: Uint8Array, path: readonly Uint8Array[]): boolean {
  if (oldSize > newSize) return false;
  if (oldSize === newSize) return path.length === 0 && equal(oldRoot, newRoot);
  if (oldSize === 0) return path.length === 0 && equal(oldRoot, EMPTY_ROOT);
  if (path.length === 0) return false;
  let p = [...path];
  if ((oldSize & (oldSize - 1)) === 0) p = [oldRoot, ...p];
  let fn = oldSize - 1;
  let sn = newSize - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  const [first, ...rest] = p;
  if (first === undefined) return false;
  let fr = first;
  let sr = first;
  for (const c of rest) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equal(fr, oldRoot) && equal(sr, newRoot);
}
