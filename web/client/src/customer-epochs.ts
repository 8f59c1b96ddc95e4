/**
 * The epochs a customer holds (PROTOCOL §7.5), as `customer.ts` takes them in: each record
 * verified at all three levels (its signature and escrow under the policy version it names, its
 * link to the record before it), its members' keys checked against the keys the same names had in
 * the earlier epochs (a changed key blocks sending: `keyChanged`), then its secret opened with
 * this account's keys and kept as what opening a message and a typing signal needs — the
 * message schedule, the epoch's PRK (§9.7), the members' signing keys and a replay window per
 * sender (§9.4). The secret itself is wiped once its schedule and PRK are derived. Each epoch's
 * messages are counted as they are handled, for the limits of §7.7 (`due`). And the epochs the
 * customer makes itself (`putOwnEpoch`): epoch 0, a recovered account's own next, and the next
 * one when the current one is full or old (§7.7) — each record's hash kept in the store before
 * it is sent (`sealableHere`), so the store seals only in epochs another member made or it made
 * itself (§7.7 "Two devices of one account").
 */
import { EpochSecret, ReplayWindow, checkFollows, epochRecordHash, epochToCbor, equal, openEpoch, toHex, verifyEpoch, type EpochRecord, type IdentityCard, type IdentityKeys, type Policy } from "@sealdesk/protocol";
import { CustomerError } from "./customer-model.js";
import { makeEpochRecord } from "./epochs.js";
import { sequencedFromCbor, type Sequenced } from "./frames.js";
import { RelayError, type Session } from "./session.js";
import { epochPrk } from "./signal.js";
import type { Store } from "./store.js";

/**
 * The records this store made: `epoch-made/<record hash, hex>` → an empty value, written before
 * the record is sent (a record that lost its race stays listed: it was never stored, so nothing
 * is sealed in it).
 */
export const MADE_PREFIX = "epoch-made/";

/** An epoch as this customer holds it. */
export interface EpochState {
  record: EpochRecord;
  schedule: EpochSecret;
  /** The epoch's PRK, for the typing signals (§9.7). */
  prk: Uint8Array;
  members: Uint8Array[];
  windows: Map<string, ReplayWindow>;
  /**
   * The messages stored in it as handled here (every member's, every kind, verified or not: the
   * relay counted each), raised to "full" when the relay said so (`leave`).
   */
  messages: number;
}

/** Why the current epoch is left for the next (§7.7): it holds the policy's messages, or it is too old. */
export type RotateReason = "full" | "old";

/** What taking in an epoch needs of the customer. */
export interface EpochsHost {
  keys: IdentityKeys;
  /** The org's policy of `version`, verified (fetched when not known yet). */
  policy(version: number): Promise<Policy>;
  /** A member's key is not the one its name had before: blocks sending and throws. */
  keyChanged(detail: string): never;
}

/** The epochs of one customer's conversation, by number. */
export class CustomerEpochs {
  private readonly byNumber = new Map<number, EpochState>();
  /** Each member's signing key (hex) by name, as the epochs so far had it. */
  private readonly names = new Map<string, string>();

  constructor(private readonly host: EpochsHost) {}

  /** Epoch `n`, if held. */
  get(n: number): EpochState | undefined {
    return this.byNumber.get(n);
  }

  /** The newest epoch's number, or null before epoch 0. */
  newest(): number | null {
    return this.byNumber.size === 0 ? null : Math.max(...this.byNumber.keys());
  }

  /** The newest epoch, or undefined before epoch 0. */
  latest(): EpochState | undefined {
    const n = this.newest();
    return n === null ? undefined : this.byNumber.get(n);
  }

  /** A message of epoch `n` was handled (see `EpochState.messages`). */
  counted(n: number): void {
    const e = this.byNumber.get(n);
    if (e !== undefined) e.messages++;
  }

  /**
   * Epoch `n` takes no more of this account's messages: the relay answered `epoch_full` (its
   * count is ahead of this one's) or `counter_reused` (no counter of it is known safe).
   */
  leave(n: number): void {
    const e = this.byNumber.get(n);
    if (e !== undefined) e.messages = Number.MAX_SAFE_INTEGER;
  }

