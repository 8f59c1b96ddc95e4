/**
 * Ephemeral signals (PROTOCOL §9.7, `protocol/src/signal.rs`): "typing" and "stopped", sealed
 * under the sender's current epoch with a key of their own label, a random nonce (nothing
 * stores a signal, so it has no counter) and the sender's signature. Held to the Rust code by
 * `protocol/vectors/signals.json` (`web/client/test/signal.test.ts`).
 */
import { gcm } from "@noble/ciphers/aes.js";
import { expand, extract } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { ProtocolError, Writer, equal, labels, verifyStrict, type IdentityKeys } from "@sealdesk/protocol";

/** How far a signal's `sent_at` may be from the receiver's clock, in seconds. */
export const MAX_SIGNAL_SKEW = 30;

/** What a signal says. */
export type SignalKind = "typing" | "stopped";

const CODES: Record<SignalKind, number> = { typing: 1, stopped: 2 };

/** A signal as sent (`request signal`) and pushed (`push signal`). */
export interface SignalEnvelope {
  header: { version: number; conversation: Uint8Array; epoch: number; sender: Uint8Array; sentAt: number; nonce: Uint8Array };
  ciphertext: Uint8Array;
  signature: Uint8Array;
}

/** The epoch's PRK (§6) from its secret `k`. */
export function epochPrk(k: Uint8Array, conversation: Uint8Array, epoch: number): Uint8Array {
  return extract(sha256, k, Writer.withLabel(labels.EPOCH_SALT).fixed(conversation).u32(epoch).toBytes());
}

function signalKey(prk: Uint8Array, sender: Uint8Array): Uint8Array {
  return expand(sha256, prk, Writer.withLabel(labels.SIGNAL_KEY).fixed(sender).toBytes(), 32);
}

function headerBytes(h: SignalEnvelope["header"]): Uint8Array {
  return new Writer().u8(h.version).fixed(h.conversation).u32(h.epoch).fixed(h.sender).u64(h.sentAt).fixed(h.nonce).toBytes();
}

/** Seals `kind` from `me` in the epoch whose PRK is `prk`. */
export function sealSignal(prk: Uint8Array, conversation: Uint8Array, epoch: number, me: IdentityKeys, kind: SignalKind, sentAt: number, nonce: Uint8Array): SignalEnvelope {
  const header = { version: 1, conversation, epoch, sender: me.signingPublic, sentAt, nonce };
  const hb = headerBytes(header);
  const ciphertext = gcm(signalKey(prk, me.signingPublic), nonce, Writer.withLabel(labels.SIGNAL_AAD).fixed(hb).toBytes()).encrypt(new Uint8Array([CODES[kind]]));
  const signature = me.sign(Writer.withLabel(labels.SIGNAL_SIGNATURE).fixed(hb).bytes(ciphertext).toBytes());
  return { header, ciphertext, signature };
}

/**
 * Opens a signal in the order of §9.7: version, conversation and epoch, membership, clock skew,
 * length, signature, decryption, a known kind. Throws `ProtocolError` on any failure (the caller
 * drops the signal silently).
 */
export function openSignal(env: SignalEnvelope, prk: Uint8Array, conversation: Uint8Array, epoch: number, members: readonly Uint8Array[], now: number): SignalKind {
  const h = env.header;
  if (h.version !== 1) throw new ProtocolError("malformed", "signal version");
  if (!equal(h.conversation, conversation) || h.epoch !== epoch) throw new ProtocolError("malformed", "signal for another conversation or epoch");
  if (!members.some((m) => equal(m, h.sender))) throw new ProtocolError("malformed", "signal from a non-member");
  if (Math.abs(h.sentAt - now) > MAX_SIGNAL_SKEW) throw new ProtocolError("malformed", "signal expired");
  if (env.ciphertext.length !== 17 || h.nonce.length !== 12) throw new ProtocolError("malformed", "signal length");
  const hb = headerBytes(h);
  if (!verifyStrict(h.sender, Writer.withLabel(labels.SIGNAL_SIGNATURE).fixed(hb).bytes(env.ciphertext).toBytes(), env.signature)) throw new ProtocolError("bad_signature", "signal");
  let body: Uint8Array;
  try {
    body = gcm(signalKey(prk, h.sender), h.nonce, Writer.withLabel(labels.SIGNAL_AAD).fixed(hb).toBytes()).decrypt(env.ciphertext);
  } catch {
    throw new ProtocolError("malformed", "signal does not decrypt");
  }
  if (body[0] === 1) return "typing";
  if (body[0] === 2) return "stopped";
  throw new ProtocolError("malformed", "signal kind");
}
