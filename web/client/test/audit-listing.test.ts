/**
 * The browser's two readers of the audit log prove that the listing `get_entries` serves makes
 * up the signed tree head (PROTOCOL §12.3 "Who reads the log", `src/audit-listing.ts`): the
 * console agent's scan (`AuditLogReader`: the new entries past its kept position, the log read
 * again for a conversation seen for the first time, and a position kept before its compact
 * range was) and the customer's reading for revocations made elsewhere (`learnRevocations`).
 * A relay in the middle (`listing-tamper.ts`) drops an entry and shifts the rest, swaps an entry
 * for another genuine one, alters a withheld leaf, reports a readable entry withheld under a
 * wrong leaf, or adds a slot: each is refused (`AuditLogError`, `listing_not_head`), nothing of
 * the listing is used and the kept position does not move; the honest listing, with the
 * entries of another conversation withheld, is accepted.
 */
import { describe, expect, it } from "vitest";
import { entryLeafHash, equal, fromCbor, toCbor, toHex, verifyEntry, type CborValue } from "@sealdesk/protocol";
import { readListing } from "../src/audit-listing.js";
import { AuditLogReader, LOG_SCAN_RECORD, MemoryStore, REVOCATION_SCAN_KEY, learnRevocations, noticesRecord, unreadableNote, type FoundEntry, type Request, type RightsHost, type Session } from "../src/index.js";
import { conversation, customer, erasure, headCbor, laterKind, lookFor, mixedLog, random, relay, revocation, session, t1, type EntriesAnswer } from "./audit-log.fixture.js";
import { TAMPERS, lie, type Tamper } from "./listing-tamper.js";

const ours = toHex(conversation);
/** Another conversation of the customer's, whose entries are withheld here. */
const other = random(16);
/** The slot each lie alters: a readable entry (even) or a withheld one (odd), with a readable one after it in the page. */
const target = (t: Tamper, base: number): number => (t.needs === "readable" ? base : base + 1);

async function refusal(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => "accepted",
    (e: unknown) => e,
  );
}

