/** `hpke.json`: `info` per purpose, a deterministic seal, and the seeded random seal. */
import { describe, expect, it } from "vitest";
import { toHex } from "../src/bytes.js";
import { ProtocolError } from "../src/errors.js";
import { IdentityKeys } from "../src/keys.js";
import { open, seal, sealDeterministic, sealInfo } from "../src/seal.js";
import type { SealContext } from "../src/seal.js";
import { h, loadVector } from "./vectors.js";

const v = loadVector("hpke.json");
const ids = loadVector("identities.json").identities as { name: string; secret_key: string }[];

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function ctx(c: any): SealContext {
  return { purpose: c.purpose, conversation: h(c.conversation), epoch: c.epoch, recipient: h(c.recipient_signing_public), extra: h(c.extra) };
}
function keysOf(name: string): IdentityKeys | undefined {
  const id = ids.find((i) => i.name === name);
  return id === undefined ? undefined : IdentityKeys.fromSecretBytes(h(id.secret_key));
}

describe("hpke.json", () => {
  it("suite is the one implemented", () => {
    expect([v.suite.kem_id, v.suite.kdf_id, v.suite.aead_id, v.suite.aad]).toEqual([32, 1, 2, ""]);
  });
  for (const c of v.contexts) {
    it(`info for ${c.purpose} to ${c.recipient}`, () => {
      expect(toHex(sealInfo(ctx(c)))).toBe(c.info);
    });
  }
  it("deterministic seal reproduces enc and ciphertext", async () => {
    const d = v.deterministic;
    const s = await sealDeterministic(h(d.ikm), h(d.recipient_agreement_public), ctx(d.context), h(d.plaintext));
    expect(toHex(s.enc)).toBe(d.enc);
    expect(toHex(s.ciphertext)).toBe(d.ciphertext);
  });
  it("random seal with the recorded generator bytes reproduces the vector", async () => {
    const r = v.random;
    const s = await seal(() => h(r.rng_ikm), h(r.recipient_agreement_public), ctx(r.context), h(r.plaintext));
    expect(toHex(s.enc)).toBe(r.enc);
    expect(toHex(s.ciphertext)).toBe(r.ciphertext);
  });
  for (const which of ["deterministic", "random"] as const) {
    it(`${which} seal opens for its recipient, and not in another context`, async () => {
      const d = v[which];
      const keys = keysOf(d.context.recipient);
      expect(keys).toBeDefined();
      if (keys === undefined) return;
      const sealed = { enc: h(d.enc), ciphertext: h(d.ciphertext) };
      expect(toHex(await open(keys, sealed, ctx(d.context)))).toBe(d.plaintext);
      const wrongEpoch = { ...ctx(d.context), epoch: d.context.epoch + 1 };
      await expect(open(keys, sealed, wrongEpoch)).rejects.toBeInstanceOf(ProtocolError);
      const tampered = h(d.ciphertext);
      tampered[0] = (tampered[0] ?? 0) ^ 1;
      await expect(open(keys, { enc: sealed.enc, ciphertext: tampered }, ctx(d.context))).rejects.toMatchObject({ code: "open" });
    });
  }
});
