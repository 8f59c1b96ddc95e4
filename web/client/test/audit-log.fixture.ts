/**
 * Test support: an audit log made here for the console's notice tests — its relay, customer,
 * master and trustee keys, a release and an erasure signed by whom a test says, tree heads and
 * cosignatures signed here, and a `Session` that answers from a list of leaves (and, when given,
 * their entries' CBOR).
 */
import { randomBytes } from "node:crypto";
import {
  IdentityKeys,
  consistencyPath,
  entryLeafHash,
  toHex,
  cosignatureSignedBytes,
  entrySignedBytes,
  inclusionPath,
  root,
  treeHeadSignedBytes,
  type AuditEntry,
  type CborValue,
  type IdentityCard,
  type Policy,
} from "@sealdesk/protocol";
import { noticeConversation } from "../src/agent-notices.js";
import type { FoundEntry, LogLookContext, NoticeContext, Request, Response, Session } from "../src/index.js";

export const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n));
export const NOW = 2_000_000_000;

export const relay = IdentityKeys.generate(random);
export const customer = IdentityKeys.generate(random);
export const master = IdentityKeys.generate(random);
export const t1 = IdentityKeys.generate(random);
export const conversation = random(16);
export const consent = random(16);
export const policy = { org: "acme", master: { signingKey: master.signingPublic }, trustees: [{ name: "t1", signingKey: t1.signingPublic }], trusteeThreshold: 1 } as unknown as Policy;
export const erin = { name: "erin", signingKey: customer.signingPublic, role: "customer" } as unknown as IdentityCard;

