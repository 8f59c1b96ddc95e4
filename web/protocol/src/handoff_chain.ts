/**
 * Hand-offs along a conversation transferred more than once (PROTOCOL §7.6, "Chains"). Mirrors
 * `protocol/src/handoff_chain.rs`.
 *
 * An agent holds an epoch's secret if it was a member of that epoch, or if a hand-off of that
 * epoch reached it from an agent that held it then. `Holders.follow` walks a conversation's
 * hand-offs in sequence order and keeps who holds what by hand-off, so that a later hand-off by
 * such a holder (`openHandoff` with the holders) opens for its recipient: the chain leads back,
 * hand-off by hand-off, to a member of the epoch, and that epoch's record to the customer's
 * epoch 0 (§7.5 level 2, checked by the reader).
 */
import { equal, toHex } from "./bytes.js";
import type { EpochRecord, Handoff } from "./epoch.js";
import { handoffSignedBytes } from "./epoch.js";
import { verifySignature } from "./keys.js";

/** Who holds which epoch's secret by a hand-off (not by membership). */
export class Holders {
  private readonly held = new Set<string>();

  private static key(epoch: number, signingKey: Uint8Array): string {
    return `${epoch}/${toHex(signingKey)}`;
  }

  /** Whether `signingKey` holds `epoch` by a hand-off this set followed. */
  holds(epoch: number, signingKey: Uint8Array): boolean {
    return this.held.has(Holders.key(epoch, signingKey));
  }

  /** How many (epoch, key) pairs are held. */
  get size(): number {
    return this.held.size;
  }

  /**
   * Follows `handoffs` (a conversation's, in sequence order) over its verified epoch `records`.
   * A hand-off counts for an epoch `e` only if its signature verifies, it is of this
   * conversation, its `from` was a member of `e` or already holds `e` by an earlier hand-off,
   * and its `to` is a member of a record later than `e` (the epoch it was transferred into: its
   * certificate was checked with that record). Any other hand-off, or epoch of one, is ignored:
   * it makes no one a holder.
   */
  static follow(records: Iterable<EpochRecord>, handoffs: Iterable<Handoff>): Holders {
    const rs = [...records];
    const out = new Holders();
    for (const h of handoffs) {
      try {
        verifySignature(h.from, handoffSignedBytes(h), h.signature, "hand-off");
      } catch {
        continue;
      }
      for (const [e] of h.epochs) {
        const rec = rs.find((r) => r.epoch === e && equal(r.conversation, h.conversation));
        if (rec === undefined) continue;
        const fromHeld = rec.members.some((m) => equal(m.signingKey, h.from)) || out.holds(e, h.from);
        const toJoinedLater = rs.some((r) => r.epoch > e && equal(r.conversation, h.conversation) && r.members.some((m) => equal(m.signingKey, h.to)));
        if (fromHeld && toJoinedLater) out.held.add(Holders.key(e, h.to));
      }
    }
    return out;
  }
}
