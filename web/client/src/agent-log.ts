/**
 * The agent's verified position in the audit log, and reading only what is new past it
 * (PROTOCOL §12.3 "Who reads the log", §13.5 `watch_audit`). The console keeps, in its store, the
 * last tree head it read the log up to (`log/scan`: size and root, signed by the pinned relay
 * key when read) and, per conversation, the indices of the entries about it (`conv/<id>/notices`).
 * Each look:
 *
 * 1. fetches the signed tree head and proves it an append-only extension of the kept one (same
 *    root at the same size, an RFC 9162 consistency proof for a larger one): a relay that
 *    rewinds, truncates or forks its log is refused with an `AuditLogError`, and the kept
 *    position is left as it was (nothing accepted before is lost or replaced);
 * 2. reads the entries from the kept size to the new one, every slot accounted for (a relay that
 *    answers fewer slots than the head holds is `held_back`), and hands each readable one about a
 *    known conversation to the caller;
 * 3. only then keeps the new head.
 *
 * A conversation seen for the first time (assigned, or transferred here) has its part of the
 * log read once from entry 0 to the kept size; after that its notices come from the kept indices
 * (one `get_entries` each), so the cost of a look is the new entries, not the whole log.
 */
import { equal, fromCbor, toCbor, verifyTreeHead, type AuditEntry, type CborValue, type TreeHead } from "@sealdesk/protocol";
import { auditEntryFromCbor, treeHeadFromCbor } from "./notice.js";
import { checkConsistent, type SeenHead } from "./notices-witness.js";
import type { Session } from "./session.js";
import type { Store } from "./store.js";

/** Where the agent keeps the tree head it read the log up to: `log/scan` → `{ size, root }`. */
export const LOG_SCAN_RECORD = "log/scan";
/** The indices of the log entries about a conversation: `conv/<id>/notices` → `[index…]`. */
export const noticesRecord = (id: string): string => `conv/${id}/notices`;
/** How many log entries one `get_entries` asks for. */
export const SCAN_PAGE = 200;

/** Why the relay's log was refused. */
export type AuditLogFailure = "shrank" | "forked" | "not_an_extension" | "held_back" | "bad_head" | "bad_answer";

/** The relay's audit log is not one this agent may accept; `failure` says why. */
export class AuditLogError extends Error {
  constructor(
    readonly failure: AuditLogFailure,
    detail?: string,
  ) {
    super(detail === undefined ? failure : `${failure}: ${detail}`);
    this.name = "AuditLogError";
  }
}

/** One readable entry handed to the caller: its index, decoded, its CBOR and its conversation (hex). */
export interface FoundEntry {
  index: number;
  entry: AuditEntry;
  raw: CborValue;
  conversation: string;
}

/** What a look needs from the agent. */
export interface LogLookContext {
  /** The relay's pinned key (its log key). */
  relayKey: Uint8Array;
  /** The conversations known now (hex ids). */
  conversations: () => string[];
  /** The conversation (hex) an entry is about, or null. */
  conversationOf: (entry: AuditEntry) => string | null;
  /** Checks and shows one entry; called in index order per conversation. */
  found: (f: FoundEntry) => Promise<void>;
}

function seenFromCbor(b: Uint8Array | undefined): SeenHead | null {
  if (b === undefined) return null;
  const m = fromCbor(b);
  if (m === null || typeof m !== "object" || m instanceof Uint8Array || Array.isArray(m)) return null;
  return typeof m.size === "number" && m.root instanceof Uint8Array ? { size: m.size, root: m.root } : null;
}

function indicesFromCbor(b: Uint8Array): number[] {
  const v = fromCbor(b);
  return Array.isArray(v) ? v.filter((x): x is number => typeof x === "number") : [];
}

/** The agent's reading of the audit log, one look at a time. */
export class AuditLogReader {
  /** Conversations whose notices were read this session (hex). */
  private readonly loaded = new Set<string>();
  private running: Promise<void> | null = null;
  private again = false;

  constructor(private readonly store: Store) {}

  /** The kept position (size 0 before the first look). */
  async position(): Promise<SeenHead> {
    return (await seenFromCbor(await this.store.get(LOG_SCAN_RECORD))) ?? { size: 0, root: new Uint8Array(32) };
  }

  /** Forgets that `id`'s notices were read this session (they are read again at the next look). */
  forget(id: string): void {
    this.loaded.delete(id);
  }

