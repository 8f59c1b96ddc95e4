/**
 * The console's position in the audit log (`src/agent-log.ts`) without a relay: a log made here
 * (`audit-log.fixture.ts`). A look reads only the entries past the verified head it kept, in the
 * store, across a reload; a conversation seen for the first time has its part of the log read
 * once, then its kept indices; and a relay that rewinds, forks or rewrites its log, or answers
 * fewer entries than its signed head holds, is refused with an `AuditLogError` and the kept head
 * is left as it was.
 */
import { describe, expect, it } from "vitest";
import { entryLeafHash, toHex, type CborValue } from "@sealdesk/protocol";
import { AuditLogError, AuditLogReader, LOG_SCAN_RECORD, MemoryStore, unreadableNote, type FoundEntry, type Request } from "../src/index.js";
import { conversation, laterKind, lookFor, mixedLog, relay, release, session, t1 } from "./audit-log.fixture.js";

const ours = toHex(conversation);
const fromIndices = (asked: Request[]): number[] => asked.flatMap((r) => (r.kind === "get_entries" ? [r.from] : []));

describe("the console's verified position in the audit log", () => {
  it("reads only the entries past the head it kept, across a reload", async () => {
    const store = new MemoryStore();
    const { leaves, entries } = mixedLog(6);
    const found: FoundEntry[] = [];
    await new AuditLogReader(store).look(session(leaves.slice(0, 4), { entries }), lookFor([ours], found));
    expect(found.map((f) => f.index)).toEqual([0, 2]);
    // The log grew by two; a new reader (a reload) on the same store reads its kept indices and the two new entries only.
    const asked: Request[] = [];
    const again: FoundEntry[] = [];
    await new AuditLogReader(store).look(session(leaves, { entries, asked }), lookFor([ours], again));
    expect(again.map((f) => f.index)).toEqual([0, 2, 4]);
    expect(fromIndices(asked)).toEqual([0, 2, 4]);
    expect(asked.find((r) => r.kind === "get_entries" && r.from === 4)).toMatchObject({ limit: 2 });
    // Nothing new: no entry is read again in the same session.
    const none: Request[] = [];
    const reader = new AuditLogReader(store);
    await reader.look(session(leaves, { entries }), lookFor([ours], []));
    await reader.look(session(leaves, { entries, asked: none }), lookFor([ours], []));
    expect(fromIndices(none)).toEqual([]);
  });

  it("reads a conversation seen for the first time from the log's start, once", async () => {
    const store = new MemoryStore();
    const { leaves, entries } = mixedLog(5);
    const reader = new AuditLogReader(store);
    await reader.look(session(leaves, { entries }), lookFor([], []));
    const found: FoundEntry[] = [];
    await reader.look(session(leaves, { entries }), lookFor([ours], found));
    expect(found.map((f) => f.index)).toEqual([0, 2, 4]);
  });

  it("refuses a relay that rewinds, forks or rewrites its log, and keeps the head it had", async () => {
    const store = new MemoryStore();
    const { leaves, entries } = mixedLog(4);
    await new AuditLogReader(store).look(session(leaves, { entries }), lookFor([ours], []));
    const kept = await store.get(LOG_SCAN_RECORD);
    const refused = async (l: Uint8Array[]): Promise<unknown> => new AuditLogReader(store).look(session(l, { entries }), lookFor([ours], [])).catch((e: unknown) => e);
    // Rewound: the relay serves an older, smaller head.
    expect(await refused(leaves.slice(0, 3))).toMatchObject({ name: "AuditLogError", failure: "shrank" });
    // Forked: the same size, another root.
    const forked = [...leaves.slice(0, 3), entryLeafHash(release(t1).entry)];
    expect(await refused(forked)).toMatchObject({ failure: "forked" });
    // Rewritten: larger, but its start is not the log kept.
    expect(await refused([...forked, ...mixedLog(2).leaves])).toMatchObject({ failure: "not_an_extension" });
    expect(await store.get(LOG_SCAN_RECORD)).toEqual(kept);
    // The honest log, grown, is still accepted after the refusals.
    const grown = mixedLog(6);
    await expect(new AuditLogReader(store).look(session([...leaves, ...grown.leaves.slice(4)], { entries: [...entries, ...grown.entries.slice(4)] }), lookFor([ours], []))).resolves.toBeUndefined();
  });

  it("refuses a relay that holds back entries its signed head holds", async () => {
    const store = new MemoryStore();
    const { leaves, entries } = mixedLog(4);
    const e = await new AuditLogReader(store).look(session(leaves, { entries: entries.slice(0, 2) }), lookFor([ours], [])).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(AuditLogError);
    expect(e).toMatchObject({ failure: "held_back" });
    expect(await store.get(LOG_SCAN_RECORD)).toBeUndefined();
  });
});

describe("an entry of a kind this version cannot read (PROTOCOL §12.3)", () => {
  // A later relay's entry at index 4 (its leaf computed from its code and body as served), a release after it.
  const later = (): { leaves: Uint8Array[]; entries: (CborValue | null)[] } => {
    const { leaves, entries } = mixedLog(4);
    const x = laterKind(relay);
    const r = release(t1);
    return { leaves: [...leaves, entryLeafHash(x.entry), entryLeafHash(r.entry)], entries: [...entries, x.raw, r.raw] };
  };

  it("is passed over, the listing still proven and the entries after it read, and said in one line", async () => {
    const store = new MemoryStore();
    const { leaves, entries } = later();
    const found: FoundEntry[] = [];
    await new AuditLogReader(store).look(session(leaves, { entries }), lookFor([ours], found));
    expect(found.map((f) => f.index)).toEqual([0, 2, 5]);
    expect(await unreadableNote(store)).toBe("1 entry of a kind this version cannot read at index 4 — update sealdesk");
  });

  it("still refuses an entry that does not decode, and a kind it reads served as one it cannot", async () => {
    const { leaves, entries } = later();
    for (const event of [{ frobnicate: { org: "acme" } }, { extension: { code: 3, body: new Uint8Array(32) } }]) {
      const bad = entries.map((e, i) => (i === 4 && e !== null && typeof e === "object" && !(e instanceof Uint8Array) && !Array.isArray(e) ? { ...e, event } : e));
      const store = new MemoryStore();
      const err = await new AuditLogReader(store).look(session(leaves, { entries: bad }), lookFor([ours], [])).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AuditLogError);
      expect(err).toMatchObject({ failure: "listing_not_head" });
      expect(await store.get(LOG_SCAN_RECORD)).toBeUndefined();
    }
  });
});
