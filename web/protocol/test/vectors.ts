/** Loads the Rust vector files from `protocol/vectors/` (the single source of the contract). */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { fromHex } from "../src/bytes.js";

/** `protocol/vectors/`, relative to this package. */
export const VECTOR_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "protocol", "vectors");

/** Every vector file name in the directory. */
export function vectorFiles(): string[] {
  return readdirSync(VECTOR_DIR)
    .filter((f) => f.endsWith(".json"))
    .sort();
}

/** A vector file, parsed (vector JSON is untyped; tests narrow it field by field). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

/** Parses one vector file. */
export function loadVector(name: string): Json {
  return JSON.parse(readFileSync(join(VECTOR_DIR, name), "utf8")) as Json;
}

/** Hex to bytes. */
export const h = (s: string): Uint8Array => fromHex(s);
