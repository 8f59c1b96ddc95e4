/**
 * Release notices as the agent console shows them. The relay pushes a conversation's notices to
 * its customer only; the agent, a party of the org, may read the audit log's entries about the
 * org's conversations (PROTOCOL §12.3 "Who reads the log"), so the console reads the log
 * (`get_entries`, `NoticeScan`) and checks each entry about one of its conversations with
 * `checkNotice` exactly as the widget's customer checks it: the entry's signature, about this
 * conversation, its signer allowed to make it (a release: a trustee of the org's policy, for that
 * org and its master; an erasure at the customer's request or a revocation: the conversation's
 * customer), its inclusion proven under a tree head signed by the pinned relay key, that head
 * consistent with the last one this console accepted (kept in its store), and the head cosigned
 * by a quorum of the org's trustees (`n − t + 1`, fresh). The words are the widget's, said of the
 * customer rather than to them ("the customer's consent", "the customer").
 *
 * Which entries are checked, and when, is `agent-log.ts`: only the entries new since the last
 * verified head the console kept, as soon as the relay says the log grew (`watch_audit`).
 */
import type { IdentityCard, Policy } from "@sealdesk/protocol";
import { fromCbor, toCbor, type AuditEntry, type CborValue } from "@sealdesk/protocol";
import { AgentError } from "./agent-model.js";
import { auditEntryFromCbor, checkNotice, noticeSigner, noticeText, treeHeadFromCbor, type Notice, type NoticeAudience } from "./notice.js";
import { cosignatureFromCbor } from "./notices-witness.js";
import type { Session } from "./session.js";
import type { Store } from "./store.js";

/** Where the agent keeps the last audit-log head it accepted (size and root): `log/head`. */
export const LOG_HEAD_RECORD = "log/head";

/** What checking one conversation's notice needs. */
export interface AgentNoticeContext {
  org: string;
  conversation: Uint8Array;
  /** The conversation's customer (from its epoch records), or null when none is known yet. */
  customer: IdentityCard | null;
  /** The org's latest verified policy (its trustees, its master). */
  policy: Policy;
  /** The relay's pinned key (its log key). */
  relayKey: Uint8Array;
  /** Leaf hashes (hex) already shown in this conversation (a repeat is said to be one). */
  seen: Set<string>;
  store: Store;
  /** Seconds since the epoch (the cosignatures' freshness). */
  now: () => number;
}

/**
 * Checks audit log entry `index` (its CBOR `raw`) on `s` as a notice and says it in the
 * widget's words, of the customer.
 *
 * # Errors
 * An entry that does not decode (`ProtocolError`); the session's errors. A notice that fails a
 * check is not an error: it comes back with `verified` false and NOT GENUINE in its text.
 */
export async function checkAgentNotice(s: Session, index: number, raw: CborValue, ctx: AgentNoticeContext): Promise<Notice> {
  const entry = auditEntryFromCbor(raw);
  // A notice read from the log has no place in the conversation's sequence: seq 0.
  const seq = 0;
  const proof = async (old: number, size: number): Promise<Uint8Array[]> => {
    const r = await s.call({ kind: "get_consistency", old, new: size });
    if (r.kind !== "consistency" || r.old !== old || r.new !== size) throw new AgentError("bad_answer", r.kind);
    return r.path;
  };
  const notice = await checkNotice(seq, index, entry, {
    org: ctx.org,
    conversation: ctx.conversation,
    // An erasure at the customer's request and a revocation are signed by the customer; with
    // no customer known, a key no entry has, so neither verifies.
    me: ctx.customer?.signingKey ?? new Uint8Array(32),
    relayKey: ctx.relayKey,
    policy: ctx.policy,
    seen: ctx.seen,
    treeHead: async () => {
      const r = await s.call({ kind: "get_tree_head" });
      if (r.kind !== "tree_head") throw new AgentError("bad_answer", r.kind);
      return treeHeadFromCbor(r.head);
    },
    inclusion: async (i, size) => {
      const r = await s.call({ kind: "get_inclusion", index: i, size });
      if (r.kind !== "inclusion" || r.index !== i || r.size !== size) throw new AgentError("bad_answer", r.kind);
      return r.path;
    },
    lastHead: {
      get: async () => {
        const b = await ctx.store.get(LOG_HEAD_RECORD);
        if (b === undefined) return null;
        const m = fromCbor(b);
        if (m === null || typeof m !== "object" || m instanceof Uint8Array || Array.isArray(m)) return null;
        return typeof m.size === "number" && m.root instanceof Uint8Array ? { size: m.size, root: m.root } : null;
      },
      put: (h) => ctx.store.put(LOG_HEAD_RECORD, toCbor({ size: h.size, root: h.root })),
    },
    consistency: proof,
    witnessedHead: async () => {
      const r = await s.call({ kind: "get_witnessed_head", org: ctx.org });
      if (r.kind !== "witnessed_head") throw new AgentError("bad_answer", r.kind);
      return { head: treeHeadFromCbor(r.head), cosignatures: r.cosignatures.map(cosignatureFromCbor) };
    },
    now: ctx.now,
  });
  // The checks are the widget's; the words are said of the customer, not to them.
  const audience: NoticeAudience = { kind: "agent", customer: ctx.customer?.name ?? "" };
  const by = noticeSigner(notice.by, audience);
  const text = noticeText(notice.event, notice.signer, audience, notice.failure, notice.unwitnessed, notice.repeat);
  return { ...notice, by, text };
}

/** The conversation an audit entry is about, or null (a policy change). */
export function noticeConversation(entry: AuditEntry): Uint8Array | null {
  const e = entry.event;
  if ("release" in e) return e.release.conversation;
  if ("erasure" in e) return e.erasure.conversation;
  if ("consent_revocation" in e) return e.consent_revocation.conversation;
  if ("dispute_closed" in e) return e.dispute_closed.conversation;
  return null;
}
