/**
 * Sending one of a customer's messages (PROTOCOL §9.3), as `customer.ts` does it with the send
 * lock held and the conversation open: the epoch it goes in, the counter persisted before the
 * message is sealed (so no two tabs, nor a crash and a retry, use one counter twice), then the
 * message stored on the relay and handled in order like any item.
 *
 * **The epoch it goes in** is the newest held, unless this account must open the next one
 * first (`mustLeave`; §7.7 "Who rotates", as the Rust client's `sending_epoch` and the console
 * agent's do):
 * - *recovered*: a recovered account never sends in an epoch the lost device may have used
 *   (`customer-recovery.ts`): its first send opens the next epoch, which becomes its fence;
 * - *made elsewhere*: this account's key signed the epoch but this store did not keep its hash
 *   (§7.7 "Two devices of one account": the device recovered from, a copy of the store): its
 *   counters are another store's;
 * - *full* or *old*: it holds the `rotate_after_messages` of its record's policy (every member's
 *   messages counted as handled, `CustomerEpochs.counted`) or is `rotate_after_secs` old by the
 *   customer's clock (`SendHost.now`).
 *
 * The next epoch has the same members, `previous` the current record's hash, the org's latest
 * policy (`putOwnEpoch`, its hash kept before it is sent). Another tab, another device, or
 * another member (the agent rotating at the same time) may have stored that number first (the
 * relay answers `stale_epoch`): the history is read, and the same rule is asked of its newest
 * epoch — the winner's record, which the send goes in when it may (another member's, or this
 * store's), or the next is opened. Each loss costs one try; after `OWN_EPOCH_TRIES` the send is
 * refused (`no_epoch`) and nothing is sent.
 *
 * ```text
 *   newest epoch held ── must leave it? ── no ─────────────────── counter taken, sealed, sent
 *         ▲                  │ yes: recovered, made elsewhere,          ▲                  │
 *         │                  │      full, old                           │                  │
 *         │                  └─ put_epoch (the next) ── stored ─────────┘                  │
 *         │                             │ stale_epoch (a try; at most OWN_EPOCH_TRIES)     │
 *         ├──── history read ───────────┘                                                  │
 *         └──── history read, once ── answered epoch_full / counter_reused (epoch left), ──┘
 *                                     or stale_epoch
 * ```
 *
 * **Refused sends.** `epoch_full`: the relay counted more than this account had handled (other
 * members' messages not read yet): the epoch is left (`CustomerEpochs.leave`), the history read,
 * and the message goes in the next epoch (another member's, read, or this account's own), once.
 * `stale_epoch`: another member opened a newer epoch while the message was on its way: the same,
 * in that epoch. **A store restored from an old copy** (SECURITY.md, "Counters"): its counters
 * are behind what this account sent since. The conversation is read on each session before its
 * first counter (`SendHost.caughtUp`): this account's messages read back raise the counters.
 * When the history does not show them, the relay refuses the counter `counter_reused`: it is
 * burnt, the epoch left as for `epoch_full`, once. A second refusal is thrown. A send the relay
 * leaves unanswered closes its session (`sendEnvelope`), and is never sent again here.
 */
import { envelopeToCbor, sealMessage, type CborValue, type Envelope, type IdentityCard, type IdentityKeys, type Policy } from "@sealdesk/protocol";
import { sequencedFromCbor, type ByteQuota, type Response, type Sequenced } from "./frames.js";
import { CustomerError, EPOCH_KEPT_MOVING, OWN_EPOCH_LOST } from "./customer-model.js";
import { putOwnEpoch, sealableHere, type CustomerEpochs } from "./customer-epochs.js";
import { maySendIn, noteOwnEpoch } from "./customer-recovery.js";
import { takeCounter } from "./member.js";
import { RelayError, sendEnvelope, type Session } from "./session.js";
import { RECORDS, type Store } from "./store.js";

/** How many times a send opens the next epoch before giving up (each lost to another tab, device or member). */
export const OWN_EPOCH_TRIES = 3;

