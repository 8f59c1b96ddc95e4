/**
 * Sending one of a customer's messages (PROTOCOL §9.3), as `customer.ts` does it with the send
 * lock held and the conversation open: the epoch it goes in, the counter persisted before the
 * message is sealed (so no two tabs, nor a crash and a retry, use one counter twice), then the
 * message stored on the relay and handled in order like any item.
 *
 * **A recovered account's own epoch.** A recovered account never sends in an epoch the lost
 * device may have used (`customer-recovery.ts`): its first send opens the next epoch, which
 * becomes its fence. Another tab of this account, or another device, may have stored that epoch
 * first (the relay answers `stale_epoch`): the history is read, and the send goes in the epoch
 * read when it is the account's own (the tab that opened it noted it in the shared store) or
 * opens the next. Each loss costs one try; after `OWN_EPOCH_TRIES` the send is refused
 * (`no_epoch`) and nothing is sent.
 *
 * ```text
 *   newest epoch held ── may send in it? ── yes ────────────────────────── counter taken, sealed, sent
 *                             │ no: recovered, below its fence (or none yet)    ▲
 *                             └─ put_epoch (the next) ── stored: fence noted ───┘
 *                                      │ stale_epoch (each one a try, at most OWN_EPOCH_TRIES)
 *                                      └─ history read: its newest epoch, may send in it? …
 * ```
 *
 * **A store restored from an old copy** (SECURITY.md, "Counters"): its counters are behind what
 * this account sent since. The conversation is read on each session before its first counter
 * (`SendHost.caughtUp`): this account's messages read back raise the counters. When the history
 * does not show them, the relay refuses the counter `counter_reused`: it is burnt, and the
 * message goes in a new epoch (a new key), or in one another member opened meanwhile, once; a
 * second refusal is thrown. A send refused `stale_epoch` (the agent opened its epoch while the
 * message was on its way) goes in the newer epoch the same way, once. A send the relay leaves unanswered closes its session
 * (`sendEnvelope`), and is never sent again here.
 */
import { envelopeToCbor, sealMessage, type CborValue, type Envelope, type IdentityCard, type IdentityKeys, type Policy } from "@sealdesk/protocol";
import { sequencedFromCbor, type ByteQuota, type Response, type Sequenced } from "./frames.js";
import { CustomerError, OWN_EPOCH_LOST } from "./customer-model.js";
import { putOwnEpoch, type CustomerEpochs } from "./customer-epochs.js";
import { maySendIn, noteOwnEpoch } from "./customer-recovery.js";
import { takeCounter } from "./member.js";
import { RelayError, sendEnvelope, type Session } from "./session.js";
import { RECORDS, type Store } from "./store.js";

/** How many times a send opens this account's own next epoch before giving up (each lost to another tab). */
export const OWN_EPOCH_TRIES = 3;

/** The kinds of message a customer sends. */
export type SentKind = "text" | "attachment" | "read";

/** What sending needs of the customer. */
export interface SendHost {
  store: Store;
  keys: IdentityKeys;
  card: IdentityCard;
  random: (n: number) => Uint8Array;
  now: () => number;
  /** The epochs held (an epoch this send opens is taken in through `stored`). */
  epochs: CustomerEpochs;
  /** The org's latest policy, once checked. */
  policy(): Policy | null;
  /** Reads the conversation from its cursor; false when no conversation is followed. */
  sync(s: Session): Promise<boolean>;
  /**
   * Resolves once the conversation was read on `s` at least once (after a sync under way, if
   * any): this account's own messages read back have raised its counters (`raiseNumber`).
   */
  caughtUp(s: Session): Promise<void>;
  /** How long a send waits for the relay's answer (ms; `sendEnvelope`'s default when undefined). */
  sendTimeoutMs: number | undefined;
  /** An item this tab stored itself, handled in order (`Customer`'s `ingestOwn`). */
  stored(it: Sequenced, s: Session): Promise<void>;
  /** The relay's warning ahead of a stored-bytes quota this message brought near (§13.12). */
  warnBytes(quota: ByteQuota): void;
}

/**
 * Seals and sends one message of `kind` in `conversation` over `s` (see the module docs);
 * returns its sequence number once it is verified and kept. Call it with the send lock held.
 *
 * # Errors
 * `CustomerError` `no_epoch` when no epoch is held, or another device of this account opened
 * the next epoch first `OWN_EPOCH_TRIES` times (nothing sent); `bad_answer` for an answer other
 * than `stored`; the relay's refusal (`RelayError`: `counter_reused` or `stale_epoch` only
 * when the send in the newer epoch taken after a first such refusal is refused too); the session's errors (`sendEnvelope`: a send left
 * unanswered closes the session).
 */
