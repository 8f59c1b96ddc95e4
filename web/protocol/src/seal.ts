/**
 * HPKE sealing (PROTOCOL §5): RFC 9180 base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
 * AES-256-GCM, empty AAD, single shot. The `info` binds purpose, conversation, epoch, recipient and
 * an extra value. A deterministic seal fixes the ephemeral key as `DeriveKeyPair(ikm)`, through
 * @hpke/core's `ekm` sender parameter, so every member can recompute the escrow section byte for
 * byte (as `protocol/src/seal.rs` does through rust-hpke's generator).
 */
import { Aes256Gcm, CipherSuite } from "@hpke/core";
import { DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/dhkem-x25519";
import { fixedLength } from "./bytes.js";
import { Writer } from "./codec.js";
import { ProtocolError } from "./errors.js";
import type { IdentityKeys } from "./keys.js";
import { HPKE_INFO, SEAL_EPOCH_SECRET, SEAL_HANDOFF, SEAL_MASTER_SHARE, SEAL_RELEASED_SHARE, SEAL_TRUSTEE_SHARE } from "./labels.js";

/** What a sealed blob is for (the purpose string of its `info`). */
export type SealPurpose =
  | typeof SEAL_EPOCH_SECRET
  | typeof SEAL_MASTER_SHARE
  | typeof SEAL_TRUSTEE_SHARE
  | typeof SEAL_RELEASED_SHARE
  | typeof SEAL_HANDOFF;

/** The context a blob is sealed in; becomes the HPKE `info`. */
export interface SealContext {
  purpose: SealPurpose;
  conversation: Uint8Array;
  epoch: number;
  /** The recipient's Ed25519 signing key (the blob is sealed to its agreement key). */
  recipient: Uint8Array;
  extra: Uint8Array;
}

/** An HPKE-sealed blob. */
export interface Sealed {
  /** The encapsulated (ephemeral X25519 public) key, 32 bytes. */
  enc: Uint8Array;
  /** AEAD ciphertext with its 16-byte tag. */
  ciphertext: Uint8Array;
}

/** `str(HPKE_INFO) ‖ str(purpose) ‖ conversation[16] ‖ u32(epoch) ‖ recipient[32] ‖ bytes(extra)`. */
export function sealInfo(ctx: SealContext): Uint8Array {
  return Writer.withLabel(HPKE_INFO)
    .str(ctx.purpose)
    .fixed(fixedLength(ctx.conversation, 16, "conversation id"))
    .u32(ctx.epoch)
    .fixed(fixedLength(ctx.recipient, 32, "recipient signing key"))
    .bytes(ctx.extra)
    .toBytes();
}

/** Appends `enc[32] ‖ bytes(ciphertext)`. */
export function writeSealed(w: Writer, s: Sealed): Writer {
  return w.fixed(s.enc).bytes(s.ciphertext);
}

function suite(): CipherSuite {
  return new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() });
}

async function sealWithIkm(ikmE: Uint8Array, recipientAgreement: Uint8Array, ctx: SealContext, plaintext: Uint8Array): Promise<Sealed> {
  const s = suite();
  try {
    const recipientPublicKey = await s.kem.deserializePublicKey(fixedLength(recipientAgreement, 32, "recipient agreement key"));
    const out = await s.seal({ recipientPublicKey, info: sealInfo(ctx), ekm: ikmE }, plaintext);
    return { enc: new Uint8Array(out.enc), ciphertext: new Uint8Array(out.ct) };
  } catch (e) {
    if (e instanceof ProtocolError) throw e;
    throw new ProtocolError("seal", e instanceof Error ? e.name : "hpke");
  }
}

/** A random seal: the ephemeral key is `DeriveKeyPair` of 32 bytes from `random`. */
export function seal(random: (n: number) => Uint8Array, recipientAgreement: Uint8Array, ctx: SealContext, plaintext: Uint8Array): Promise<Sealed> {
  return sealWithIkm(random(32), recipientAgreement, ctx, plaintext);
}

/** A deterministic seal: the ephemeral key is `DeriveKeyPair(ikm)` (escrow only, §5.3). */
export function sealDeterministic(ikm: Uint8Array, recipientAgreement: Uint8Array, ctx: SealContext, plaintext: Uint8Array): Promise<Sealed> {
  return sealWithIkm(fixedLength(ikm, 32, "ikm"), recipientAgreement, ctx, plaintext);
}

/** Opens a blob sealed to `keys` in context `ctx`; `open` error when anything differs. */
export async function open(keys: IdentityKeys, sealed: Sealed, ctx: SealContext): Promise<Uint8Array> {
  const s = suite();
  const secret = keys.agreementSecret();
  const raw = new ArrayBuffer(32);
  new Uint8Array(raw).set(secret);
  try {
    const recipientKey = await s.kem.importKey("raw", raw, false);
    const pt = await s.open({ recipientKey, enc: fixedLength(sealed.enc, 32, "enc"), info: sealInfo(ctx) }, sealed.ciphertext);
    return new Uint8Array(pt);
  } catch (e) {
    if (e instanceof ProtocolError) throw e;
    throw new ProtocolError("open", ctx.purpose);
  } finally {
    secret.fill(0);
    new Uint8Array(raw).fill(0);
  }
}
