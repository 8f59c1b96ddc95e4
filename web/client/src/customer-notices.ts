/**
 * The customer's audit-log notices (release, erasure, revocation, a dispute closed): each one
 * judged by `checkNotice` (`notice.ts`) against the relay — signer, inclusion, a log that only
 * grows from the head last accepted, and the witness quorum of the org's trustees (PROTOCOL
 * §12.4) — and its verdict kept in the store, so a reload shows it without asking again. A notice
 * that could not be checked (offline), or passed every check but the witnesses' ("not yet
 * witnessed"), is judged again at each sync and on a timer (`recheck`), as the Rust client does
 * (`client/src/client/witnessing.rs`): once witnessed it is shown verified, on a split view NOT
 * GENUINE; until then it is shown, never as genuine.
 */
import { ProtocolError, entryLeafHash, fromCbor, toCbor, toHex, type AuditEntry, type CborValue, type Policy } from "@sealdesk/protocol";
import { auditEntryFromCbor, checkNotice, treeHeadFromCbor, type Notice, type NoticeContext, type NoticeKind } from "./notice.js";
import { cosignatureFromCbor, type WitnessedHead } from "./notices-witness.js";
import type { Session } from "./session.js";
import type { Store } from "./store.js";

/** Where the customer keeps the last audit-log head it accepted (size and root). */
const LAST_HEAD_KEY = "log/head";

/** How often notices not yet witnessed are checked again while the page runs (besides every sync). */
export const RECHECK_NOTICES_MS = 10_000;

/**
 * A notice as the customer shows it: `unwitnessed` says why it is not yet vouched for by enough
 * of the org's trustees (PROTOCOL §12.4) — shown, never as genuine, and checked again at each
 * sync until it is witnessed (then `verified`) or found NOT GENUINE (a split view).
 */
export type ShownNotice = Notice & {
  unwitnessed: string | null;
  /** When the relay stored the notice item (Unix seconds). */
  storedAt: number;
  /** The consent (hex) a release was made under, or a revocation revokes; null otherwise. */
  consent: string | null;
  /** The opening a release notice is one trustee's share of (the same for each share); null otherwise. */
  opening: Opening | null;
};

/**
 * One opening of the conversation (a release): the org, the epochs and the basis it was made
 * under. Each trustee's share is its own audit-log entry; they all name the same opening, so a
 * page shows them as one notice (as the CLI's `history` does).
 */
export interface Opening {
  /** What the shares of one opening have in common, as a key. */
  key: string;
  org: string;
  first: number;
  last: number;
  /** The consent (hex) it was made under, or null. */
  consent: string | null;
  /** The dispute ticket (hex) it was made under, or null. */
  ticket: string | null;
  /** How many arbiters approved the ticket (0 under a consent). */
  approvers: number;
}

/** The opening a release entry is one trustee's share of, or null for another entry. */
export function openingOf(entry: AuditEntry): Opening | null {
  const e = entry.event;
  if (!("release" in e)) return null;
  const r = e.release;
  const consent = "consent" in r.basis ? toHex(r.basis.consent.id) : null;
  const ticket = "dispute" in r.basis ? toHex(r.basis.dispute.id) : null;
  const approvers = "dispute" in r.basis ? r.basis.dispute.approvers.length : 0;
  const key = `${r.org}/${r.epochs.first}-${r.epochs.last}/${consent === null ? `ticket:${ticket ?? ""}` : `consent:${consent}`}`;
  return { key, org: r.org, first: r.epochs.first, last: r.epochs.last, consent, ticket, approvers };
}

/** The consent (hex) an entry releases under or revokes, or null. */
export function consentOf(entry: AuditEntry): string | null {
  const e = entry.event;
  if ("release" in e && "consent" in e.release.basis) return toHex(e.release.basis.consent.id);
  if ("consent_revocation" in e) return toHex(e.consent_revocation.consent);
  return null;
}

/** What the notices need from the customer that holds them. */
export interface NoticeHost {
  org: string;
  store: Store;
  /** The customer's signing key. */
  me: Uint8Array;
  now: () => number;
  /** The conversation id, once open. */
  conversation: () => Uint8Array | null;
  /** The session, when online. */
  session: () => Session | null;
  /** The pinned relay (log) key, once known. */
  relayKey: () => Uint8Array | null;
  /** The org's policy as checked against the fingerprint. */
  policy: () => Policy | null;
  /** Shows a notice (again, with the same `seq`, when its verdict changed). */
  show: (n: ShownNotice) => void;
  error: (e: Error) => void;
}

