/**
 * The compact range (`CompactRange`, the frontier a log reader keeps): its root equals `root()`
 * over the same leaves for every size from 0 to 300, however the leaves are split into extends;
 * it survives being kept as parts; and parts that cannot be a range are refused.
 */
import { describe, expect, it } from "vitest";
import { sha256 } from "@noble/hashes/sha2.js";
import { toHex } from "../src/bytes.js";
import { CompactRange, EMPTY_ROOT, leafHash, root } from "../src/merkle.js";

const leaves: Uint8Array[] = Array.from({ length: 300 }, (_, i) => leafHash(sha256(new Uint8Array([i % 256, Math.floor(i / 256)]))));

describe("CompactRange", () => {
  it("has the root of root() for every size from 0 to 300, one leaf at a time", () => {
    let range = CompactRange.empty();
    for (let n = 0; n <= 300; n++) {
      expect(range.size).toBe(n);
      expect(toHex(range.root())).toBe(toHex(root(leaves.slice(0, n))));
      // One hash per bit set: the range stays O(log n).
      expect(range.hashes().length).toBe(n.toString(2).split("").filter((b) => b === "1").length);
      const leaf = leaves[n];
      if (leaf !== undefined) range = range.extend([leaf]);
    }
    expect(toHex(CompactRange.empty().root())).toBe(toHex(EMPTY_ROOT));
  });

  it("gives the same root however the leaves come, and from its kept parts", () => {
    for (const [a, b] of [[0, 300], [1, 300], [7, 8], [64, 129], [100, 255], [255, 256], [299, 300]] as const) {
      const first = CompactRange.empty().extend(leaves.slice(0, a));
      const kept = CompactRange.fromParts(first.size, first.hashes());
      const whole = kept.extend(leaves.slice(a, b));
      expect(whole.size).toBe(b);
      expect(toHex(whole.root())).toBe(toHex(root(leaves.slice(0, b))));
      // Extending returns a new range: the one kept is unchanged.
      expect(toHex(kept.root())).toBe(toHex(root(leaves.slice(0, a))));
    }
  });

  it("tells a changed, dropped or extra leaf by its root", () => {
    const honest = CompactRange.empty().extend(leaves.slice(0, 37)).root();
    const altered = [...leaves.slice(0, 37)];
    altered[20] = leaves[200] as Uint8Array;
    expect(toHex(CompactRange.empty().extend(altered).root())).not.toBe(toHex(honest));
    expect(toHex(CompactRange.empty().extend([...leaves.slice(0, 20), ...leaves.slice(21, 37)]).root())).not.toBe(toHex(honest));
    expect(toHex(CompactRange.empty().extend(leaves.slice(0, 38)).root())).not.toBe(toHex(honest));
  });

  it("refuses parts that are not a range", () => {
    const r = CompactRange.empty().extend(leaves.slice(0, 5));
    expect(() => CompactRange.fromParts(5, r.hashes().slice(1))).toThrowError(/malformed/);
    expect(() => CompactRange.fromParts(7, r.hashes())).toThrowError(/malformed/);
    expect(() => CompactRange.fromParts(5, [r.hashes()[0] as Uint8Array, new Uint8Array(31)])).toThrowError(/malformed/);
    expect(() => CompactRange.fromParts(-1, [])).toThrowError(/malformed/);
    expect(() => CompactRange.fromParts(1.5, [])).toThrowError(/malformed/);
    expect(CompactRange.fromParts(0, []).root()).toEqual(EMPTY_ROOT);
  });
});