  /**
   * Whether epoch `n` is to be left for the next before sending (§7.7): "full" when it holds the
   * `rotate_after_messages` of the policy its record names, "old" when `now` is
   * `rotate_after_secs` past its `created_at`; null when it may take a message, or is not held.
   *
   * # Errors
   * The policy's (`EpochsHost.policy`: offline with a version not known here).
   */
  async due(n: number, now: number): Promise<RotateReason | null> {
    const e = this.byNumber.get(n);
    if (e === undefined) return null;
    const policy = await this.host.policy(e.record.policyVersion);
    if (e.messages >= policy.rotateAfterMessages) return "full";
    if (now - e.record.createdAt >= policy.rotateAfterSecs) return "old";
    return null;
  }

  /**
   * Takes in record `r` (see the module docs).
   *
   * # Errors
   * A `ProtocolError` when the record does not verify or follow; `CustomerError` `no_epoch`
   * when the epoch before it is missing; `key_changed` (from `keyChanged`).
   */
  async accept(r: EpochRecord): Promise<void> {
    const policy = await this.host.policy(r.policyVersion);
    verifyEpoch(r, policy);
    const previous = r.epoch === 0 ? null : (this.byNumber.get(r.epoch - 1)?.record ?? null);
    if (r.epoch > 0 && previous === null) throw new CustomerError("no_epoch", `epoch ${r.epoch - 1} missing`);
    checkFollows(r, previous);
    for (const m of r.members) {
      const known = this.names.get(m.name);
      const key = toHex(m.signingKey);
      if (known !== undefined && known !== key) this.host.keyChanged(`${m.name}'s key changed in epoch ${r.epoch}`);
      this.names.set(m.name, key);
    }
    const k = await openEpoch(r, this.host.keys, policy);
    try {
      this.byNumber.set(r.epoch, { record: r, schedule: new EpochSecret(k, r.conversation, r.epoch), prk: epochPrk(k, r.conversation, r.epoch), members: r.members.map((m) => m.signingKey), windows: new Map(), messages: 0 });
    } finally {
      k.fill(0);
    }
  }
}

/** An epoch the customer makes itself: epoch 0, a recovered account's next (its fence), or the next after a full or old one. */
export interface OwnEpochPlan {
  policy: Policy;
  conversation: Uint8Array;
  /** The record before it (null for epoch 0). */
  previous: EpochRecord | null;
  members: IdentityCard[];
}

/**
 * Makes the customer's own epoch record (§7.4, a fresh secret wiped once sealed), keeps its hash
 * in the store (`MADE_PREFIX`) and puts it on the relay; returns the item as stored, to be
 * handled in order. With `staleOk`, null when another tab or member put that epoch first
 * (`stale_epoch`: the history brings it).
 *
 * # Errors
 * The relay's refusal (`RelayError`), `CustomerError` `bad_answer` for another answer, the
 * store's and the session's errors.
 */
export async function putOwnEpoch(s: Session, keys: IdentityKeys, card: IdentityCard, opts: { store: Store; random: (n: number) => Uint8Array; now: () => number }, plan: OwnEpochPlan, staleOk: boolean): Promise<Sequenced | null> {
  const k = opts.random(32);
  const full = { ...plan, customer: card.signingKey, k, createdAt: opts.now() };
  const record = await makeEpochRecord(keys, opts.random, full).finally(() => k.fill(0));
  // Kept before it is sent: once the relay holds it, a tab of this store may seal in it.
  await opts.store.put(`${MADE_PREFIX}${toHex(epochRecordHash(record))}`, new Uint8Array(0));
  const r = await s.request({ kind: "put_epoch", record });
  if (r.kind === "error" && r.code === "stale_epoch" && staleOk) return null;
  if (r.kind === "error") throw new RelayError(r.code, r.message);
  if (r.kind !== "stored") throw new CustomerError("bad_answer", r.kind);
  return sequencedFromCbor({ conversation: plan.conversation, seq: r.seq, stored_at: opts.now(), item: { epoch: epochToCbor(record) } });
}

/**
 * Whether this store may seal in `record` as far as its maker goes (§7.7 "Two devices of one
 * account"): another member made it, or this store did (its hash kept by `putOwnEpoch`). A
 * record this account's key signed elsewhere — the device it was recovered from, or a copy of
 * the store — belongs to a store whose counters are not these.
 */
export async function sealableHere(store: Store, me: Uint8Array, record: EpochRecord): Promise<boolean> {
  if (!equal(record.creator, me)) return true;
  return (await store.get(`${MADE_PREFIX}${toHex(epochRecordHash(record))}`)) !== undefined;
}
