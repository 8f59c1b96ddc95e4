/**
 * The chain rule for hand-offs (PROTOCOL §7.6 "Chains"): mirrors the tests of
 * `protocol/src/handoff_chain.rs` (the vectors carry a single hand-off, not a chain). The
 * records are taken as verified (levels 1 and 2 are `epoch.test.ts`'s); only their members,
 * epochs and commitments matter to the rule.
 */
import { describe, expect, it } from "vitest";
import { issueCard } from "../src/card.js";
import type { IdentityCard } from "../src/card.js";
import { EpochError, handoffSignedBytes, openHandoff } from "../src/epoch.js";
import type { EpochRecord, Handoff } from "../src/epoch.js";
import { Holders } from "../src/handoff_chain.js";
import { IdentityKeys } from "../src/keys.js";
import { SEAL_HANDOFF } from "../src/labels.js";
import { seal } from "../src/seal.js";
import { epochCommitment } from "../src/secret.js";

const random = (n: number): Uint8Array => crypto.getRandomValues(new Uint8Array(n));

interface Party {
  keys: IdentityKeys;
  card: IdentityCard;
}

function party(name: string, role: "customer" | "agent"): Party {
  const keys = IdentityKeys.generate(random);
  return { keys, card: issueCard(keys, name, role, 100) };
}

/**
 * carol's conversation held by bob (epoch 0), transferred by bob to dave (epoch 1), and by dave
 * to erin (epoch 2), as in the Rust tests; the secrets by epoch.
 */
function chain() {
  const [carol, bob, dave, erin] = [party("carol", "customer"), party("bob", "agent"), party("dave", "agent"), party("erin", "agent")];
  const conversation = random(16);
  const keys = [random(32), random(32), random(32)];
  const record = (epoch: number, creator: Party, agent: Party): EpochRecord =>
    ({ conversation, epoch, creator: creator.keys.signingPublic, members: [carol.card, agent.card], commitment: epochCommitment(conversation, epoch, keys[epoch] ?? new Uint8Array(32)) }) as EpochRecord;
  const records = [record(0, carol, bob), record(1, bob, dave), record(2, dave, erin)];
  const byEpoch = new Map(records.map((r) => [r.epoch, r]));
  return { carol, bob, dave, erin, conversation, keys, records, byEpoch };
}
type Chain = ReturnType<typeof chain>;

/** A hand-off of `epochs` signed by `by` to `to`. */
async function hand(c: Chain, by: Party, to: Party, epochs: number[]): Promise<Handoff> {
  const sealed: Handoff["epochs"] = [];
  for (const e of epochs) {
    sealed.push([e, await seal(random, to.card.agreementKey, { purpose: SEAL_HANDOFF, conversation: c.conversation, epoch: e, recipient: to.card.signingKey, extra: new Uint8Array(0) }, c.keys[e] ?? new Uint8Array(32))]);
  }
  const unsigned = { conversation: c.conversation, from: by.keys.signingPublic, to: to.card.signingKey, epochs: sealed, createdAt: 300 };
  return { ...unsigned, signature: by.keys.sign(handoffSignedBytes(unsigned)) };
}

describe("hand-off chains", () => {
  it("a second hop opens through the chain, and not without it", async () => {
    const c = chain();
    const first = await hand(c, c.bob, c.dave, [0]);
    const second = await hand(c, c.dave, c.erin, [0, 1]);
    const held = Holders.follow(c.records, [first]);
    expect(held.holds(0, c.dave.keys.signingPublic)).toBe(true);
    const got = await openHandoff(second, c.erin.keys, c.byEpoch, held);
    expect([...got.keys()]).toEqual([0, 1]);
    expect(got.get(0)).toEqual(c.keys[0]);
    await expect(openHandoff(second, c.erin.keys, c.byEpoch, new Holders())).rejects.toThrowError(/not_a_member/);
    await expect(openHandoff(second, c.erin.keys, c.byEpoch)).rejects.toBeInstanceOf(EpochError);
    // Followed further, the second link makes erin a holder of epoch 0 too (by dave's holding).
    expect(Holders.follow(c.records, [first, second]).holds(0, c.erin.keys.signingPublic)).toBe(true);
    expect(Holders.follow(c.records, [second]).holds(0, c.erin.keys.signingPublic)).toBe(false);
  });

  it("a record by an agent with no chain: a hand-off by an agent that holds nothing does not open", async () => {
    const c = chain();
    // dave was never a member of epoch 0 and was handed nothing: his hand-off of it is refused.
    const second = await hand(c, c.dave, c.erin, [0]);
    await expect(openHandoff(second, c.erin.keys, c.byEpoch, Holders.follow(c.records, []))).rejects.toThrowError(/not_a_member/);
  });

  it("a link signed by an agent who never held the epoch counts for nothing", async () => {
    const c = chain();
    // erin (member of epoch 2 only) "hands" epoch 0 to dave, then dave to erin.
    const forged = await hand(c, c.erin, c.dave, [0]);
    const held = Holders.follow(c.records, [forged]);
    expect(held.holds(0, c.dave.keys.signingPublic)).toBe(false);
    const second = await hand(c, c.dave, c.erin, [0]);
    await expect(openHandoff(second, c.erin.keys, c.byEpoch, held)).rejects.toThrowError(/not_a_member/);
  });

  it("a chain that does not lead back to a member of epoch 0 counts for nothing", async () => {
    const c = chain();
    // dave "holds" epoch 0 only by a hand-off from erin, who held it only by one from dave.
    const loopA = await hand(c, c.dave, c.erin, [0]);
    const loopB = await hand(c, c.erin, c.dave, [0]);
    expect(Holders.follow(c.records, [loopA, loopB, loopA]).size).toBe(0);
  });

  it("a link to a key no certified record names counts for nothing, nor a tampered one", async () => {
    const c = chain();
    const mallory = party("mallory", "agent");
    const toStranger = await hand(c, c.bob, mallory, [0]);
    expect(Holders.follow(c.records, [toStranger]).holds(0, mallory.keys.signingPublic)).toBe(false);
    // A member of only an earlier epoch does not join later: bob (epoch 0) handed epoch 1 by dave.
    const back = await hand(c, c.dave, c.bob, [1]);
    expect(Holders.follow(c.records, [back]).holds(1, c.bob.keys.signingPublic)).toBe(false);
    // A broken signature makes no holder.
    const bad = await hand(c, c.bob, c.dave, [0]);
    expect(Holders.follow(c.records, [{ ...bad, createdAt: bad.createdAt + 1 }]).size).toBe(0);
    // And the honest link does (the control).
    expect(Holders.follow(c.records, [bad]).holds(0, c.dave.keys.signingPublic)).toBe(true);
  });
});
