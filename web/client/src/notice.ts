/**
 * Release notices (PROTOCOL §12, §13.4 `notice` items): the audit entry a conversation's customer
 * is shown when its conversation is opened (or erased, or a consent revoked), checked as the Rust
 * client's `ingest_notice` checks it. A notice is shown as **verified** only if the entry's
 * signature verifies, it is about this conversation, its signer is allowed to make it (a release:
 * a trustee of the org's policy, for that org and its master; an erasure: the customer for its
 * own request, the relay only for retention; a revocation: the customer; a dispute ticket closed: the relay), and it is proven in the
 * audit log: an inclusion proof under
 * a tree head signed by the pinned relay key. One logged entry is one notice: the same leaf again
 * is shown as a repeat, never as a second opening. Anything else is shown, marked NOT GENUINE.
 */
import {
  ProtocolError,
  entryLeafHash,
  equal,
  extensionEvent,
  toHex,
  verifyEntry,
  verifyInclusion,
  verifyTreeHead,
  type AuditEntry,
  type AuditEvent,
  type CborValue,
  type ClosedBecause,
  type Policy,
  type ReleaseBasis,
  type TreeHead,
} from "@sealdesk/protocol";
import { consentName, type KnownConsents } from "./consent-names.js";
import { checkConsistent, witnessQuorum, type SeenHead, type WitnessedHead } from "./notices-witness.js";

type M = { [k: string]: CborValue };