describe("the console's scan proves its listing makes up the signed head", () => {
  for (const t of TAMPERS) {
    it(`refuses new entries with ${t.name}, and keeps its position`, async () => {
      const store = new MemoryStore();
      const { leaves, entries } = mixedLog(10);
      const found: FoundEntry[] = [];
      await new AuditLogReader(store).look(session(leaves.slice(0, 4), { entries }), lookFor([ours], found));
      const kept = await store.get(LOG_SCAN_RECORD);
      const keptNotices = await store.get(noticesRecord(ours));
      const lied = session(leaves, { entries, listing: lie(t, target(t, 4)) });
      expect(await refusal(new AuditLogReader(store).look(lied, lookFor([ours], found)))).toMatchObject({ name: "AuditLogError", failure: "listing_not_head" });
      // Nothing of the refused listing was handed over or kept.
      expect(found.map((f) => f.index)).toEqual([0, 2, 0, 2]);
      expect(await store.get(LOG_SCAN_RECORD)).toEqual(kept);
      expect(await store.get(noticesRecord(ours))).toEqual(keptNotices);
      // The honest listing, the other conversation's entries withheld, is accepted.
      const honest: FoundEntry[] = [];
      await new AuditLogReader(store).look(session(leaves, { entries }), lookFor([ours], honest));
      expect(honest.map((f) => f.index)).toEqual([0, 2, 4, 6, 8]);
    });
  }

  for (const t of TAMPERS) {
    it(`refuses the log read again for a conversation seen for the first time with ${t.name}`, async () => {
      const store = new MemoryStore();
      const { leaves, entries } = mixedLog(8);
      const reader = new AuditLogReader(store);
      await reader.look(session(leaves, { entries }), lookFor([], []));
      const kept = await store.get(LOG_SCAN_RECORD);
      const found: FoundEntry[] = [];
      const lied = session(leaves, { entries, listing: lie(t, target(t, 2)) });
      expect(await refusal(reader.look(lied, lookFor([ours], found)))).toMatchObject({ failure: "listing_not_head" });
      expect(found).toEqual([]);
      expect(await store.get(noticesRecord(ours))).toBeUndefined();
      expect(await store.get(LOG_SCAN_RECORD)).toEqual(kept);
      // Read again honestly (by a new reader: the refused conversation was marked read in this one).
      await new AuditLogReader(store).look(session(leaves, { entries }), lookFor([ours], found));
      expect(found.map((f) => f.index)).toEqual([0, 2, 4, 6]);
    });
  }

  it("reads the log from 0 again when its kept compact range does not make up its kept root", async () => {
    const { leaves, entries } = mixedLog(8);
    const store = new MemoryStore();
    await new AuditLogReader(store).look(session(leaves.slice(0, 6), { entries }), lookFor([], []));
    const kept = fromCbor((await store.get(LOG_SCAN_RECORD)) as Uint8Array) as { size: number; root: Uint8Array; frontier: Uint8Array[] };
    expect(kept.frontier).toHaveLength(2);
    await store.put(LOG_SCAN_RECORD, toCbor({ ...kept, frontier: [random(32), random(32)] }));
    const asked: Request[] = [];
    await new AuditLogReader(store).look(session(leaves, { entries, asked }), lookFor([], []));
    expect(asked.flatMap((r) => (r.kind === "get_entries" ? [r.from] : []))).toEqual([0, 6]);
  });

  it("builds the compact range of a position kept without one, from a proven reading of the log from 0", async () => {
    const { leaves, entries } = mixedLog(8);
    const store = new MemoryStore();
    await new AuditLogReader(store).look(session(leaves.slice(0, 6), { entries }), lookFor([], []));
    const { size, root } = (await new AuditLogReader(store).position()) as { size: number; root: Uint8Array };
    // As kept before the frontier was: size and root only.
    await store.put(LOG_SCAN_RECORD, toCbor({ size, root }));
    const old = await store.get(LOG_SCAN_RECORD);
    for (const t of [TAMPERS[0], TAMPERS[1]] as Tamper[]) {
      const lied = session(leaves.slice(0, 6), { entries, listing: lie(t, 2) });
      expect(await refusal(new AuditLogReader(store).look(lied, lookFor([], [])))).toMatchObject({ failure: "listing_not_head" });
      expect(await store.get(LOG_SCAN_RECORD)).toEqual(old);
    }
    // The log has not grown: read from 0 once, proven, and kept with its frontier.
    const asked: Request[] = [];
    await new AuditLogReader(store).look(session(leaves.slice(0, 6), { entries, asked }), lookFor([], []));
    expect(asked.flatMap((r) => (r.kind === "get_entries" ? [[r.from, r.limit]] : []))).toEqual([[0, 6]]);
    // The next look reads only past it.
    const again: Request[] = [];
    await new AuditLogReader(store).look(session(leaves, { entries, asked: again }), lookFor([], []));
    expect(again.flatMap((r) => (r.kind === "get_entries" ? [[r.from, r.limit]] : []))).toEqual([[6, 2]]);
  });
});

describe("reading a listing", () => {
  const { leaves, entries } = mixedLog(4);
  /** A session answering `get_entries` with `answer` (not through the frame decoder, whose checks it skips). */
  const answering = (answer: EntriesAnswer): Session => ({ call: () => Promise.resolve(answer) }) as unknown as Session;
  const all = (): boolean => true;

  it("gives every slot's leaf, computed for a readable entry and as served for a withheld one", async () => {
    const got = await readListing(session(leaves, { entries }), 0, 4, 3, all);
    expect(got.leaves.map(toHex)).toEqual(leaves.map(toHex));
    expect(got.entries.map((e) => e.index)).toEqual([0, 2]);
  });

  it("refuses more slots than asked for, slots neither entry nor withheld, and an entry that does not decode", async () => {
    const withheld = { index: 1, leaf: leaves[1] as Uint8Array };
    const e0 = entries[0] as CborValue;
    const e2 = entries[2] as CborValue;
    // Three slots where two were asked for.
    expect(await refusal(readListing(answering({ kind: "entries", from: 0, entries: [e0, e2], withheld: [withheld] }), 0, 2, 200, all))).toMatchObject({ failure: "listing_not_head", message: expect.stringMatching(/asked for 2/) as unknown });
    // A withheld index that places no slot (outside the page): one slot is left with no entry.
    expect(await refusal(readListing(answering({ kind: "entries", from: 0, entries: [e0], withheld: [{ index: 5, leaf: withheld.leaf }] }), 0, 4, 200, all))).toMatchObject({ failure: "listing_not_head", message: expect.stringMatching(/neither/) as unknown });
    // Withheld indexes out of order: one is never reached.
    const twice = [{ index: 2, leaf: withheld.leaf }, withheld];
    expect(await refusal(readListing(answering({ kind: "entries", from: 0, entries: [e0], withheld: twice }), 0, 4, 200, all))).toMatchObject({ failure: "listing_not_head", message: expect.stringMatching(/neither/) as unknown });
    // A readable entry whose leaf cannot be computed.
    expect(await refusal(readListing(answering({ kind: "entries", from: 0, entries: [{ event: "nothing" }], withheld: [] }), 0, 1, 200, all))).toMatchObject({ failure: "listing_not_head", message: expect.stringMatching(/does not decode/) as unknown });
  });
});