/** An entry and its CBOR as the relay sends it. */
export function release(signer: IdentityKeys): { entry: AuditEntry; raw: CborValue } {
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
/** An erasure of `conv` for `reason` (by default the customer's request), signed by `signer`, and its CBOR. */
export function erasure(signer: IdentityKeys, conv: Uint8Array = conversation, reason: "customer request" | "retention" = "customer request"): { entry: AuditEntry; raw: CborValue } {
  const unsigned = { event: { erasure: { conversation: conv, reason } }, at: NOW - 10, signer: signer.signingPublic };
  const signature = signer.sign(entrySignedBytes(unsigned));
  return { entry: { ...unsigned, signature }, raw: { event: { erasure: { conversation: conv, reason } }, at: unsigned.at, signer: unsigned.signer, signature } };
}

/**
 * What `checkNotice` needs to judge a notice for `customer` in `conversation`: no policy, no
 * consent, nothing of the log served — a notice that passes the checks before the log's fails
 * at `inclusion` (the unit tests of who may sign what).
 */
export function unservedNotice(): NoticeContext {
  return {
    org: "acme",
    conversation,
    me: customer.signingPublic,
    relayKey: relay.signingPublic,
    policy: null,
    seen: new Set<string>(),
    treeHead: () => Promise.reject(new Error("not served")),
    inclusion: () => Promise.reject(new Error("not served")),
  };
}

/** Another conversation than `conversation`: its entries are withheld from `conversation`'s readers. */
const otherConversation = random(16);

/**
 * A log of `n` entries: a release about `conversation` at each even index, another
 * conversation's erasure (withheld) at each odd one — the leaves, and the CBOR of the entries a
 * reader of `conversation` is served (`null` where withheld).
 */
export function mixedLog(n: number): { leaves: Uint8Array[]; entries: (CborValue | null)[] } {
  const leaves: Uint8Array[] = [];
  const entries: (CborValue | null)[] = [];
  for (let i = 0; i < n; i++) {
    const e = i % 2 === 0 ? release(t1) : erasure(customer, otherConversation);
    leaves.push(entryLeafHash(e.entry));
    entries.push(i % 2 === 0 ? e.raw : null);
  }
  return { leaves, entries };
}

/** An agent's look at the log (`AuditLogReader.look`) knowing `conversations` (hex), each entry found pushed to `found`. */
export function lookFor(conversations: string[], found: FoundEntry[]): LogLookContext {
  return {
    relayKey: relay.signingPublic,
    conversations: () => conversations,
    conversationOf: (entry) => {
      const c = noticeConversation(entry);
      return c === null ? null : toHex(c);
    },
    found: (f) => Promise.resolve(void found.push(f)),
  };
}

export function revocation(signer: IdentityKeys, consentId: Uint8Array, conv: Uint8Array = conversation): { entry: AuditEntry; raw: CborValue } {
  const event = { consent_revocation: { conversation: conv, consent: consentId } };
  const unsigned = { event, at: NOW - 10, signer: signer.signingPublic };
  const signature = signer.sign(entrySignedBytes(unsigned));
  return { entry: { ...unsigned, signature }, raw: { event, at: unsigned.at, signer: unsigned.signer, signature } };
}

/** A tree head over the first `size` leaves, signed by `key`, naming `logKey` (by default `key`'s). */
export function headCbor(size: number, leaves: Uint8Array[], key = relay, logKey = key.signingPublic): CborValue {
  const unsigned = { size, root: root(leaves.slice(0, size)), timestamp: NOW, logKey };
  return { size, root: unsigned.root, timestamp: NOW, log_key: unsigned.logKey, signature: key.sign(treeHeadSignedBytes(unsigned)) };
}
export function cosignCbor(k: IdentityKeys, size: number, leaves: Uint8Array[]): CborValue {
  const unsigned = { witness: k.signingPublic, logKey: relay.signingPublic, size, root: root(leaves.slice(0, size)), timestamp: NOW };
  return { witness: unsigned.witness, log_key: unsigned.logKey, size, root: unsigned.root, timestamp: NOW, signature: k.sign(cosignatureSignedBytes(unsigned)) };
}

/** An `entries` answer. */
export type EntriesAnswer = Extract<Response, { kind: "entries" }>;

/**
 * A session answering from a log of `leaves`, heads signed by `headKey`, cosigned by
 * `cosigners`; `entries` (the CBOR of each leaf's entry, null: withheld with its leaf hash)
 * answers `get_entries`, each answer passed through `listing` when given (a relay in the middle
 * altering it), and `asked` records every request.
 */
export function session(
  leaves: Uint8Array[],
  opts: { headKey?: IdentityKeys; cosigners?: IdentityKeys[]; entries?: (CborValue | null)[]; listing?: (a: EntriesAnswer) => EntriesAnswer; asked?: Request[] } = {},
): Session {
  const call = (r: Request): Promise<Response> => {
    opts.asked?.push(r);
    if (r.kind === "get_entries" && opts.entries !== undefined) {
      const slots = opts.entries.slice(r.from, Math.min(r.from + r.limit, leaves.length));
      const withheld = slots.flatMap((e, i) => (e === null ? [{ index: r.from + i, leaf: leaves[r.from + i] as Uint8Array }] : []));
      const answer: EntriesAnswer = { kind: "entries", from: r.from, entries: slots.filter((e): e is CborValue => e !== null), withheld };
      return Promise.resolve(opts.listing === undefined ? answer : opts.listing(answer));
    }
    if (r.kind === "get_tree_head") return Promise.resolve({ kind: "tree_head", head: headCbor(leaves.length, leaves, opts.headKey) });
    if (r.kind === "get_inclusion") return Promise.resolve({ kind: "inclusion", index: r.index, size: r.size, path: inclusionPath(r.index, leaves.slice(0, r.size)) });
    if (r.kind === "get_consistency") return Promise.resolve({ kind: "consistency", old: r.old, new: r.new, path: consistencyPath(r.old, leaves.slice(0, r.new)) });
    if (r.kind === "get_witnessed_head") return Promise.resolve({ kind: "witnessed_head", head: headCbor(leaves.length, leaves, opts.headKey), cosignatures: (opts.cosigners ?? [t1]).map((k) => cosignCbor(k, leaves.length, leaves)) });
    return Promise.reject(new Error(`unexpected ${r.kind}`));
  };
  return { call } as unknown as Session;
}


/** An entry of a kind a later version adds (§12.1: `{ extension: { code, body } }`), signed by `signer`, and its CBOR. */
export function laterKind(signer: IdentityKeys, code = 6): { entry: AuditEntry; raw: CborValue } {
  const body = random(20);
  const unsigned = { event: { extension: { code, body } }, at: NOW - 10, signer: signer.signingPublic };
  const signature = signer.sign(entrySignedBytes(unsigned));
  return { entry: { ...unsigned, signature }, raw: { event: { extension: { code, body } }, at: unsigned.at, signer: unsigned.signer, signature } };
}
