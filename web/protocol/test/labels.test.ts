/** The TypeScript labels are exactly the Rust crate's (`protocol/src/labels.rs`), none missing. */
import { describe, expect, it } from "vitest";
import * as labels from "../src/labels.js";
import rust from "../../../protocol/src/labels.rs?raw";

describe("labels", () => {
  it("every label of protocol/src/labels.rs, with the same string, and no other", () => {
    const fromRust = Object.fromEntries([...rust.matchAll(/pub const (\w+): &str = "([^"]+)";/g)].map((m) => [m[1], m[2]]));
    expect(Object.keys(fromRust).length).toBeGreaterThan(30);
    expect({ ...labels }).toEqual(fromRust);
  });
});