describe("the customer's reading for revocations proves its listing makes up the signed head", () => {
  const consentA = random(16);
  const consentB = random(16);
  /** Slots: another's erasure (withheld), A revoked, another's, B revoked, another's; then, grown, C's revocation. */
  function revocations(): { leaves: Uint8Array[]; entries: (CborValue | null)[] } {
    const made = [erasure(customer, other), revocation(customer, consentA), erasure(customer, other), revocation(customer, consentB), erasure(customer, other)];
    return { leaves: made.map((e) => entryLeafHash(e.entry)), entries: made.map((e, i) => (i % 2 === 1 ? e.raw : null)) };
  }

  /** A customer with consents A and B granted here; `checked` records the entries `checkEntry` was asked about, `refuse` those it refuses. */
  async function host(s: ReturnType<typeof session>, checked: number[] = [], refuse: Set<number> = new Set()): Promise<RightsHost> {
    const store = new MemoryStore();
    // The two fields the reading takes of a consent kept here (`consent/<id>`).
    for (const id of [consentA, consentB]) await store.put(`consent/${toHex(id)}`, toCbor({ conversation, id }));
    return {
      store,
      keys: customer,
      now: () => 0,
      org: "acme",
      conversation: () => conversation,
      session: () => s,
      relayKey: () => relay.signingPublic,
      notices: () => [],
      // As `checkNotice` for a revocation: signed, by this account (inclusion is what this file does not test).
      checkEntry: (index, entry) => {
        checked.push(index);
        verifyEntry(entry);
        const failure = refuse.has(index) || !equal(entry.signer, customer.signingPublic) ? "signer" : null;
        return Promise.resolve({ failure } as unknown as Awaited<ReturnType<RightsHost["checkEntry"]>>);
      },
    };
  }

  for (const t of TAMPERS) {
    it(`refuses a listing with ${t.name}: nothing learned, the position kept`, async () => {
      const { leaves, entries } = revocations();
      const checked: number[] = [];
      const h = await host(session(leaves, { entries, listing: lie(t, t.needs === "readable" ? 1 : 2) }), checked);
      expect(await refusal(learnRevocations(h))).toMatchObject({ name: "AuditLogError", failure: "listing_not_head" });
      expect(checked).toEqual([]);
      expect(await h.store.get(REVOCATION_SCAN_KEY)).toBeUndefined();
      expect(await h.store.keys("revoked/")).toEqual([]);
    });
  }

  it("accepts the honest listing, others' entries withheld, and reads on from its proven position", async () => {
    const { leaves, entries } = revocations();
    const asked: Request[] = [];
    let listing: ((a: EntriesAnswer) => EntriesAnswer) | undefined;
    const grown = [...leaves];
    const grownEntries = [...entries];
    const s = session(grown, { entries: grownEntries, asked, listing: (a) => (listing === undefined ? a : listing(a)) });
    const h = await host(s);
    expect(await learnRevocations(h)).toEqual([toHex(consentA), toHex(consentB)]);
    // A consent C granted here since, revoked elsewhere: the log grows by another's entry (withheld) and C's revocation.
    const consentC = random(16);
    await h.store.put(`consent/${toHex(consentC)}`, toCbor({ conversation, id: consentC }));
    const more = [erasure(customer, other), revocation(customer, consentC)];
    grown.push(...more.map((e) => entryLeafHash(e.entry)));
    grownEntries.push(null, more[1]?.raw ?? null);
    asked.length = 0;
    // Lied about on the way: refused, the position (5) kept.
    listing = lie(TAMPERS[0] as Tamper, 6);
    expect(await refusal(learnRevocations(h))).toMatchObject({ failure: "listing_not_head" });
    expect(await h.store.get(`revoked/${toHex(consentC)}`)).toBeUndefined();
    listing = undefined;
    expect(await learnRevocations(h)).toEqual([toHex(consentC)]);
    // Both readings started at the proven position: only the new entries were read.
    expect(asked.flatMap((r) => (r.kind === "get_entries" ? [r.from] : []))).toEqual([5, 5]);
  });

  it("passes over an entry of a kind it cannot read, learns the revocation after it, and keeps its index to say", async () => {
    const { leaves, entries } = revocations();
    // Slot 2 (another's erasure, withheld) replaced by a later relay's entry this customer is served.
    const x = laterKind(relay);
    leaves[2] = entryLeafHash(x.entry);
    entries[2] = x.raw;
    const checked: number[] = [];
    const h = await host(session(leaves, { entries }), checked);
    expect(await learnRevocations(h)).toEqual([toHex(consentA), toHex(consentB)]);
    expect(checked).toEqual([1, 3]);
    expect(await unreadableNote(h.store)).toBe("1 entry of a kind this version cannot read at index 2 — update sealdesk");
  });

  it("stops at an entry it cannot prove and reads on from exactly there, the position proven", async () => {
    const { leaves, entries } = revocations();
    const asked: Request[] = [];
    const refuse = new Set([3]);
    const h = await host(session(leaves, { entries, asked }), [], refuse);
    expect(await learnRevocations(h)).toEqual([toHex(consentA)]);
    refuse.clear();
    asked.length = 0;
    // From slot 3, its frontier that of slots 0..3: the rest proven against the head again.
    expect(await learnRevocations(h)).toEqual([toHex(consentB)]);
    expect(asked.flatMap((r) => (r.kind === "get_entries" ? [r.from] : []))).toEqual([3]);
  });

  it("reads from 0 once a position kept before the frontier was (a bare index)", async () => {
    const { leaves, entries } = revocations();
    const asked: Request[] = [];
    const h = await host(session(leaves, { entries, asked }));
    await h.store.put(REVOCATION_SCAN_KEY, toCbor(3));
    expect(await learnRevocations(h)).toEqual([toHex(consentA), toHex(consentB)]);
    expect(asked.flatMap((r) => (r.kind === "get_entries" ? [r.from] : []))).toEqual([0]);
    expect(fromCbor((await h.store.get(REVOCATION_SCAN_KEY)) as Uint8Array)).toMatchObject({ size: 5 });
  });

  it("refuses a log smaller than its position", async () => {
    const { leaves, entries } = revocations();
    const h = await host(session(leaves, { entries }), [], new Set([3]));
    await learnRevocations(h);
    const kept = await h.store.get(REVOCATION_SCAN_KEY);
    const small = await host(session(leaves.slice(0, 2), { entries }));
    for (const k of await h.store.keys("")) await small.store.put(k, (await h.store.get(k)) as Uint8Array);
    expect(await refusal(learnRevocations(small))).toMatchObject({ failure: "shrank" });
    expect(await small.store.get(REVOCATION_SCAN_KEY)).toEqual(kept);
  });

  it("refuses a tree head not signed by the pinned relay key, or naming another log key", async () => {
    const { leaves, entries } = revocations();
    /** The honest session, its tree head replaced by `head`. */
    const withHead = (head: CborValue): Session => {
      const s = session(leaves, { entries });
      return { call: (r: Request) => (r.kind === "get_tree_head" ? Promise.resolve({ kind: "tree_head", head }) : s.call(r)) } as unknown as Session;
    };
    // Naming the pinned key, signed by another.
    expect(await refusal(learnRevocations(await host(withHead(headCbor(leaves.length, leaves, t1, relay.signingPublic)))))).toMatchObject({ failure: "bad_head", message: expect.stringMatching(/signature/) as unknown });
    // Signed by the pinned key, naming another log key.
    expect(await refusal(learnRevocations(await host(withHead(headCbor(leaves.length, leaves, relay, t1.signingPublic)))))).toMatchObject({ failure: "bad_head", message: expect.stringMatching(/another log key/) as unknown });
  });
});
