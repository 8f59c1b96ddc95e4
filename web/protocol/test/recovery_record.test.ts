/**
 * `recovery_record.json` (PROTOCOL §3.5): a replaceable code's key, proof, verifier and AAD
 * derived with `@noble/hashes`, carol's sealed keys opened with `@noble/ciphers` AES-GCM, the
 * record's CBOR, and the records that must be refused.
 */
import { gcm } from "@noble/ciphers/aes.js";
import { expand, extract } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { describe, expect, it } from "vitest";
import { concat, toHex } from "../src/bytes.js";
import { Writer } from "../src/codec.js";
import { ProtocolError } from "../src/errors.js";
import { RECOVERY_CODE_SALT, RECOVERY_RECORD_KEY, RECOVERY_RECORD_PROOF } from "../src/labels.js";
import { RECORD_CODE_VERSION, formatRecoveryCode, parseRecoveryCode, recoveryIdentityKeys } from "../src/recovery.js";
import { generateRecordCode, openRecoveryRecord, recoveryProof, recoveryRecordAad, recoveryRecordFromCbor, recoveryRecordKey, recoveryRecordToCbor, recoveryVerifier, sealRecoveryRecord } from "../src/recovery_record.js";
import { cardToCbor, fromCbor, toCbor } from "../src/wire.js";
import { cardOf, keysOf } from "./fixtures.js";
import type { Json } from "./vectors.js";
import { h, loadVector } from "./vectors.js";

const v = loadVector("recovery_record.json");

