/**
 * The console's notice checks (`src/agent-notices.ts`) without a relay: a log built here, heads
 * signed by a relay key made here, the session's answers made here. A release by a trustee of
 * the policy under the customer's consent, proven, consistent and cosigned, is verified and said
 * of the customer; the same entry is not verified when its head is signed by another relay key,
 * when no trustee has cosigned a head holding it, when the head forks the one this console kept,
 * or when its signer is not a trustee; an erasure "at the customer's request" is verified only
 * if the conversation's customer signed it. And `NoticeScan` finds readable entries at their
 * index among withheld ones.
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  IdentityKeys,
  consistencyPath,
  cosignatureSignedBytes,
  entryLeafHash,
  entrySignedBytes,
  inclusionPath,
  root,
  treeHeadSignedBytes,
  type AuditEntry,
  type CborValue,
  type IdentityCard,
  type Policy,
} from "@sealdesk/protocol";
import { NoticeScan, checkAgentNotice, type AgentNoticeContext } from "../src/agent-notices.js";
import { MemoryStore, type Request, type Response, type Session } from "../src/index.js";

const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n));
const NOW = 2_000_000_000;

const relay = IdentityKeys.generate(random);
const customer = IdentityKeys.generate(random);
const master = IdentityKeys.generate(random);
const t1 = IdentityKeys.generate(random);
const conversation = random(16);
const consent = random(16);
const policy = { org: "acme", master: { signingKey: master.signingPublic }, trustees: [{ name: "t1", signingKey: t1.signingPublic }], trusteeThreshold: 1 } as unknown as Policy;
const erin = { name: "erin", signingKey: customer.signingPublic, role: "customer" } as unknown as IdentityCard;

/** An entry and its CBOR as the relay sends it. */
function release(signer: IdentityKeys): { entry: AuditEntry; raw: CborValue } {
  const event = { release: { org: "acme", requestHash: random(32), conversation, epochs: { first: 0, last: 1 }, basis: { consent: { id: consent, scope: "full" as const, issuedAt: NOW - 60 } }, master: master.signingPublic } };
  const unsigned = { event, at: NOW - 10, signer: signer.signingPublic };
  const signature = signer.sign(entrySignedBytes(unsigned));
  const r = event.release;
  const raw = {
    event: { release: { org: r.org, request_hash: r.requestHash, conversation, epochs: { first: 0, last: 1 }, basis: { consent: { id: consent, scope: "full", issued_at: NOW - 60 } }, master: r.master } },
    at: unsigned.at,
    signer: unsigned.signer,
    signature,
  };
  return { entry: { ...unsigned, signature }, raw };
}
function erasure(signer: IdentityKeys): { entry: AuditEntry; raw: CborValue } {
  const unsigned = { event: { erasure: { conversation, reason: "customer request" as const } }, at: NOW - 10, signer: signer.signingPublic };
  const signature = signer.sign(entrySignedBytes(unsigned));
  return { entry: { ...unsigned, signature }, raw: { event: { erasure: { conversation, reason: "customer request" } }, at: unsigned.at, signer: unsigned.signer, signature } };
}

function headCbor(size: number, leaves: Uint8Array[], key = relay): CborValue {
  const unsigned = { size, root: root(leaves.slice(0, size)), timestamp: NOW, logKey: key.signingPublic };
  return { size, root: unsigned.root, timestamp: NOW, log_key: unsigned.logKey, signature: key.sign(treeHeadSignedBytes(unsigned)) };
}
function cosignCbor(k: IdentityKeys, size: number, leaves: Uint8Array[]): CborValue {
  const unsigned = { witness: k.signingPublic, logKey: relay.signingPublic, size, root: root(leaves.slice(0, size)), timestamp: NOW };
  return { witness: unsigned.witness, log_key: unsigned.logKey, size, root: unsigned.root, timestamp: NOW, signature: k.sign(cosignatureSignedBytes(unsigned)) };
}

