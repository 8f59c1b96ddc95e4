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

/**
 * The compact range of leaves `0..size` (the "frontier"): the roots of the perfect subtrees the
 * tree over those leaves splits into, largest first — one per bit set in `size`, so at most 53
 * hashes. It is enough to extend the tree leaf by leaf and to compute its root (§12.2) without
 * keeping the leaves: a reader that keeps it with a tree head proves, from the leaves it is served
 * past that head, that they make up the next head. Immutable: `extend` returns a new range.
 */
export class CompactRange {
  private constructor(
    /** How many leaves the range covers (`0..size`). */
    readonly size: number,
    private readonly nodes: readonly Uint8Array[],
  ) {}

  /** The range of no leaves. */
  static empty(): CompactRange {
    return new CompactRange(0, []);
  }

  /**
   * A range from its parts as kept (`size` and `hashes()`).
   *
   * # Errors
   * `ProtocolError` (`malformed`) unless there is one 32-byte hash per bit set in `size`.
   */
  static fromParts(size: number, hashes: readonly Uint8Array[]): CompactRange {
    if (!Number.isSafeInteger(size) || size < 0) throw new ProtocolError("malformed", "compact range size");
    if (hashes.length !== bitsSet(size) || hashes.some((h) => !(h instanceof Uint8Array) || h.length !== 32)) {
      throw new ProtocolError("malformed", `compact range of ${size} leaves: expected ${bitsSet(size)} 32-byte hashes`);
    }
    return new CompactRange(size, [...hashes]);
  }

  /** The subtree roots, largest first (what to keep with `size`). */
  hashes(): Uint8Array[] {
    return [...this.nodes];
  }

  /** The range with leaf hashes `leaves` appended at `size`, `size + 1`, …. */
  extend(leaves: readonly Uint8Array[]): CompactRange {
    const nodes = [...this.nodes];
    let size = this.size;
    for (const leaf of leaves) {
      // The new leaf merges with each full subtree of the same size before it: one per
      // trailing 1 bit of the old size.
      let h = leaf;
      for (let s = size; s % 2 === 1; s = Math.floor(s / 2)) h = nodeHash(nodes.pop() as Uint8Array, h);
      nodes.push(h);
      size += 1;
    }
    return new CompactRange(size, nodes);
  }

  /** The root of the tree over leaves `0..size` (§12.2): equal to `root` of those leaves. */
  root(): Uint8Array {
    let r: Uint8Array | undefined;
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      const n = this.nodes[i] as Uint8Array;
      r = r === undefined ? n : nodeHash(n, r);
    }
    return r ?? EMPTY_ROOT;
  }
}

function bitsSet(n: number): number {
  let c = 0;
  for (let x = n; x > 0; x = Math.floor(x / 2)) c += x % 2;
  return c;
}
