/**
 * The epochs a customer holds (PROTOCOL §7.5), as `customer.ts` takes them in: each record
 * verified at all three levels (its signature and escrow under the policy version it names, its
 * link to the record before it), its members' keys checked against the keys the same names had in
 * the earlier epochs (a changed key blocks sending: `keyChanged`), then its secret opened with
 * this account's keys and kept as what opening a message and a typing signal needs — the
 * message schedule, the epoch's PRK (§9.7), the members' signing keys and a replay window per
 * sender (§9.4). The secret itself is wiped once its schedule and PRK are derived. And the
 * epochs the customer makes itself (`putOwnEpoch`): epoch 0, and a recovered account's own next.
 */
import { EpochSecret, ReplayWindow, checkFollows, epochToCbor, openEpoch, toHex, verifyEpoch, type EpochRecord, type IdentityCard, type IdentityKeys, type Policy } from "@sealdesk/protocol";
import { CustomerError } from "./customer-model.js";
import { makeEpochRecord } from "./epochs.js";
import { sequencedFromCbor, type Sequenced } from "./frames.js";
import { RelayError, type Session } from "./session.js";
import { epochPrk } from "./signal.js";

/** An epoch as this customer holds it. */
export interface EpochState {
  record: EpochRecord;
  schedule: EpochSecret;
  /** The epoch's PRK, for the typing signals (§9.7). */
  prk: Uint8Array;
  members: Uint8Array[];
  windows: Map<string, ReplayWindow>;
}

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
      this.byNumber.set(r.epoch, { record: r, schedule: new EpochSecret(k, r.conversation, r.epoch), prk: epochPrk(k, r.conversation, r.epoch), members: r.members.map((m) => m.signingKey), windows: new Map() });
    } finally {
      k.fill(0);
    }
  }
}

/** An epoch the customer makes itself: epoch 0, or a recovered account's next (its fence). */
export interface OwnEpochPlan {
  policy: Policy;
  conversation: Uint8Array;
  /** The record before it (null for epoch 0). */
  previous: EpochRecord | null;
  members: IdentityCard[];
}

/**
 * Makes the customer's own epoch record (§7.4, a fresh secret wiped once sealed) and puts it on
 * the relay; returns the item as stored, to be handled in order. With `staleOk`, null when
 * another tab put that epoch first (`stale_epoch`: the history brings it).
 *
 * # Errors
 * The relay's refusal (`RelayError`), `CustomerError` `bad_answer` for another answer, the
 * session's errors.
 */
export async function putOwnEpoch(s: Session, keys: IdentityKeys, card: IdentityCard, opts: { random: (n: number) => Uint8Array; now: () => number }, plan: OwnEpochPlan, staleOk: boolean): Promise<Sequenced | null> {
  const k = opts.random(32);
  const full = { ...plan, customer: card.signingKey, k, createdAt: opts.now() };
  const record = await makeEpochRecord(keys, opts.random, full).finally(() => k.fill(0));
  const r = await s.request({ kind: "put_epoch", record });
  if (r.kind === "error" && r.code === "stale_epoch" && staleOk) return null;
  if (r.kind === "error") throw new RelayError(r.code, r.message);
  if (r.kind !== "stored") throw new CustomerError("bad_answer", r.kind);
  return sequencedFromCbor({ conversation: plan.conversation, seq: r.seq, stored_at: opts.now(), item: { epoch: epochToCbor(record) } });
}
