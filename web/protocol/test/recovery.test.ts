/** `recovery.json` (PROTOCOL §3.5): recovery codes written, read and turned into keys byte for byte. */
import { describe, expect, it } from "vitest";
import { toHex } from "../src/bytes.js";
import { Writer } from "../src/codec.js";
import { ProtocolError } from "../src/errors.js";
import { fingerprint, formatFingerprint } from "../src/keys.js";
import { RECOVERY_CODE_IDENTITY, RECOVERY_CODE_SALT } from "../src/labels.js";
import { RECOVERY_ALPHABET, formatRecoveryCode, parseRecoveryCode, recoveryIdentityKeys } from "../src/recovery.js";
import type { Json } from "./vectors.js";
import { h, loadVector } from "./vectors.js";

const v = loadVector("recovery.json");

describe("recovery.json", () => {
  it("alphabet, salt and info", () => {
    expect(RECOVERY_ALPHABET).toBe(v.alphabet);
    expect(toHex(Writer.withLabel(RECOVERY_CODE_SALT).toBytes())).toBe(v.salt);
    expect(toHex(Writer.withLabel(RECOVERY_CODE_IDENTITY).toBytes())).toBe(v.info);
  });
  for (const c of v.codes as Json[]) {
    it(`code of ${c.created_at}: text, checksum and keys reproduced`, () => {
      const code = { entropy: h(c.entropy), createdAt: c.created_at };
      expect(formatRecoveryCode(code)).toBe(c.code);
      const back = parseRecoveryCode(c.code);
      expect(toHex(back.entropy)).toBe(c.entropy);
      expect(back.createdAt).toBe(c.created_at);
      const keys = recoveryIdentityKeys(back);
      expect(toHex(keys.toSecretBytes())).toBe(c.identity_secret);
      expect(toHex(keys.signingPublic)).toBe(c.signing_public);
      expect(toHex(keys.agreementPublic)).toBe(c.agreement_public);
      expect(formatFingerprint(fingerprint(keys.signingPublic, keys.agreementPublic))).toBe(c.fingerprint);
      expect(toHex(Writer.withLabel("sealdesk/v1/recovery-code/checksum").fixed(h(c.payload)).toBytes())).toBe(c.checksum_input);
    });
  }
  it("a code typed loosely reads the same", () => {
    expect(toHex(parseRecoveryCode(v.loose.code).entropy)).toBe(toHex(parseRecoveryCode(v.loose.same_as).entropy));
  });
  for (const r of v.refused as Json[]) {
    it(`refused: ${r.about}`, () => {
      const codes: Record<string, string> = { checksum: "recovery_code_checksum", bad_character: "recovery_code_character", wrong_length: "recovery_code_length" };
      let caught: unknown;
      try {
        parseRecoveryCode(r.code);
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(ProtocolError);
      expect((caught as ProtocolError).code).toBe(codes[r.error]);
    });
  }
});