function noticeKey(seq: number): string {
  return `notice/${String(seq).padStart(12, "0")}`;
}

function map(v: CborValue): { [k: string]: CborValue } {
  if (v === null || typeof v !== "object" || v instanceof Uint8Array || Array.isArray(v)) throw new ProtocolError("malformed", "stored record");
  return v;
}

/** The notices of one conversation, with their verdicts. */
export class CustomerNotices {
  /** The notices shown so far, in the order they came. */
  readonly shown: ShownNotice[] = [];
  /** Notices to judge (again): not yet witnessed, or not checked yet (offline), by `seq`. */
  private readonly waiting = new Map<number, { index: number; raw: CborValue; storedAt: number }>();
  /** Leaf hashes (hex) already shown: the same entry again is a repeat. */
  private readonly leaves = new Set<string>();
  /** Which notice (`seq`) put each leaf in `leaves`: judged again, it is no repeat of itself. */
  private readonly leafOf = new Map<string, number>();
  private rechecking: Promise<void> | null = null;
  /** Judgements run one at a time (a push and a recheck must not judge one notice at once). */
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly host: NoticeHost) {}

  /** How many notices wait to be judged (again). */
  pending(): number {
    return this.waiting.size;
  }

  private show(notice: ShownNotice): void {
    const at = this.shown.findIndex((n) => n.seq === notice.seq);
    if (at >= 0) this.shown[at] = notice;
    else this.shown.push(notice);
    this.host.show(notice);
  }

  /**
   * Checks a notice (`notice.ts`) and keeps the verdict, so a reload shows it without asking the
   * relay again. A notice that cannot be checked now (offline), or that passed every check but
   * the witnesses' ("not yet witnessed"), is judged again at each sync (`recheck`), as the
   * Rust client does (`client/src/client/witnessing.rs`).
   */
  async handle(seq: number, index: number, raw: CborValue, storedAt: number): Promise<void> {
    const consent = consentOf(auditEntryFromCbor(raw));
    const opening = openingOf(auditEntryFromCbor(raw));
    const kept = await this.host.store.get(noticeKey(seq));
    if (kept !== undefined) {
      const m = map(fromCbor(kept));
      const signer = typeof m.signer === "string" ? m.signer : null;
      const kinds: readonly string[] = ["release", "erasure", "revocation", "closed"];
      // Verdicts kept before notices had a kind read as the release notices they were.
      const kind: NoticeKind = typeof m.kind === "string" && kinds.includes(m.kind) ? (m.kind as NoticeKind) : m.kind === undefined && signer !== null ? "release" : "other";
      const by = typeof m.by === "string" ? m.by : signer !== null ? `trustee ${signer}` : "the key allowed to make it";
      const unwitnessed = typeof m.unwitnessed === "string" ? m.unwitnessed : null;
      const notice: ShownNotice = { seq, index, kind, by, text: String(m.text), verified: m.verified === true, signer, provenIn: typeof m.proven_in === "number" ? m.proven_in : 0, unwitnessed, storedAt, consent, opening };
      if (unwitnessed !== null) {
        this.waiting.set(seq, { index, raw, storedAt });
        // Its leaf counts as shown: another entry with the same leaf is a repeat.
        const leaf = toHex(entryLeafHash(auditEntryFromCbor(raw)));
        this.leaves.add(leaf);
        this.leafOf.set(leaf, seq);
      }
      this.show(notice);
      return;
    }
    this.waiting.set(seq, { index, raw, storedAt });
    if (this.host.session() !== null) await this.judgeInTurn(seq);
  }

  /** Judges one notice against the relay now; keeps and shows the verdict. */
  private judgeInTurn(seq: number): Promise<void> {
    const run = this.queue.then(async () => {
      // Decided meanwhile (witnessed, or found not genuine): nothing left to judge.
      const w = this.waiting.get(seq);
      if (w !== undefined) await this.judge(seq, w.index, w.raw, w.storedAt);
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async judge(seq: number, index: number, raw: CborValue, storedAt: number): Promise<void> {
    const entry = auditEntryFromCbor(raw);
    // Judged again: its own earlier verdict must not make it a repeat of itself.
    const leaf = toHex(entryLeafHash(entry));
    const before = this.shown.find((n) => n.seq === seq);
    if (this.leafOf.get(leaf) === seq) this.leaves.delete(leaf);
    const ctx = this.context(this.leaves);
    if (ctx === null) return;
    const notice = await checkNotice(seq, index, entry, ctx);
    if (notice.failure === null && !this.leafOf.has(leaf)) this.leafOf.set(leaf, seq);
    // A repeat of its own: put back what was taken out.
    if (this.leafOf.get(leaf) === seq) this.leaves.add(leaf);
    const unwitnessed = notice.failure === null ? notice.unwitnessed : null;
    // Still not witnessed, as it was: nothing to tell.
    if (before !== undefined && before.unwitnessed !== null && unwitnessed !== null) return;
    await this.host.store.put(
      noticeKey(seq),
      toCbor({ kind: notice.kind, by: notice.by, text: notice.text, verified: notice.verified, signer: notice.signer, proven_in: notice.provenIn, ...(unwitnessed === null ? {} : { unwitnessed }) }),
    );
    if (unwitnessed === null) this.waiting.delete(seq);
    this.show({ seq, index, kind: notice.kind, by: notice.by, text: notice.text, verified: notice.verified, signer: notice.signer, provenIn: notice.provenIn, unwitnessed, storedAt, consent: consentOf(entry), opening: openingOf(entry) });
  }

  /**
   * Checks an entry this customer just appended (a consent's revocation) as a notice is checked:
   * signed by the party allowed, proven in a signed head consistent with the last one accepted,
   * and witnessed (or not yet). Null when offline.
   */
  async checkEntry(index: number, entry: AuditEntry): Promise<Awaited<ReturnType<typeof checkNotice>> | null> {
    const ctx = this.context(new Set());
    return ctx === null ? null : checkNotice(0, index, entry, ctx);
  }

  /** What `checkNotice` needs, over the session now (null when offline). */
  private context(seen: Set<string>): NoticeContext | null {
    const conversation = this.host.conversation();
    const s = this.host.session();
    const relayKey = this.host.relayKey();
    if (conversation === null || s === null || relayKey === null) return null;
    return {
      org: this.host.org,
      conversation,
      me: this.host.me,
      relayKey,
      policy: this.host.policy(),
      seen,
      treeHead: async () => {
        const r = await s.call({ kind: "get_tree_head" });
        if (r.kind !== "tree_head") throw new ProtocolError("malformed", `unexpected answer ${r.kind}`);
        return treeHeadFromCbor(r.head);
      },
      inclusion: async (i, size) => {
        const r = await s.call({ kind: "get_inclusion", index: i, size });
        if (r.kind !== "inclusion" || r.index !== i || r.size !== size) throw new ProtocolError("malformed", `unexpected answer ${r.kind}`);
        return r.path;
      },
      // The log must only grow from the head this customer accepted last (kept in its store).
      lastHead: {
        get: async () => {
          const b = await this.host.store.get(LAST_HEAD_KEY);
          if (b === undefined) return null;
          const m = map(fromCbor(b));
          const root = m.root;
          return typeof m.size === "number" && root instanceof Uint8Array ? { size: m.size, root } : null;
        },
        put: async (h) => this.host.store.put(LAST_HEAD_KEY, toCbor({ size: h.size, root: h.root })),
      },
      consistency: async (old, size) => {
        const r = await s.call({ kind: "get_consistency", old, new: size });
        if (r.kind !== "consistency" || r.old !== old || r.new !== size) throw new ProtocolError("malformed", `unexpected answer ${r.kind}`);
        return r.path;
      },
      // And enough of the org's trustees must vouch for a log holding it (§12.4).
      witnessedHead: async (): Promise<WitnessedHead> => {
        const r = await s.call({ kind: "get_witnessed_head", org: this.host.org });
        if (r.kind !== "witnessed_head") throw new ProtocolError("malformed", `unexpected answer ${r.kind}`);
        return { head: treeHeadFromCbor(r.head), cosignatures: r.cosignatures.map(cosignatureFromCbor) };
      },
      now: this.host.now,
    };
  }

  /**
   * Judges again every notice not yet witnessed (or not yet checked): once enough of the org's
   * trustees cosigned a log holding it, it is shown verified; if they cosigned a log the one
   * served here does not extend, NOT GENUINE. Runs at each sync and on the customer's timer.
   */
  async recheck(): Promise<void> {
    if (this.rechecking !== null) return this.rechecking;
    this.rechecking = (async () => {
      for (const seq of [...this.waiting.keys()]) {
        try {
          await this.judgeInTurn(seq);
        } catch (e) {
          this.host.error(e instanceof Error ? e : new Error(String(e)));
        }
      }
    })();
    try {
      await this.rechecking;
    } finally {
      this.rechecking = null;
    }
  }
}