describe("recovery_record.json", () => {
  it("the replaceable code: version 2, text reproduced, and it stands for no keys", () => {
    const c = v.code;
    expect(c.version).toBe(RECORD_CODE_VERSION);
    const code = parseRecoveryCode(c.code);
    expect(code.version).toBe(RECORD_CODE_VERSION);
    expect(toHex(code.entropy)).toBe(c.entropy);
    expect(code.createdAt).toBe(c.made_at);
    expect(formatRecoveryCode({ entropy: h(c.entropy), createdAt: c.made_at, version: RECORD_CODE_VERSION })).toBe(c.code);
    expect(() => recoveryIdentityKeys(code)).toThrowError(expect.objectContaining({ code: "recovery_code_kind" }));
  });
  it("key, proof, verifier and AAD with the raw primitives, and by the library", () => {
    const entropy = h(v.code.entropy);
    const salt = Writer.withLabel(RECOVERY_CODE_SALT).toBytes();
    expect(toHex(salt)).toBe(v.salt);
    expect(toHex(Writer.withLabel(RECOVERY_RECORD_KEY).toBytes())).toBe(v.key_info);
    expect(toHex(Writer.withLabel(RECOVERY_RECORD_PROOF).toBytes())).toBe(v.proof_info);
    const prk = extract(sha256, entropy, salt);
    expect(toHex(expand(sha256, prk, h(v.key_info), 32))).toBe(v.key);
    const proof = expand(sha256, prk, h(v.proof_info), 32);
    expect(toHex(proof)).toBe(v.proof);
    const verifierInput = concat(Writer.withLabel("sealdesk/v1/recovery-record/verifier").toBytes(), new Uint8Array([0, 0, 0, 32]), proof);
    expect(toHex(sha256(verifierInput))).toBe(v.verifier);
    const aad = concat(Writer.withLabel("sealdesk/v1/recovery-record/aad").toBytes(), new Uint8Array([0, 0, 0, v.name.length]), new TextEncoder().encode(v.name), h(v.verifier));
    expect(toHex(aad)).toBe(v.aad);

    const code = parseRecoveryCode(v.code.code);
    expect(toHex(recoveryRecordKey(code))).toBe(v.key);
    expect(toHex(recoveryProof(code))).toBe(v.proof);
    expect(toHex(recoveryVerifier(recoveryProof(code)))).toBe(v.verifier);
    expect(toHex(recoveryRecordAad(v.name, h(v.verifier)))).toBe(v.aad);
  });
  it("the sealed keys open with AES-256-GCM to carol's secret, and re-seal to the same bytes", () => {
    const cipher = () => gcm(h(v.key), h(v.nonce), h(v.aad));
    const secret = cipher().decrypt(h(v.sealed));
    expect(toHex(secret)).toBe(v.identity_secret);
    expect(toHex(secret)).toBe(toHex(keysOf("carol").toSecretBytes()));
    expect(toHex(cipher().encrypt(secret))).toBe(v.sealed);
  });
  it("the record's CBOR, and the record opens to carol's keys", () => {
    expect(toHex(toCbor(cardToCbor(cardOf("carol"))))).toBe(v.card_cbor);
    const cbor = toCbor({ version: 1, card: cardToCbor(cardOf("carol")), verifier: h(v.verifier), nonce: h(v.nonce), sealed: h(v.sealed) });
    expect(toHex(cbor)).toBe(v.record_cbor);
    const record = recoveryRecordFromCbor(fromCbor(h(v.record_cbor)));
    expect(record.card).toEqual(cardOf("carol"));
    const keys = openRecoveryRecord(record, parseRecoveryCode(v.code.code), v.name);
    expect(toHex(keys.toSecretBytes())).toBe(v.identity_secret);
    expect(() => openRecoveryRecord(record, parseRecoveryCode(v.code.code), "dave")).toThrowError(expect.objectContaining({ code: "wrong_name" }));
    const future = fromCbor(h(v.record_cbor)) as Record<string, unknown>;
    future.version = 9;
    expect(() => recoveryRecordFromCbor(future as never)).toThrowError(expect.objectContaining({ code: "unknown_version" }));
  });
  it("sealing carol's keys under the code with the vector's nonce gives the record's CBOR byte for byte", () => {
    const record = sealRecoveryRecord(parseRecoveryCode(v.code.code), cardOf("carol"), keysOf("carol"), h(v.nonce));
    expect(toHex(record.sealed)).toBe(v.sealed);
    expect(toHex(record.verifier)).toBe(v.verifier);
    expect(toHex(toCbor(recoveryRecordToCbor(record)))).toBe(v.record_cbor);
    expect(toHex(toCbor(recoveryRecordToCbor(recoveryRecordFromCbor(fromCbor(h(v.record_cbor))))))).toBe(v.record_cbor);
  });
  it("sealing refuses keys that are not the card's, an init code and a short nonce", () => {
    const code = parseRecoveryCode(v.code.code);
    expect(() => sealRecoveryRecord(code, cardOf("carol"), keysOf("dave"), h(v.nonce))).toThrowError(expect.objectContaining({ code: "card_mismatch" }));
    expect(() => sealRecoveryRecord({ entropy: code.entropy, createdAt: code.createdAt }, cardOf("carol"), keysOf("carol"), h(v.nonce))).toThrowError(expect.objectContaining({ code: "recovery_code_kind" }));
    expect(() => sealRecoveryRecord(code, cardOf("carol"), keysOf("carol"), new Uint8Array(11))).toThrowError(expect.objectContaining({ code: "malformed" }));
  });
  it("a generated code is a replaceable one: its text parses back, and a record sealed under it opens only with it", () => {
    let n = 0;
    const random = (len: number): Uint8Array => Uint8Array.from({ length: len }, () => (n += 37) & 0xff);
    const code = generateRecordCode(random, v.code.made_at);
    const parsed = parseRecoveryCode(formatRecoveryCode(code));
    expect(parsed.version).toBe(RECORD_CODE_VERSION);
    expect(parsed.createdAt).toBe(v.code.made_at);
    const record = sealRecoveryRecord(parsed, cardOf("carol"), keysOf("carol"), random(12));
    expect(toHex(openRecoveryRecord(record, parsed, "carol").toSecretBytes())).toBe(v.identity_secret);
    expect(() => openRecoveryRecord(record, parseRecoveryCode(v.code.code), "carol")).toThrowError(expect.objectContaining({ code: "open" }));
  });
  const errors: Record<string, string> = { open: "open", card_mismatch: "card_mismatch", not_a_record_code: "recovery_code_kind" };
  for (const r of v.refused as Json[]) {
    it(`refused: ${r.about}`, () => {
      const record = recoveryRecordFromCbor(fromCbor(h(r.record_cbor)));
      let caught: unknown;
      try {
        openRecoveryRecord(record, parseRecoveryCode(r.code), r.name);
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(ProtocolError);
      expect((caught as ProtocolError).code).toBe(errors[r.error]);
      // With the raw cipher: whether the code's key opens the sealed bytes under the record's
      // own AAD (where it does, only the verifier or card check refuses the record).
      if (r.code !== v.code.code || r.name !== v.name) {
        expect(r.aead_opens).toBe(false);
        return;
      }
      let opens = true;
      try {
        gcm(h(v.key), record.nonce, recoveryRecordAad(record.card.name, record.verifier)).decrypt(record.sealed);
      } catch {
        opens = false;
      }
      expect(opens).toBe(r.aead_opens);
    });
  }
});