function map(v: CborValue | undefined, what: string): M {
  if (v === null || v === undefined || typeof v !== "object" || v instanceof Uint8Array || Array.isArray(v)) throw new ProtocolError("malformed", `${what}: expected a map`);
  return v;
}
function bytes(m: M, k: string, len?: number): Uint8Array {
  const v = m[k];
  if (!(v instanceof Uint8Array) || (len !== undefined && v.length !== len)) throw new ProtocolError("malformed", `${k}: expected bytes`);
  return v;
}
function num(m: M, k: string): number {
  const v = m[k];
  if (typeof v === "bigint" && v >= 0n && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw new ProtocolError("malformed", `${k}: expected an unsigned integer`);
  return v;
}
function str(m: M, k: string): string {
  const v = m[k];
  if (typeof v !== "string") throw new ProtocolError("malformed", `${k}: expected text`);
  return v;
}
function one(v: CborValue | undefined, what: string): [string, M] {
  const m = map(v, what);
  const keys = Object.keys(m);
  const k = keys[0];
  if (keys.length !== 1 || k === undefined) throw new ProtocolError("malformed", `${what}: expected one variant`);
  return [k, map(m[k], what)];
}

function basisFromCbor(v: CborValue | undefined): ReleaseBasis {
  const [k, m] = one(v, "basis");
  if (k === "consent") {
    const scope = str(m, "scope");
    if (scope !== "full" && scope !== "redacted") throw new ProtocolError("malformed", `scope ${scope}`);
    return { consent: { id: bytes(m, "id", 16), scope, issuedAt: num(m, "issued_at") } };
  }
  if (k === "dispute") {
    const a = m.approvers;
    if (!Array.isArray(a)) throw new ProtocolError("malformed", "approvers");
    return { dispute: { id: bytes(m, "id", 16), approvers: a.map((x) => (x instanceof Uint8Array && x.length === 32 ? x : new Uint8Array(0))) } };
  }
  throw new ProtocolError("malformed", `basis ${k}`);
}

function closedBecauseFromCbor(v: CborValue | undefined): ClosedBecause {
  if (v === "released" || v === "rejected") return v;
  const m = map(v, "because");
  const keys = Object.keys(m);
  const reason = m.master;
  if (keys.length !== 1 || typeof reason !== "string") throw new ProtocolError("malformed", "because: expected released, rejected or { master }");
  return { master: reason };
}

/** An audit entry from its CBOR map (`{ event, at, signer, signature }`). */
export function auditEntryFromCbor(v: CborValue): AuditEntry {
  const m = map(v, "audit entry");
  const [k, e] = one(m.event, "event");
  let event: AuditEvent;
  if (k === "release") {
    const ep = map(e.epochs, "epochs");
    event = { release: { org: str(e, "org"), requestHash: bytes(e, "request_hash", 32), conversation: bytes(e, "conversation", 16), epochs: { first: num(ep, "first"), last: num(ep, "last") }, basis: basisFromCbor(e.basis), master: bytes(e, "master", 32) } };
  } else if (k === "erasure") {
    const reason = str(e, "reason");
    if (reason !== "retention" && reason !== "customer request") throw new ProtocolError("malformed", `reason ${reason}`);
    event = { erasure: { conversation: bytes(e, "conversation", 16), reason } };
  } else if (k === "consent_revocation") {
    event = { consent_revocation: { conversation: bytes(e, "conversation", 16), consent: bytes(e, "consent", 16) } };
  } else if (k === "dispute_closed") {
    event = { dispute_closed: { org: str(e, "org"), conversation: bytes(e, "conversation", 16), ticket: bytes(e, "ticket", 16), because: closedBecauseFromCbor(e.because) } };
  } else if (k === "policy_change") {
    event = { policy_change: { org: str(e, "org"), version: num(e, "version"), policyHash: bytes(e, "policy_hash", 32) } };
  } else if (k === "extension") {
    const body = e.body;
    if (!(body instanceof Uint8Array)) throw new ProtocolError("malformed", "extension body");
    event = extensionEvent(num(e, "code"), body);
  } else {
    throw new ProtocolError("malformed", `event ${k}`);
  }
  return { event, at: num(m, "at"), signer: bytes(m, "signer", 32), signature: bytes(m, "signature", 64) };
}

/** A tree head from its CBOR map. */
export function treeHeadFromCbor(v: CborValue): TreeHead {
  const m = map(v, "tree head");
  return { size: num(m, "size"), root: bytes(m, "root", 32), timestamp: num(m, "timestamp"), logKey: bytes(m, "log_key", 32), signature: bytes(m, "signature", 64) };
}

function conversationOf(e: AuditEvent): Uint8Array | null {
  if ("release" in e) return e.release.conversation;
  if ("erasure" in e) return e.erasure.conversation;
  if ("consent_revocation" in e) return e.consent_revocation.conversation;
  if ("dispute_closed" in e) return e.dispute_closed.conversation;
  return null;
}

/** What a notice is about. */
export type NoticeKind = "release" | "erasure" | "revocation" | "closed" | "other";

/** A notice as shown to the customer. */
export interface Notice {
  seq: number;
  index: number;
  /** What the entry records (`other` for a kind this conversation never carries). */
  kind: NoticeKind;
  /** Who signed it, in plain words: "trustee t1", "you", "the relay". */
  by: string;
  /** What happened, in plain words (with NOT GENUINE or a repeat said in it). */
  text: string;
  /** Signed by an allowed party, about this conversation, proven in the log, and not a repeat. */
  verified: boolean;
  /** Who signed it (a trustee's name), when known. */
  signer: string | null;
  /** The tree size the inclusion was proven under (0 if not proven). */
  provenIn: number;
  /** The entry's event (for `noticeText` in another audience's words); absent in older callers' notices. */
  event?: AuditEvent;
  /** Why it is not genuine, or null (absent: not said). */
  failure?: NoticeFailure;
  /** Why it is not yet witnessed (every other check passed), or null. */
  unwitnessed?: string | null;
  /** A repeat of a notice already shown. */
  repeat?: boolean;
}

/**
 * Whom a notice is said to: the conversation's customer ("under your consent of 2 Dec 2026",
 * "you"; the consents its client knows in `consents`, any other named by its short id:
 * `consent-names.ts`), or an agent of the org, of the customer named `customer` ("under the
 * customer's consent of 2 Dec 2026": the days the conversation's release entries claim, in
 * `consents`, `consentsClaimed`).
 */
export type NoticeAudience = { kind: "customer"; consents?: KnownConsents } | { kind: "agent"; customer: string; consents?: KnownConsents };

/** The customer's audience (the widget's). */
export const TO_CUSTOMER: NoticeAudience = { kind: "customer" };

/** What checking a notice needs from its caller. */
export interface NoticeContext {
  org: string;
  conversation: Uint8Array;
  me: Uint8Array;
  relayKey: Uint8Array;
  policy: Policy | null;
  /** The latest signed tree head (any size). */
  treeHead: () => Promise<TreeHead>;
  /** The inclusion path of `index` in the tree of `size`. */
  inclusion: (index: number, size: number) => Promise<Uint8Array[]>;
  /** Leaf hashes (hex) already shown in this conversation. */
  seen: Set<string>;
  /**
   * The last tree head this customer accepted, and where to keep the next one: a head that
   * does not extend it (shrank, forked, not an append-only extension) fails the notice as
   * `inconsistent`. Absent: no consistency check (as before).
   */
  lastHead?: { get: () => Promise<SeenHead | null>; put: (h: SeenHead) => Promise<void> };
  /** The consistency path from the tree of `oldSize` leaves to the tree of `newSize`. */
  consistency?: (oldSize: number, newSize: number) => Promise<Uint8Array[]>;
  /**
   * The served head with the org's trustees' cosignatures: when given, a notice that passes
   * every other check is verified only once `n − t + 1` of them vouch for it (else it is shown
   * "not yet witnessed", or NOT GENUINE on a split view). Absent: not checked.
   */
  witnessedHead?: () => Promise<WitnessedHead>;
  /** The reader's clock, Unix seconds (for the cosignatures' freshness). */
  now?: () => number;
}

/** Why a notice is not genuine (for the tests and the text); null when it is. */
export type NoticeFailure = "signature" | "conversation" | "signer" | "inclusion" | "inconsistent" | "split_view" | null;

/** Checks a notice and says it in words. */
export async function checkNotice(seq: number, index: number, entry: AuditEntry, ctx: NoticeContext): Promise<Notice & { failure: NoticeFailure; unwitnessed: string | null; event: AuditEvent; repeat: boolean }> {
  let failure: NoticeFailure = null;
  let signer: string | null = null;
  try {
    verifyEntry(entry);
  } catch {
    failure = "signature";
  }
  const conv = conversationOf(entry.event);
  if (failure === null && (conv === null || !equal(conv, ctx.conversation))) failure = "conversation";
  if (failure === null) {
    const e = entry.event;
    if ("release" in e) {
      const t = ctx.policy?.trustees.find((x) => equal(x.signingKey, entry.signer));
      signer = t?.name ?? null;
      if (t === undefined || ctx.policy === null || e.release.org !== ctx.org || !equal(e.release.master, ctx.policy.master.signingKey)) failure = "signer";
    } else if ("erasure" in e) {
      // The reason decides the one signer (PROTOCOL.md §12.3): the customer for its own
      // request, the relay's log key only for retention.
      const allowed = e.erasure.reason === "customer request" ? ctx.me : ctx.relayKey;
      if (!equal(entry.signer, allowed)) failure = "signer";
    } else if ("consent_revocation" in e) {
      if (!equal(entry.signer, ctx.me)) failure = "signer";
    } else if ("dispute_closed" in e) {
      // Only the relay closes a ticket in the log (on the master's signed close or on its own).
      if (e.dispute_closed.org !== ctx.org || !equal(entry.signer, ctx.relayKey)) failure = "signer";
    } else {
      failure = "signer";
    }
  }
  let provenIn = 0;
  let unwitnessed: string | null = null;
  if (failure === null) {
    let head: TreeHead | null = null;
    try {
      head = verifyTreeHead(await ctx.treeHead(), ctx.relayKey);
      if (!equal(head.logKey, ctx.relayKey) || index >= head.size) throw new ProtocolError("malformed", "not in the log");
      const path = await ctx.inclusion(index, head.size);
      if (!verifyInclusion(entryLeafHash(entry), index, head.size, path, head.root)) throw new ProtocolError("malformed", "inclusion");
      provenIn = head.size;
    } catch {
      failure = "inclusion";
    }
    // The head must extend the last one this customer accepted.
    if (failure === null && head !== null && ctx.lastHead !== undefined) {
      const proof = ctx.consistency ?? (() => Promise.reject(new Error("no consistency proofs")));
      try {
        const last = await ctx.lastHead.get();
        if ((await checkConsistent(last, head, proof)) !== null) failure = "inconsistent";
        else if (last === null || head.size >= last.size) await ctx.lastHead.put({ size: head.size, root: head.root });
      } catch {
        failure = "inconsistent";
      }
    }
    // And enough of the org's trustees must vouch for a head holding the entry.
    if (failure === null && ctx.witnessedHead !== undefined) {
      if (ctx.policy === null) {
        unwitnessed = "no policy to know the org's trustees";
      } else {
        const proof = ctx.consistency ?? (() => Promise.reject(new Error("no consistency proofs")));
        try {
          const w = await ctx.witnessedHead();
          const served = verifyTreeHead(w.head, ctx.relayKey);
          const now = ctx.now?.() ?? Math.floor(Date.now() / 1000);
          // The head the trustees vouch for must itself hold the entry (§12.4): a relay could
          // otherwise prove it in one head and show the witnesses another without it.
          let held = served.size > index;
          if (held) {
            const path = await ctx.inclusion(index, served.size);
            held = verifyInclusion(entryLeafHash(entry), index, served.size, path, served.root);
            if (!held) failure = "split_view";
          } else {
            unwitnessed = "the witnessed audit log does not hold it yet";
          }
          if (held) {
            const q = await witnessQuorum({ head: served, cosignatures: w.cosignatures }, ctx.policy, ctx.relayKey, index, now, proof);
            if (q.splitView) failure = "split_view";
            else if (q.have < q.need) unwitnessed = `witnessed by ${q.have} of the ${q.need} trustees needed`;
          }
        } catch {
          unwitnessed = "the trustees' cosignatures could not be had";
        }
      }
    }
  }
  const leaf = toHex(entryLeafHash(entry));
  const repeat = failure === null && ctx.seen.has(leaf);
  if (failure === null) ctx.seen.add(leaf);
  const kind = kindOf(entry.event);
  const by = kind === "release" ? (signer === null ? "a trustee" : `trustee ${signer}`) : equal(entry.signer, ctx.me) ? "you" : equal(entry.signer, ctx.relayKey) ? "the relay" : "an unknown key";
  const text = noticeText(entry.event, signer, TO_CUSTOMER, failure, unwitnessed, repeat);
  return { seq, index, kind, by, text, verified: failure === null && unwitnessed === null && !repeat, signer, provenIn, failure, unwitnessed, event: entry.event, repeat };
}

/**
 * What a notice not yet witnessed adds for the customer: the CLI's words for her (`sealdesk
 * history`, `consent revoke`), with "the business" for the org as everywhere in the widget.
 */
export const NOT_YET_CONFIRMED =
  "NOT YET CONFIRMED by the business's independent trustees; checked again by itself, and if it stays unconfirmed, the relay may be hiding something";

/**
 * What a notice says, in `audience`'s words: what happened, and why it is NOT GENUINE, NOT YET
 * CONFIRMED (the customer's words; NOT YET WITNESSED and the check's reason, an agent's) or a
 * repeat when it is.
 */
export function noticeText(event: AuditEvent, signer: string | null, audience: NoticeAudience, failure: NoticeFailure, unwitnessed: string | null, repeat: boolean): string {
  let text = describe(event, signer, audience);
  if (failure === "inconsistent") text += " (NOT GENUINE: the audit log it is proven in does not extend the one seen before)";
  else if (failure === "split_view") text += " (NOT GENUINE: the org's trustees cosigned a log that the one served here does not extend)";
  else if (failure !== null) text += " (NOT GENUINE: not signed by a party allowed to make it, or not proven in the audit log)";
  // The customer reads what it means for her (the CLI's customer words, `not_yet_witnessed` in
  // client/src/notice.rs); an agent reads the witnessing check's own words.
  else if (unwitnessed !== null && audience.kind === "customer") text += ` (${NOT_YET_CONFIRMED})`;
  else if (unwitnessed !== null) text += ` (NOT YET WITNESSED: ${unwitnessed})`;
  if (repeat) text += " — a repeat of a notice already shown, not a new opening";
  return text;
}

/** Who signed a notice (`Notice.by`, said to the customer) in `audience`'s words. */
export function noticeSigner(by: string, audience: NoticeAudience): string {
  if (by !== "you" || audience.kind === "customer") return by;
  return audience.customer === "" ? "the customer" : `the customer ${audience.customer}`;
}

function kindOf(e: AuditEvent): NoticeKind {
  if ("release" in e) return "release";
  if ("erasure" in e) return "erasure";
  if ("consent_revocation" in e) return "revocation";
  if ("dispute_closed" in e) return "closed";
  return "other";
}

/** "1 arbiter", "2 arbiters". */
function arbiters(n: number): string {
  return n === 1 ? "1 arbiter" : `${n} arbiters`;
}

/**
 * "your consent of 2 Dec 2026" or "your consent 1a2b3c4d" (the customer), "the customer's
 * consent of 2 Dec 2026" (an agent) for consent `id` (hex), named by `consentName`.
 */
export function consentWords(id: string, audience: NoticeAudience): string {
  return `${audience.kind === "customer" ? "your consent" : "the customer's consent"} ${consentName(id, audience.consents)}`;
}

function describe(e: AuditEvent, signer: string | null, audience: NoticeAudience): string {
  if ("release" in e) {
    const r = e.release;
    const epochs = r.epochs.first === r.epochs.last ? `epoch ${r.epochs.first}` : `epochs ${r.epochs.first}–${r.epochs.last}`;
    const who = signer === null ? "a trustee" : `the trustee ${signer}`;
    if ("consent" in r.basis) return `${who} released its share to ${r.org} for ${epochs} of this chat under ${consentWords(toHex(r.basis.consent.id), audience)}`;
    return `${who} released its share to ${r.org} for ${epochs} of this chat under dispute ticket ${toHex(r.basis.dispute.id)}, approved by ${arbiters(r.basis.dispute.approvers.length)}`;
  }
  if ("erasure" in e) return `this conversation was erased (${e.erasure.reason})`;
  if ("consent_revocation" in e) return `${consentWords(toHex(e.consent_revocation.consent), audience)} was revoked`;
  if ("dispute_closed" in e) {
    const d = e.dispute_closed;
    const why = d.because === "released" ? "its release is complete" : d.because === "rejected" ? "the arbiters rejected it" : `${d.org} closed it: ${d.because.master}`;
    return `dispute ticket ${toHex(d.ticket)} about this chat is closed (${why}); nothing more can be released under it`;
  }
  if ("extension" in e) return `an entry of a kind this version cannot read (code ${e.extension.code}): update sealdesk to read it`;
  return `${e.policy_change.org} published policy version ${e.policy_change.version}`;
}
