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
 */
import { envelopeToCbor, sealMessage, type CborValue, type IdentityCard, type IdentityKeys, type Policy } from "@sealdesk/protocol";
import { sequencedFromCbor, type ByteQuota, type Sequenced } from "./frames.js";
import { CustomerError, OWN_EPOCH_LOST } from "./customer-model.js";
import { putOwnEpoch, type CustomerEpochs } from "./customer-epochs.js";
import { maySendIn, noteOwnEpoch } from "./customer-recovery.js";
import { takeCounter } from "./member.js";
import type { Session } from "./session.js";
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
 * than `stored`; the relay's refusal (`RelayError`) and the session's errors.
 */
export async function sendMessage(host: SendHost, s: Session, conversation: Uint8Array, kind: SentKind, body: Uint8Array): Promise<number> {
  let epoch = host.epochs.newest();
  if (epoch === null) throw new CustomerError("no_epoch");
  // Recovered: never in an epoch the lost device may have used (`customer-recovery.ts`). Another
  // tab of this account may have opened that epoch first (`stale_epoch`): its record is read
  // from the history, and this tab sends in it (noted as this account's own, in the shared
  // store) or opens the next.
  for (let tries = 0; !(await maySendIn(host.store, epoch)); tries++) {
    const opened = await openOwnEpoch(host, s, conversation, epoch);
    if (opened !== null) {
      epoch = opened;
      break;
    }
    if (tries + 1 >= OWN_EPOCH_TRIES || !(await host.sync(s))) throw new CustomerError("no_epoch", OWN_EPOCH_LOST);
    epoch = host.epochs.newest() ?? epoch;
  }
  const e = host.epochs.get(epoch);
  if (e === undefined) throw new CustomerError("no_epoch");
  const counter = await takeCounter(host.store, `${RECORDS.counterPrefix}${epoch}`);
  const sentAt = host.now();
  const envelope = sealMessage(e.schedule, conversation, epoch, host.keys, counter, kind, sentAt, body);
  const r = await s.call({ kind: "send", envelope });
  if (r.kind !== "stored") throw new CustomerError("bad_answer", r.kind);
  const raw: CborValue = { conversation, seq: r.seq, stored_at: sentAt, item: { message: envelopeToCbor(envelope) } };
  await host.stored(sequencedFromCbor(raw), s);
  // The relay's warning ahead of a stored-bytes quota this message brought near (§13.12):
  // the same event as an upload's.
  if (r.quota !== undefined) host.warnBytes(r.quota);
  return r.seq;
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