  /**
   * One look (see the module doc). A call while a look runs makes one more look after it (a
   * push that the log grew during a look is not lost).
   *
   * # Errors
   * `AuditLogError` for a log that is not an extension of the kept one or holds entries back;
   * the session's errors. The kept position moves only after a look that succeeded.
   */
  look(s: Session, ctx: LogLookContext): Promise<void> {
    if (this.running !== null) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.lookOnce(s, ctx);
      } while (this.again);
    })();
    return this.running.finally(() => {
      this.running = null;
    });
  }

  private async lookOnce(s: Session, ctx: LogLookContext): Promise<void> {
    const kept = await this.position();
    const head = await this.head(s, ctx.relayKey);
    const why = await checkConsistent(kept, head, async (old, size) => {
      const r = await s.call({ kind: "get_consistency", old, new: size });
      if (r.kind !== "consistency" || r.old !== old || r.new !== size) throw new AuditLogError("bad_answer", r.kind);
      return r.path;
    });
    if (why !== null) throw new AuditLogError(why, `the relay's audit log (${head.size} entries) does not extend the one this console read up to (${kept.size} entries)`);
    // Conversations not read yet: from their kept indices, or (never seen) the log up to the kept size.
    const fresh = ctx.conversations().filter((id) => !this.loaded.has(id));
    const backfill: string[] = [];
    for (const id of fresh) {
      const b = await this.store.get(noticesRecord(id));
      if (b === undefined) {
        if (kept.size > 0) backfill.push(id);
        else await this.store.put(noticesRecord(id), toCbor([]));
        continue;
      }
      for (const index of indicesFromCbor(b)) {
        await this.range(s, index, index + 1, (f) => (f.conversation === id ? ctx.found(f) : Promise.resolve()), ctx);
      }
    }
    if (backfill.length > 0) {
      const found = new Map<string, number[]>(backfill.map((id) => [id, []]));
      await this.range(s, 0, kept.size, async (f) => {
        const list = found.get(f.conversation);
        if (list === undefined) return;
        list.push(f.index);
        await ctx.found(f);
      }, ctx);
      for (const [id, list] of found) await this.store.put(noticesRecord(id), toCbor(list));
    }
    for (const id of fresh) this.loaded.add(id);
    // The new entries, for every conversation read.
    if (head.size > kept.size) {
      await this.range(s, kept.size, head.size, async (f) => {
        if (!this.loaded.has(f.conversation)) return;
        const b = await this.store.get(noticesRecord(f.conversation));
        const list = b === undefined ? [] : indicesFromCbor(b);
        if (!list.includes(f.index)) await this.store.put(noticesRecord(f.conversation), toCbor([...list, f.index]));
        await ctx.found(f);
      }, ctx);
    }
    if (head.size !== kept.size || kept.size === 0) await this.store.put(LOG_SCAN_RECORD, toCbor({ size: head.size, root: head.root }));
  }

  /**
   * Reads entry `index` again and hands it to `ctx.found` (a notice not yet witnessed, checked
   * again).
   *
   * # Errors
   * The session's errors; `held_back` when the relay does not answer it.
   */
  reread(s: Session, index: number, ctx: LogLookContext): Promise<void> {
    return this.range(s, index, index + 1, ctx.found, ctx);
  }

  /** The relay's signed tree head, checked against the pinned key. */
  private async head(s: Session, relayKey: Uint8Array): Promise<TreeHead> {
    const r = await s.call({ kind: "get_tree_head" });
    if (r.kind !== "tree_head") throw new AuditLogError("bad_answer", r.kind);
    try {
      const head = verifyTreeHead(treeHeadFromCbor(r.head), relayKey);
      if (!equal(head.logKey, relayKey)) throw new AuditLogError("bad_head", "signed by another log key");
      return head;
    } catch (e) {
      if (e instanceof AuditLogError) throw e;
      throw new AuditLogError("bad_head", e instanceof Error ? e.message : String(e));
    }
  }

  /**
   * Reads entries `from..to`, every slot accounted for, and hands each readable one about a
   * conversation to `found` in index order; an entry that does not decode is passed over.
   */
  private async range(s: Session, from: number, to: number, found: (f: FoundEntry) => Promise<void>, ctx: LogLookContext): Promise<void> {
    let next = from;
    while (next < to) {
      const r = await s.call({ kind: "get_entries", from: next, limit: Math.min(SCAN_PAGE, to - next) });
      if (r.kind !== "entries" || r.from !== next) throw new AuditLogError("bad_answer", r.kind);
      const slots = r.entries.length + r.withheld.length;
      if (slots === 0) throw new AuditLogError("held_back", `entries ${next}..${to} are in the signed log but the relay does not answer them`);
      const withheld = new Set(r.withheld);
      let i = r.from;
      for (const raw of r.entries) {
        while (withheld.has(i)) i += 1;
        let entry: AuditEntry | null = null;
        try {
          entry = auditEntryFromCbor(raw);
        } catch {
          entry = null;
        }
        const conversation = entry === null ? null : ctx.conversationOf(entry);
        if (entry !== null && conversation !== null && i < to) await found({ index: i, entry, raw, conversation });
        i += 1;
      }
      next = r.from + slots;
    }
  }
}