/** A session answering from a log of `leaves`, heads signed by `headKey`, cosigned by `cosigners`. */
function session(leaves: Uint8Array[], opts: { headKey?: IdentityKeys; cosigners?: IdentityKeys[] } = {}): Session {
  const call = (r: Request): Promise<Response> => {
    if (r.kind === "get_tree_head") return Promise.resolve({ kind: "tree_head", head: headCbor(leaves.length, leaves, opts.headKey) });
    if (r.kind === "get_inclusion") return Promise.resolve({ kind: "inclusion", index: r.index, size: r.size, path: inclusionPath(r.index, leaves.slice(0, r.size)) });
    if (r.kind === "get_consistency") return Promise.resolve({ kind: "consistency", old: r.old, new: r.new, path: consistencyPath(r.old, leaves.slice(0, r.new)) });
    if (r.kind === "get_witnessed_head") return Promise.resolve({ kind: "witnessed_head", head: headCbor(leaves.length, leaves, opts.headKey), cosignatures: (opts.cosigners ?? [t1]).map((k) => cosignCbor(k, leaves.length, leaves)) });
    return Promise.reject(new Error(`unexpected ${r.kind}`));
  };
  return { call } as unknown as Session;
}

function ctx(store = new MemoryStore(), customerCard: IdentityCard | null = erin): AgentNoticeContext {
  return { org: "acme", conversation, customer: customerCard, policy, relayKey: relay.signingPublic, seen: new Set(), store, now: () => NOW };
}

describe("the console's release notices", () => {
  it("verifies a trustee's release under the customer's consent and says it of the customer", async () => {
    const { entry, raw } = release(t1);
    const leaves = [entryLeafHash(erasure(customer).entry), entryLeafHash(entry)];
    const n = await checkAgentNotice(session(leaves), 1, raw, ctx());
    expect(n.verified).toBe(true);
    expect(n.by).toBe("trustee t1");
    expect(n.provenIn).toBe(2);
    expect(n.text).toContain("under the customer's consent");
    expect(n.text).not.toContain("your");
  });

  it("does not verify it under another relay key, without the trustees' cosignature, on a forked log, or from a non-trustee", async () => {
    const { entry, raw } = release(t1);
    const leaves = [entryLeafHash(erasure(customer).entry), entryLeafHash(entry)];
    const other = IdentityKeys.generate(random);
    expect((await checkAgentNotice(session(leaves, { headKey: other }), 1, raw, ctx())).verified).toBe(false);
    const unwitnessed = await checkAgentNotice(session(leaves, { cosigners: [] }), 1, raw, ctx());
    expect(unwitnessed.verified).toBe(false);
    expect(unwitnessed.text).toContain("NOT YET WITNESSED");
    // The console kept a head of size 2 with another root: the log served now forks it.
    const store = new MemoryStore();
    const kept = ctx(store);
    const forkedLeaves = [entryLeafHash(release(t1).entry), entryLeafHash(entry)];
    expect((await checkAgentNotice(session(forkedLeaves), 1, raw, kept)).verified).toBe(true);
    const forked = await checkAgentNotice(session(leaves), 1, raw, { ...kept, seen: new Set() });
    expect(forked.verified).toBe(false);
    expect(forked.text).toContain("does not extend");
    const stranger = release(other);
    const n = await checkAgentNotice(session([entryLeafHash(stranger.entry)]), 0, stranger.raw, ctx());
    expect(n.verified).toBe(false);
    expect(n.text).toContain("NOT GENUINE");
  });

  it("verifies an erasure at the customer's request only when the conversation's customer signed it", async () => {
    const { entry, raw } = erasure(customer);
    const leaves = [entryLeafHash(entry)];
    const n = await checkAgentNotice(session(leaves), 0, raw, ctx());
    expect(n.verified).toBe(true);
    expect(n.by).toBe("the customer erin");
    const someone = { ...erin, signingKey: IdentityKeys.generate(random).signingPublic } as IdentityCard;
    expect((await checkAgentNotice(session(leaves), 0, raw, ctx(new MemoryStore(), someone))).verified).toBe(false);
    expect((await checkAgentNotice(session(leaves), 0, raw, ctx(new MemoryStore(), null))).verified).toBe(false);
  });

  it("finds the readable entries at their index among withheld ones, page after page", async () => {
    const a = erasure(customer);
    const b = release(t1);
    const answers: Response[] = [
      { kind: "entries", from: 0, entries: [a.raw, b.raw], withheld: [0, 2] },
      { kind: "entries", from: 4, entries: [], withheld: [] },
    ];
    const s = { call: (r: Request) => (r.kind === "get_entries" ? Promise.resolve(answers.shift() ?? answers[0]) : Promise.reject(new Error(r.kind))) } as unknown as Session;
    const scan = new NoticeScan();
    const found: number[] = [];
    await scan.scan(s, (i) => Promise.resolve(void found.push(i)));
    expect(found).toEqual([1, 3]);
    expect(scan.next).toBe(4);
  });
});
