/**
 * Conformance: every file in `protocol/vectors/` is reproduced byte for byte. A file with no
 * test here fails `every vector file is covered`; files not implemented yet are listed in
 * `UNIMPLEMENTED` and show as todo tests, named.
 */
import { describe, expect, it } from "vitest";
import { vectorFiles } from "./vectors.js";
import { COVERED } from "./covered.js";

/** Vector files the TypeScript library does not reproduce yet. */
export const UNIMPLEMENTED: readonly string[] = [
];

describe("protocol/vectors", () => {
  it("every vector file is covered by a conformance test or listed as unimplemented", () => {
    const files = vectorFiles();
    expect(files.length).toBeGreaterThan(0);
    const missing = files.filter((f) => !COVERED.includes(f) && !UNIMPLEMENTED.includes(f));
    expect(missing).toEqual([]);
  });
  for (const f of UNIMPLEMENTED) it.todo(`UNIMPLEMENTED vector file ${f}: not reproduced by web/protocol yet`);
});
