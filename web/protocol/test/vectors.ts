/**
 * The Rust vector files of `protocol/vectors/` (the single source of the contract), bundled by
 * Vite so the same tests run under Node and inside Chromium.
 */
import { fromHex } from "../src/bytes.js";

/** A vector file, parsed (vector JSON is untyped; tests narrow it field by field). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

const files: Record<string, Json> = import.meta.glob("../../../protocol/vectors/*.json", { eager: true, import: "default" });
const byName = new Map(Object.entries(files).map(([path, json]) => [path.slice(path.lastIndexOf("/") + 1), json]));

/** Every vector file name in `protocol/vectors/`. */
export function vectorFiles(): string[] {
  return [...byName.keys()].sort();
}

/** One vector file, parsed. */
export function loadVector(name: string): Json {
  const v = byName.get(name);
  if (v === undefined) throw new Error(`no vector file ${name}`);
  return structuredClone(v);
}

/** Hex to bytes. */
export const h = (s: string): Uint8Array => fromHex(s);
