/** The TypeScript labels are exactly the Rust crate's (`protocol/src/labels.rs`), none missing. */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import * as labels from "../src/labels.js";

const rust = readFileSync(join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "protocol", "src", "labels.rs"), "utf8");

describe("labels", () => {
  it("every label of protocol/src/labels.rs, with the same string, and no other", () => {
    const fromRust = Object.fromEntries([...rust.matchAll(/pub const (\w+): &str = "([^"]+)";/g)].map((m) => [m[1], m[2]]));
    expect(Object.keys(fromRust).length).toBeGreaterThan(30);
    expect({ ...labels }).toEqual(fromRust);
  });
});
