/**
 * Messages (PROTOCOL §9): the 102-byte header, per-message keys from the sender's chain,
 * AES-256-GCM with the key commitment, the signature, the receiving checks in order, and the
 * per-sender replay window. Mirrors `protocol/src/message.rs`.
 */
import { gcm } from "@noble/ciphers/aes.js";
import { equal } from "./bytes.js";
import { labelledHash, Writer } from "./codec.js";
import { ProtocolError } from "./errors.js";
import type { IdentityKeys } from "./keys.js";
import { verifyStrict } from "./ed25519.js";
import { MESSAGE_AAD, MESSAGE_COMMITMENT, MESSAGE_SIGNATURE } from "./labels.js";
import type { EpochSecret } from "./secret.js";
import { messageKeys } from "./secret.js";

/** Largest plaintext body. */
export const MAX_BODY = 49_152;
/** Largest ciphertext (body and tag). */
export const MAX_CIPHERTEXT = MAX_BODY + 16;
/** How far behind the highest accepted counter a message may arrive. */
export const REORDER_WINDOW = 256;
/** How far ahead of it a message may be. */
export const MAX_AHEAD = 2_000;
/** Header length. */
export const HEADER_LEN = 102;

/** Content kinds and their codes. */
export const KINDS = { text: 1, read: 2, status: 3, attachment: 4 } as const;
/** A content kind. */
export type ContentKind = keyof typeof KINDS;

/** A message header (§9.2). */
export interface MessageHeader {
  version: number;
  conversation: Uint8Array;
  epoch: number;
  sender: Uint8Array;
  counter: number;
  kind: ContentKind;
  sentAt: number;
  commitment: Uint8Array;
}

/** A sealed message as carried on the wire. */
export interface Envelope {
  header: MessageHeader;
  ciphertext: Uint8Array;
  signature: Uint8Array;
}

/** Why a message was refused (§9.4, in order). */
export type MessageFailure =
  | "unknown_version"
  | "wrong_conversation"
  | "wrong_epoch"
  | "not_a_member"
  | "too_far_ahead"
  | "too_old"
  | "duplicate"
  | "too_large"
  | "bad_signature"
  | "commitment_mismatch"
  | "decrypt";

/** A message refused for `failure`. */
export class MessageError extends ProtocolError {
  constructor(readonly failure: MessageFailure) {
    super("malformed", `message: ${failure}`);
  }
}

/** The fixed 102-byte header layout. */
export function encodeHeader(h: MessageHeader): Uint8Array {
  const b = new Writer().u8(h.version).fixed(h.conversation).u32(h.epoch).fixed(h.sender).u64(h.counter).u8(KINDS[h.kind]).u64(h.sentAt).fixed(h.commitment).toBytes();
  if (b.length !== HEADER_LEN) throw new ProtocolError("bad_length", "message header");
  return b;
}

/** `str(MESSAGE_AAD) ‖ header`. */
export function messageAad(header: Uint8Array): Uint8Array {
  return Writer.withLabel(MESSAGE_AAD).fixed(header).toBytes();
}

/** `str(MESSAGE_SIGNATURE) ‖ header ‖ bytes(ciphertext)`. */
export function messageSignedBytes(header: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  return Writer.withLabel(MESSAGE_SIGNATURE).fixed(header).bytes(ciphertext).toBytes();
}

/** The key commitment: `labelled_hash(MESSAGE_COMMITMENT, key)`. */
export function keyCommitment(key: Uint8Array): Uint8Array {
  return labelledHash(MESSAGE_COMMITMENT, key);
}

/** Seals one message of `sender` with `counter` (persist `counter + 1` before sending). */
export function sealMessage(
  schedule: EpochSecret,
  conversation: Uint8Array,
  epoch: number,
  sender: IdentityKeys,
  counter: number,
  kind: ContentKind,
  sentAt: number,
  body: Uint8Array,
): Envelope {
  if (body.length > MAX_BODY) throw new MessageError("too_large");
  const { key, nonce } = messageKeys(schedule.chainKey(sender.signingPublic), counter);
  const header: MessageHeader = { version: 1, conversation, epoch, sender: sender.signingPublic, counter, kind, sentAt, commitment: keyCommitment(key) };
  const hb = encodeHeader(header);
  const ciphertext = gcm(key, nonce, messageAad(hb)).encrypt(body);
  key.fill(0);
  return { header, ciphertext, signature: sender.sign(messageSignedBytes(hb, ciphertext)) };
}

/** The replay window of one sender in one epoch (§9.5). */
export class ReplayWindow {
  private highest: bigint | null = null;
  private bitmap = 0n;

  /** Whether `counter` would be admitted; throws the reason when not. */
  check(counter: number): void {
    const c = BigInt(counter);
    if (this.highest === null) {
      if (c > BigInt(MAX_AHEAD)) throw new MessageError("too_far_ahead");
      return;
    }
    if (c > this.highest) {
      if (c - this.highest > BigInt(MAX_AHEAD)) throw new MessageError("too_far_ahead");
      return;
    }
    const back = this.highest - c;
    if (back >= BigInt(REORDER_WINDOW)) throw new MessageError("too_old");
    if ((this.bitmap >> back) & 1n) throw new MessageError("duplicate");
  }

  /** Marks `counter` accepted (after every other check passed). */
  mark(counter: number): void {
    const c = BigInt(counter);
    const mask = (1n << BigInt(REORDER_WINDOW)) - 1n;
    if (this.highest === null) {
      this.highest = c;
      this.bitmap = 1n;
    } else if (c > this.highest) {
      const shift = c - this.highest;
      this.bitmap = shift >= BigInt(REORDER_WINDOW) ? 1n : ((this.bitmap << shift) | 1n) & mask;
      this.highest = c;
    } else {
      this.bitmap |= 1n << (this.highest - c);
    }
  }
}

/** What a receiver knows of the epoch a message claims. */
export interface ReceiveContext {
  conversation: Uint8Array;
  epoch: number;
  schedule: EpochSecret;
  /** Signing keys of the epoch's members. */
  members: readonly Uint8Array[];
  /** The window of a sender (created by the caller on first use). */
  window: (sender: Uint8Array) => ReplayWindow;
}

/** Receives an envelope in the order of §9.4; returns the body. */
export function openMessage(env: Envelope, ctx: ReceiveContext): Uint8Array {
  const h = env.header;
  if (h.version !== 1) throw new MessageError("unknown_version");
  if (!equal(h.conversation, ctx.conversation)) throw new MessageError("wrong_conversation");
  if (h.epoch !== ctx.epoch) throw new MessageError("wrong_epoch");
  if (!ctx.members.some((m) => equal(m, h.sender))) throw new MessageError("not_a_member");
  const window = ctx.window(h.sender);
  window.check(h.counter);
  if (env.ciphertext.length > MAX_CIPHERTEXT) throw new MessageError("too_large");
  const hb = encodeHeader(h);
  if (!verifyStrict(h.sender, messageSignedBytes(hb, env.ciphertext), env.signature)) throw new MessageError("bad_signature");
  const { key, nonce } = messageKeys(ctx.schedule.chainKey(h.sender), h.counter);
  try {
    if (!equal(keyCommitment(key), h.commitment)) throw new MessageError("commitment_mismatch");
    let body: Uint8Array;
    try {
      body = gcm(key, nonce, messageAad(hb)).decrypt(env.ciphertext);
    } catch {
      throw new MessageError("decrypt");
    }
    window.mark(h.counter);
    return body;
  } finally {
    key.fill(0);
  }
}