export async function sendMessage(host: SendHost, s: Session, conversation: Uint8Array, kind: SentKind, body: Uint8Array): Promise<number> {
  // A store restored from an old copy holds counters behind what this account sent since: the
  // conversation read on this session first raises them past its own messages it reads back.
  await host.caughtUp(s);
  const epoch = await sendingEpoch(host, s, conversation);
  let sent = await sealAndSend(host, s, conversation, epoch, kind, body);
  if (sent.answer.kind === "error" && (sent.answer.code === "counter_reused" || sent.answer.code === "stale_epoch")) {
    // `counter_reused`: the relay holds this counter, or a later one, from this account although
    // this store did not know it (restored from an old copy, its messages since no longer in the
    // history it reads): the counter is burnt, and no counter of this epoch can be known safe.
    // `stale_epoch`: another member (the agent's first answer) opened a newer epoch while this
    // message was on its way. Either way the message goes in a newer epoch, with a new key,
    // once; a second refusal is the caller's error.
    sent = await sealAndSend(host, s, conversation, await epochAfterRefusal(host, s, conversation, epoch), kind, body);
  }
  const r = sent.answer;
  if (r.kind === "error") throw new RelayError(r.code, r.message);
  if (r.kind !== "stored") throw new CustomerError("bad_answer", r.kind);
  const raw: CborValue = { conversation, seq: r.seq, stored_at: sent.sentAt, item: { message: envelopeToCbor(sent.envelope) } };
  await host.stored(sequencedFromCbor(raw), s);
  // The relay's warning ahead of a stored-bytes quota this message brought near (§13.12):
  // the same event as an upload's.
  if (r.quota !== undefined) host.warnBytes(r.quota);
  return r.seq;
}

/** The epoch this account may send in now, a recovered account's own opened first (see the module docs). */
async function sendingEpoch(host: SendHost, s: Session, conversation: Uint8Array): Promise<number> {
  let epoch = host.epochs.newest();
  if (epoch === null) throw new CustomerError("no_epoch");
  // Recovered: never in an epoch the lost device may have used (`customer-recovery.ts`). Another
  // tab of this account may have opened that epoch first (`stale_epoch`): its record is read
  // from the history, and this tab sends in it (noted as this account's own, in the shared
  // store) or opens the next.
  for (let tries = 0; !(await maySendIn(host.store, epoch)); tries++) {
    const opened = await openOwnEpoch(host, s, conversation, epoch);
    if (opened !== null) return opened;
    if (tries + 1 >= OWN_EPOCH_TRIES || !(await host.sync(s))) throw new CustomerError("no_epoch", OWN_EPOCH_LOST);
    epoch = host.epochs.newest() ?? epoch;
  }
  return epoch;
}

/**
 * Takes the next counter of `epoch` (persisted before sealing: a crash, a refusal or a send left
 * unanswered burns it, never reuses it), seals and sends.
 */
async function sealAndSend(host: SendHost, s: Session, conversation: Uint8Array, epoch: number, kind: SentKind, body: Uint8Array): Promise<{ envelope: Envelope; sentAt: number; answer: Response }> {
  const e = host.epochs.get(epoch);
  if (e === undefined) throw new CustomerError("no_epoch");
  const counter = await takeCounter(host.store, `${RECORDS.counterPrefix}${epoch}`);
  const sentAt = host.now();
  const envelope = sealMessage(e.schedule, conversation, epoch, host.keys, counter, kind, sentAt, body);
  return { envelope, sentAt, answer: await sendEnvelope(s, envelope, host.sendTimeoutMs) };
}

/**
 * The epoch to send in after a send in `refused` was answered `counter_reused` or
 * `stale_epoch` (PROTOCOL §13.8): a newer one another member opened (read from the history),
 * else the next, opened here (§7.7: any member may; its secret escrowed to the org's master
 * under the latest policy, as every epoch record is). When another member stores that one
 * first, the send goes in theirs.
 */
async function epochAfterRefusal(host: SendHost, s: Session, conversation: Uint8Array, refused: number): Promise<number> {
  const newer = async (than: number): Promise<number | null> => {
    if (!(await host.sync(s))) return null;
    const n = host.epochs.newest();
    return n !== null && n > than && (await maySendIn(host.store, n)) ? n : null;
  };
  const theirs = await newer(refused);
  if (theirs !== null) return theirs;
  const newest = host.epochs.newest() ?? refused;
  const opened = await openOwnEpoch(host, s, conversation, newest);
  if (opened !== null) return opened;
  const stored = await newer(newest);
  if (stored === null) throw new CustomerError("no_epoch", `epoch ${newest + 1} was stored by another member and cannot be read`);
  return stored;
}

/**
 * Opens the epoch after `epoch`, with its members, as a recovered account's own (its fence);
 * null when another tab or device stored that epoch first (`stale_epoch`).
 */
async function openOwnEpoch(host: SendHost, s: Session, conversation: Uint8Array, epoch: number): Promise<number | null> {
  const e = host.epochs.get(epoch);
  const policy = host.policy();
  if (e === undefined || policy === null) throw new CustomerError("no_epoch");
  const it = await putOwnEpoch(s, host.keys, host.card, host, { policy, conversation, previous: e.record, members: e.record.members }, true);
  if (it === null) return null;
  await host.stored(it, s);
  await noteOwnEpoch(host.store, epoch + 1);
  return epoch + 1;
}