/** Why this account opens the next epoch before sending (see the module docs). */
type LeaveReason = "recovered" | "made_elsewhere" | "full" | "old";

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
 * `CustomerError` `no_epoch` when no epoch is held, or the next epoch this account had to open
 * was stored first by another tab, device or member `OWN_EPOCH_TRIES` times, each one this
 * account could not send in (detail `OWN_EPOCH_LOST` when it left for its fence or an epoch made
 * elsewhere, else `EPOCH_KEPT_MOVING`; nothing sent); `bad_answer` for an answer other than
 * `stored`; the relay's refusal (`RelayError`: `epoch_full`, `counter_reused` or `stale_epoch`
 * only when the send in the epoch taken after a first such refusal is refused too); the
 * session's errors (`sendEnvelope`: a send left unanswered closes the session).
 */
export async function sendMessage(host: SendHost, s: Session, conversation: Uint8Array, kind: SentKind, body: Uint8Array): Promise<number> {
  // A store restored from an old copy holds counters behind what this account sent since: the
  // conversation read on this session first raises them past its own messages it reads back.
  await host.caughtUp(s);
  const epoch = await sendingEpoch(host, s, conversation);
  let sent = await sealAndSend(host, s, conversation, epoch, kind, body);
  if (sent.answer.kind === "error" && (sent.answer.code === "epoch_full" || sent.answer.code === "counter_reused" || sent.answer.code === "stale_epoch")) {
    // `epoch_full`: the relay counted the epoch full though this account had not handled all
    // its messages yet (another member's, still on their way here). `counter_reused`: the relay
    // holds this counter, or a later one, from this account although this store did not know it
    // (restored from an old copy, its messages since no longer in the history it reads): the
    // counter is burnt, and no counter of this epoch can be known safe. Either way the epoch
    // is left. `stale_epoch`: another member opened a newer epoch while this message was on its
    // way. The history read, the message goes in the epoch current then, or the next opened
    // here (§7.7: any member may), with a new key, once; a second refusal is the caller's error.
    if (sent.answer.code !== "stale_epoch") host.epochs.leave(epoch);
    await host.sync(s);
    sent = await sealAndSend(host, s, conversation, await sendingEpoch(host, s, conversation), kind, body);
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

/** The epoch this account may send in now, the next one opened first when it must leave the newest (see the module docs). */
async function sendingEpoch(host: SendHost, s: Session, conversation: Uint8Array): Promise<number> {
  for (let tries = 0; ; tries++) {
    const epoch = host.epochs.newest();
    if (epoch === null) throw new CustomerError("no_epoch");
    const why = await mustLeave(host, epoch);
    if (why === null) return epoch;
    const opened = await openNextEpoch(host, s, conversation, epoch);
    if (opened !== null) return opened;
    // Another tab, device or member stored that number first: its record is read from the
    // history, and asked the same.
    if (tries + 1 >= OWN_EPOCH_TRIES || !(await host.sync(s))) throw new CustomerError("no_epoch", why === "recovered" || why === "made_elsewhere" ? OWN_EPOCH_LOST : EPOCH_KEPT_MOVING);
  }
}

/** Why this account must open the epoch after `epoch` before sending, or null when it may send in it. */
async function mustLeave(host: SendHost, epoch: number): Promise<LeaveReason | null> {
  const e = host.epochs.get(epoch);
  if (e === undefined) throw new CustomerError("no_epoch");
  if (!(await maySendIn(host.store, epoch))) return "recovered";
  if (!(await sealableHere(host.store, host.card.signingKey, e.record))) return "made_elsewhere";
  return await host.epochs.due(epoch, host.now());
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
 * Opens the epoch after `epoch`, with its members, under the org's latest policy (a recovered
 * account's first is its fence); null when another tab, device or member stored that epoch
 * first (`stale_epoch`).
 */
async function openNextEpoch(host: SendHost, s: Session, conversation: Uint8Array, epoch: number): Promise<number | null> {
  const e = host.epochs.get(epoch);
  const policy = host.policy();
  if (e === undefined || policy === null) throw new CustomerError("no_epoch");
  const it = await putOwnEpoch(s, host.keys, host.card, host, { policy, conversation, previous: e.record, members: e.record.members }, true);
  if (it === null) return null;
  await host.stored(it, s);
  await noteOwnEpoch(host.store, epoch + 1);
  return epoch + 1;
}
