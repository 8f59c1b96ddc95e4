/**
 * The CLI vault import's checks without the CLI: a header of another format or version, a
 * key-derivation cost no tab should pay, and a header whose check value does not open are each
 * refused with their own failure before any record is read.
 */
import { describe, expect, it } from "vitest";
import { importCliVault, parseVaultHeader } from "../src/vault-import.js";

const header = (over: Record<string, unknown> = {}, kdf: Record<string, unknown> = {}): string =>
  JSON.stringify({ format: "sealdesk-vault", version: 1, kdf: { algorithm: "argon2id", memory_kib: 1024, iterations: 1, parallelism: 1, ...kdf }, salt: "00".repeat(16), check: "01" + "00".repeat(12 + 31 + 16), ...over });

describe("the CLI vault's header", () => {
  it("reads the parameters and the salt", () => {
    const h = parseVaultHeader(header());
    expect([h.memoryKib, h.iterations, h.parallelism, h.salt.length]).toEqual([1024, 1, 1, 16]);
  });
  it("refuses another format, a newer version, another KDF, a short salt and a costly KDF", () => {
    expect(() => parseVaultHeader(header({ format: "other" }))).toThrow(expect.objectContaining({ failure: "not_a_vault" }));
    expect(() => parseVaultHeader(header({ version: 2 }))).toThrow(expect.objectContaining({ failure: "unsupported_version" }));
    expect(() => parseVaultHeader(header({}, { algorithm: "scrypt" }))).toThrow(expect.objectContaining({ failure: "corrupt" }));
    expect(() => parseVaultHeader(header({ salt: "00" }))).toThrow(expect.objectContaining({ failure: "corrupt" }));
    expect(() => parseVaultHeader(header({}, { memory_kib: 4 * 1024 * 1024 }))).toThrow(expect.objectContaining({ failure: "too_costly" }));
  });
  it("reports a check value that does not open as a wrong passphrase", async () => {
    await expect(importCliVault({ header: header(), identity: new Uint8Array(0), profile: new Uint8Array(0) }, "anything")).rejects.toMatchObject({ failure: "wrong_passphrase" });
  });
});
