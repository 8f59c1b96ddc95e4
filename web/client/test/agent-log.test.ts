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
import { noticeConversation } from "../src/agent-notices.js";
import { AuditLogError, AuditLogReader, LOG_SCAN_RECORD, MemoryStore, type FoundEntry, type LogLookContext, type Request } from "../src/index.js";
import { conversation, customer, erasure, random, relay, release, session, t1 } from "./audit-log.fixture.js";

const ours = toHex(conversation);
const other = random(16);

/** A log of `n` entries: a release about our conversation at each even index, others' erasures (withheld) between. */
function log(n: number): { leaves: Uint8Array[]; entries: (CborValue | null)[] } {
  const leaves: Uint8Array[] = [];
  const entries: (CborValue | null)[] = [];
  for (let i = 0; i < n; i++) {
    const e = i % 2 === 0 ? release(t1) : erasure(customer, other);
    leaves.push(entryLeafHash(e.entry));
    entries.push(i % 2 === 0 ? e.raw : null);
  }
  return { leaves, entries };
}

function look(conversations: string[], found: FoundEntry[]): LogLookContext {
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

const fromIndices = (asked: Request[]): number[] => asked.flatMap((r) => (r.kind === "get_entries" ? [r.from] : []));

describe("the console's verified position in the audit log", () => {
  it("reads only the entries past the head it kept, across a reload", async () => {
    const store = new MemoryStore();
    const { leaves, entries } = log(6);
    const found: FoundEntry[] = [];
    await new AuditLogReader(store).look(session(leaves.slice(0, 4), { entries }), look([ours], found));
    expect(found.map((f) => f.index)).toEqual([0, 2]);
    // The log grew by two; a new reader (a reload) on the same store reads its kept indices and the two new entries only.
    const asked: Request[] = [];
    const again: FoundEntry[] = [];
    await new AuditLogReader(store).look(session(leaves, { entries, asked }), look([ours], again));
    expect(again.map((f) => f.index)).toEqual([0, 2, 4]);
    expect(fromIndices(asked)).toEqual([0, 2, 4]);
    expect(asked.find((r) => r.kind === "get_entries" && r.from === 4)).toMatchObject({ limit: 2 });
    // Nothing new: no entry is read again in the same session.
    const none: Request[] = [];
    const reader = new AuditLogReader(store);
    await reader.look(session(leaves, { entries }), look([ours], []));
    await reader.look(session(leaves, { entries, asked: none }), look([ours], []));
    expect(fromIndices(none)).toEqual([]);
  });

  it("reads a conversation seen for the first time from the log's start, once", async () => {
    const store = new MemoryStore();
    const { leaves, entries } = log(5);
    const reader = new AuditLogReader(store);
    await reader.look(session(leaves, { entries }), look([], []));
    const found: FoundEntry[] = [];
    await reader.look(session(leaves, { entries }), look([ours], found));
    expect(found.map((f) => f.index)).toEqual([0, 2, 4]);
  });

  it("refuses a relay that rewinds, forks or rewrites its log, and keeps the head it had", async () => {
    const store = new MemoryStore();
    const { leaves, entries } = log(4);
    await new AuditLogReader(store).look(session(leaves, { entries }), look([ours], []));
    const kept = await store.get(LOG_SCAN_RECORD);
    const refused = async (l: Uint8Array[]): Promise<unknown> => new AuditLogReader(store).look(session(l, { entries }), look([ours], [])).catch((e: unknown) => e);
    // Rewound: the relay serves an older, smaller head.
    expect(await refused(leaves.slice(0, 3))).toMatchObject({ name: "AuditLogError", failure: "shrank" });
    // Forked: the same size, another root.
    const forked = [...leaves.slice(0, 3), entryLeafHash(release(t1).entry)];
    expect(await refused(forked)).toMatchObject({ failure: "forked" });
    // Rewritten: larger, but its start is not the log kept.
    expect(await refused([...forked, ...log(2).leaves])).toMatchObject({ failure: "not_an_extension" });
    expect(await store.get(LOG_SCAN_RECORD)).toEqual(kept);
    // The honest log, grown, is still accepted after the refusals.
    const grown = log(6);
    await expect(new AuditLogReader(store).look(session([...leaves, ...grown.leaves.slice(4)], { entries: [...entries, ...grown.entries.slice(4)] }), look([ours], []))).resolves.toBeUndefined();
  });

  it("refuses a relay that holds back entries its signed head holds", async () => {
    const store = new MemoryStore();
    const { leaves, entries } = log(4);
    const e = await new AuditLogReader(store).look(session(leaves, { entries: entries.slice(0, 2) }), look([ours], [])).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(AuditLogError);
    expect(e).toMatchObject({ failure: "held_back" });
    expect(await store.get(LOG_SCAN_RECORD)).toBeUndefined();
  });
});
