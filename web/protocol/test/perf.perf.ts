/**
 * Timings for BENCHMARKS.md's web rows, printed (not asserted beyond sanity): the same code under
 * Node (`npm run perf`) and inside Chromium (`npm run perf:browser`), so the two can be set side by
 * side with the Rust criterion figures of `protocol/benches/crypto.rs` measured in the same
 * session. A line `perf {json}` per environment; medians of a few rounds.
 */
import { describe, expect, it } from "vitest";
import { computeEscrow, epochSignedBytes, type EpochRecord } from "../src/epoch.js";
import { ReplayWindow, openMessage, sealMessage, type Envelope } from "../src/message.js";
import { policyHash } from "../src/policy.js";
import { seal } from "../src/seal.js";
import { EpochSecret, epochCommitment } from "../src/secret.js";
import { SEAL_EPOCH_SECRET } from "../src/labels.js";
import { cardOf, keysOf, vectorPolicy } from "./fixtures.js";

const random = (n: number): Uint8Array => crypto.getRandomValues(new Uint8Array(n));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

/** Microseconds per call of `f`, median of `rounds` rounds of `n` calls. */
async function per(n: number, rounds: number, f: () => unknown): Promise<number> {
  const out: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t = performance.now();
    for (let i = 0; i < n; i++) await f();
    out.push(((performance.now() - t) * 1000) / n);
  }
  return median(out);
}

describe("timings", () => {
  it("message 1 KiB, epoch creation with 2-of-3 escrow, a 1,000-message history", async () => {
    const carol = keysOf("carol");
    const members = [cardOf("carol"), cardOf("bob")];
    const policy = vectorPolicy();
    const conversation = new Uint8Array(16).fill(6);
    const k = random(32);
    const schedule = new EpochSecret(k, conversation, 0);
    const body = random(1024);
    let counter = 0;
    // Warm-up (JIT, noble's precomputed tables): not measured.
    for (let i = 0; i < 50; i++) openMessage(sealMessage(schedule, conversation, 0, carol, counter++, "text", 1, body), { conversation, epoch: 0, schedule, members: [carol.signingPublic], window: () => new ReplayWindow() });
    const sealUs = await per(20, 3, () => sealMessage(schedule, conversation, 0, carol, counter++, "text", 1, body));

    const envelopes: Envelope[] = [];
    for (let i = 0; i < 1000; i++) envelopes.push(sealMessage(schedule, conversation, 0, carol, i, "text", 1, body));
    const ctx = (w: ReplayWindow) => ({ conversation, epoch: 0, schedule, members: members.map((m) => m.signingKey), window: () => w });
    let j = 0;
    let window = new ReplayWindow();
    const openUs = await per(20, 3, () => {
      const env = envelopes[j++ % 1000];
      if (j % 1000 === 0) window = new ReplayWindow();
      return env === undefined ? null : openMessage(env, ctx(window));
    });

    const createUs = await per(1, 3, async () => {
      const key = random(32);
      const sealedSecrets = [];
      for (const m of members) sealedSecrets.push(await seal(random, m.agreementKey, { purpose: SEAL_EPOCH_SECRET, conversation, epoch: 0, recipient: m.signingKey, extra: new Uint8Array(0) }, key));
      const escrow = await computeEscrow(key, conversation, 0, members[0]?.signingKey ?? new Uint8Array(32), policy);
      const unsigned: Omit<EpochRecord, "signature"> = {
        version: 1,
        org: policy.org,
        conversation,
        epoch: 0,
        policyVersion: policy.version,
        policyHash: policyHash(policy),
        previous: null,
        createdAt: 1,
        creator: carol.signingPublic,
        members,
        sealedSecrets,
        escrow,
        commitment: epochCommitment(conversation, 0, key),
      };
      return carol.sign(epochSignedBytes(unsigned));
    });

    const t = performance.now();
    const w = new ReplayWindow();
    let opened = 0;
    for (const env of envelopes) {
      openMessage(env, ctx(w));
      opened++;
    }
    const historyMs = performance.now() - t;

    const env = typeof navigator !== "undefined" && navigator.userAgent.includes("Chrome") ? "chromium" : "node";
    console.log(`perf ${JSON.stringify({ env, seal1KiBUs: Math.round(sealUs), open1KiBUs: Math.round(openUs), epochCreateMs: +(createUs / 1000).toFixed(2), history1000Ms: Math.round(historyMs) })}`);
    expect(opened).toBe(1000);
  });
});
