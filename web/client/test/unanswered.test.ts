/**
 * `ui/unanswered.ts`'s rules, without a page: which line read back confirms a send the relay did
 * not answer (the one with the message's own epoch, sender and counter — not another device's
 * line of the same words in the same second), that "not stored" is said only after the session
 * that carried it has gone and a new one has read, and that a send is kept in the store from
 * before it is sealed until its fate is known, so a page opened after a reload finds it
 * (`sendKept`). Each case fails if its check goes.
 */
import { describe, expect, it } from "vitest";
import { toCbor } from "@sealdesk/protocol";
import { MemoryStore, RECORDS, RelayError, SEND_UNANSWERED, SessionError, type SealedText } from "../src/index.js";
import { SendQueue, UnansweredSends, sendKept, wasOffline, wasUnanswered, type LineSeen } from "../src/ui/unanswered.js";

const ME = new Uint8Array(32).fill(7);
const OTHER = new Uint8Array(32).fill(9);
const line = (over: Partial<LineSeen>): LineSeen => ({ seq: 10, mine: true, text: "hi", epoch: 1, counter: 5, ...over });
const sealed = (over: Partial<SealedText> = {}): SealedText => ({ epoch: 1, sender: ME, counter: 5, sentAt: 1000, ...over });
let n = 0;
const sends = (store: MemoryStore | null = new MemoryStore(), errors: unknown[] = []): UnansweredSends =>
  new UnansweredSends({ store, me: ME, random: (k) => new Uint8Array(k).fill(++n % 256), now: () => 1000, error: (e) => errors.push(e) });
/** A send of `text` sealed as `as` and left unanswered. */
async function unansweredOf(s: UnansweredSends, text: string, as: SealedText, online = false): Promise<ReturnType<UnansweredSends["of"]>[number]> {
  const u = await s.begin("c", text);
  await s.sealedAs(u, as);
  s.unanswered(u, online);
  return u;
}
const kept = async (store: MemoryStore): Promise<string[]> => store.keys(RECORDS.pendingPrefix);

describe("sends the relay did not answer", () => {
  it("tells an unanswered send from a refusal and from no session", () => {
    expect(wasUnanswered(new SessionError("timeout", SEND_UNANSWERED))).toBe(true);
    // Another request's timeout (the handshake's) says nothing of a send's fate.
    expect(wasUnanswered(new SessionError("timeout", "no response in time"))).toBe(false);
    // Its session closed while it waited: the frame may have reached the relay.
    expect(wasUnanswered(new SessionError("closed", "1006"))).toBe(true);
    // No session to send on: nothing sealed, nothing sent.
    expect(wasUnanswered(new SessionError("closed", "offline"))).toBe(false);
    expect(wasOffline(new SessionError("closed", "offline"))).toBe(true);
    expect(wasOffline(new SessionError("closed", "1006"))).toBe(false);
    expect(wasOffline(new SessionError("timeout", SEND_UNANSWERED))).toBe(false);
  });

  it("is confirmed only by the line of its own epoch and counter, sent by this account, of the same text", async () => {
    const s = sends();
    const u = await unansweredOf(s, "hi", sealed());
    const wrong: LineSeen[] = [line({ mine: false }), line({ text: "hi!" }), line({ epoch: 2 }), line({ counter: 4 }), line({ counter: 6 }), line({ attachment: {} }), { seq: 10, mine: true, text: "hi" }];
    for (const l of wrong) expect(s.confirmedBy("c", [l]), JSON.stringify(l)).toEqual([]);
    expect(s.confirmedBy("other", [line({})])).toEqual([]);
    expect(s.of("c")).toEqual([u]);
    expect(s.confirmedBy("c", [line({ seq: 3 })])).toEqual([u]);
    expect(s.of("c")).toEqual([]);
    // Sealed under another key (an account recovered into this browser since): never this one's.
    const theirs = await unansweredOf(s, "hi", sealed({ sender: OTHER }));
    expect(s.confirmedBy("c", [line({})])).toEqual([]);
    expect(s.of("c")).toEqual([theirs]);
  });

  it("two devices of one account, the same words in the same second: each line confirms its own send only", async () => {
    // This device sealed counter 5; the other device (its own epoch, or the next counters) the
    // same text at the same second. Its line must not confirm this one's send.
    const s = sends();
    const here = await unansweredOf(s, "ok", sealed({ epoch: 3, counter: 5 }));
    const otherDevice = line({ seq: 20, text: "ok", epoch: 3, counter: 6 });
    const otherEpoch = line({ seq: 21, text: "ok", epoch: 4, counter: 5 });
    expect(s.confirmedBy("c", [otherDevice, otherEpoch])).toEqual([]);
    s.disconnected();
    // Not stored, as it is: the other device's line said nothing of it.
    expect(s.settle()).toEqual([here]);
    expect(here.state).toBe("not_stored");
    // Two of this page's sends of the same words: each confirmed by its own line, in any order.
    const a = await unansweredOf(s, "same", sealed({ counter: 7 }), true);
    const b = await unansweredOf(s, "same", sealed({ counter: 8 }), true);
    expect(s.confirmedBy("c", [line({ seq: 31, text: "same", counter: 8 })])).toEqual([b]);
    expect(s.of("c")).toEqual([here, a]);
    expect(s.confirmedBy("c", [line({ seq: 30, text: "same", counter: 7 })])).toEqual([a]);
  });

  it("says not stored only once the session that carried it has gone and a new one read", async () => {
    const s = sends();
    const u = await unansweredOf(s, "hi", sealed(), true);
    // An online state told before the carrying session's close arrived: too early to tell.
    expect(s.settle()).toEqual([]);
    expect(u.state).toBe("pending");
    s.disconnected();
    expect(s.settle()).toEqual([u]);
    expect(u.state).toBe("not_stored");
    // Told after the page saw its session go (a close that rejected it): the next online settles it.
    const late = await unansweredOf(s, "late", sealed({ counter: 6 }), false);
    expect(s.settle()).toEqual([late]);
    // Still matched by a line that comes later (the old connection's frame stored after the read).
    expect(s.confirmedBy("c", [line({ seq: 1 })])).toEqual([u]);
  });

  it("leaves a send being sent again, or being sent, to its own answer", async () => {
    const s = sends();
    const u = await unansweredOf(s, "hi", sealed());
    u.state = "resending";
    expect(s.confirmedBy("c", [line({})])).toEqual([]);
    const v = await s.begin("c", "now");
    await s.sealedAs(v, sealed({ counter: 9 }));
    expect(s.of("c")).toEqual([u]);
    expect(s.confirmedBy("c", [line({ text: "now", counter: 9 })])).toEqual([]);
  });
});

describe("sends kept across a reload", () => {
  it("a page opened later finds them: sealed ones not confirmed yet, settled by the read; the others not sent", async () => {
    const store = new MemoryStore();
    const before = sends(store);
    const stored = await unansweredOf(before, "was it stored?", sealed({ counter: 5 }), true);
    const lost = await unansweredOf(before, "never reached it", sealed({ counter: 6 }), true);
    // The page went while this one was being sealed (or before): it never went out.
    await before.begin("c", "typed, not sent");
    await before.begin("c", "written while reconnecting", true);
    expect(await kept(store)).toHaveLength(4);

    const after = sends(store);
    await after.load();
    const shown = after.of("c");
    expect(shown.map((u) => [u.text, u.state, u.sealed?.counter ?? null])).toEqual([
      ["was it stored?", "pending", 5],
      ["never reached it", "pending", 6],
      ["typed, not sent", "not_stored", null],
      ["written while reconnecting", "not_stored", null],
    ]);
    expect(shown.map((u) => u.id)).toEqual([stored.id, lost.id, expect.any(String), expect.any(String)]);
    // Its session has gone: the first read settles both (the first shown stored).
    expect(after.confirmedBy("c", [line({ seq: 2, text: "was it stored?", counter: 5 })]).map((u) => u.text)).toEqual(["was it stored?"]);
    expect(after.settle().map((u) => u.text)).toEqual(["never reached it"]);
    await after.flushed();
    expect(await kept(store)).toHaveLength(3);
    // Dismissed: forgotten, in the store too.
    for (const u of after.of("c")) await after.remove(u);
    expect(await kept(store)).toEqual([]);
  });

  it("a page leaves the sends of another page still open to it, and takes over those of one gone", async () => {
    const store = new MemoryStore();
    const paged = (me: string, alive: string[]): UnansweredSends =>
      new UnansweredSends({ store, me: ME, random: (k) => new Uint8Array(k).fill(++n % 256), now: () => 1000, pages: { me, alive: () => Promise.resolve(new Set(alive)) } });
    await unansweredOf(paged("a", ["a"]), "a's, its answer may still come", sealed({ counter: 1 }));
    await unansweredOf(paged("b", ["b"]), "b's, b is gone", sealed({ counter: 2 }));
    const c = paged("c", ["a", "c"]);
    await c.load();
    expect(c.of("c").map((u) => u.text)).toEqual(["b's, b is gone"]);
    // Taken over by c: a page opened while c is open leaves it to c.
    const d = paged("d", ["a", "c", "d"]);
    await d.load();
    expect(d.of("c")).toEqual([]);
    // Every page gone: all taken in.
    const e = paged("e", ["e"]);
    await e.load();
    expect(e.of("c").map((u) => u.text)).toEqual(["a's, its answer may still come", "b's, b is gone"]);
  });

  it("a record that does not decode is told and dropped, the others taken in", async () => {
    const store = new MemoryStore();
    const errors: unknown[] = [];
    await sends(store).begin("c", "fine");
    await store.put(`${RECORDS.pendingPrefix}000000000000.000000.bad`, toCbor({ conversation: "c", text: "x", epoch: 1 }));
    const s = sends(store, errors);
    await s.load();
    expect(s.of("c").map((u) => u.text)).toEqual(["fine"]);
    expect(errors).toHaveLength(1);
    expect(await kept(store)).toHaveLength(1);
  });

  it("sendKept: kept before sealing, its identity before it goes out, forgotten once stored", async () => {
    const store = new MemoryStore();
    const s = sends(store);
    const u = await s.begin("c", "hello");
    let seen: string[] = [];
    const out = await sendKept(s, u, async (hook) => {
      seen = await kept(store);
      await hook(sealed({ counter: 11 }));
      // The frame would go out now: its identity is in the store already.
      const again = sends(store);
      await again.load();
      expect(again.of("c").map((x) => x.sealed?.counter)).toEqual([11]);
      return 42;
    }, () => true);
    expect(seen).toHaveLength(1);
    expect(out).toEqual({ kind: "stored", value: 42 });
    expect(await kept(store)).toEqual([]);
  });

  it("sendKept: the store failing to keep the identity sends nothing", async () => {
    const store = new MemoryStore();
    const s = sends(store);
    const u = await s.begin("c", "hello");
    store.put = () => Promise.reject(new Error("disk full"));
    let sent = false;
    const out = await sendKept(s, u, async (hook) => {
      await hook(sealed());
      sent = true;
      return 1;
    }, () => true);
    expect(sent).toBe(false);
    expect(out.kind).toBe("refused");
  });

  it("sendKept: unanswered or failed after sealing stays kept as not confirmed; offline before sealing waits; a refusal is not sent", async () => {
    const store = new MemoryStore();
    const s = sends(store);
    const sealsThen = (e: Error) => async (hook: (x: SealedText) => Promise<void>): Promise<number> => {
      await hook(sealed({ counter: ++n }));
      throw e;
    };
    const timedOut = await s.begin("c", "a");
    expect(await sendKept(s, timedOut, sealsThen(new SessionError("timeout", SEND_UNANSWERED)), () => true)).toEqual({ kind: "unanswered" });
    expect([timedOut.state, timedOut.disconnected]).toEqual(["pending", false]);
    // Sealed, then something else failed (not the relay's refusal): the frame may have gone out.
    const odd = await s.begin("c", "b");
    expect(await sendKept(s, odd, sealsThen(new Error("bad answer")), () => false)).toEqual({ kind: "unanswered" });
    expect([odd.state, odd.disconnected]).toEqual(["pending", true]);
    // No session before anything was sealed: waits for the next one, kept as such.
    const waits = await s.begin("c", "c");
    expect(await sendKept(s, waits, () => Promise.reject(new SessionError("closed", "offline")), () => false)).toEqual({ kind: "queued" });
    expect(s.queued()).toEqual([waits]);
    // The same "offline" after sealing (its session gone under it): never taken for "not sent".
    const gone = await s.begin("c", "d");
    expect(await sendKept(s, gone, sealsThen(new SessionError("closed", "offline")), () => false)).toEqual({ kind: "unanswered" });
    // Refused by the relay: a new one is forgotten (its text goes back to the box) …
    const refused = await s.begin("c", "e");
    expect((await sendKept(s, refused, sealsThen(new RelayError("forbidden", "no")), () => true)).kind).toBe("refused");
    // … one sent again is not stored, kept.
    const again = await unansweredOf(s, "f", sealed({ counter: 99 }));
    again.state = "resending";
    expect((await sendKept(s, again, sealsThen(new RelayError("forbidden", "no")), () => true)).kind).toBe("refused");
    expect(again.state).toBe("not_stored");
    await s.flushed();
    const later = sends(store);
    await later.load();
    expect(later.of("c").map((u) => u.text)).toEqual(["a", "b", "c", "d", "f"]);
  });

  it("the connection stopped for good: what waited for it is not sent, its text kept", async () => {
    const s = sends();
    const waits = await s.begin("c", "written offline", true);
    const unknown = await unansweredOf(s, "on its way", sealed());
    expect(s.stopped()).toEqual([waits]);
    expect([waits.state, unknown.state]).toEqual(["not_stored", "pending"]);
    expect(s.queued()).toEqual([]);
    expect(s.of("c").map((u) => u.text)).toEqual(["written offline", "on its way"]);
  });

  it("runs sends one after another, in the order asked", async () => {
    const q = new SendQueue();
    const order: string[] = [];
    let release = (): void => undefined;
    const first = q.run(() => new Promise<void>((r) => (release = () => (order.push("first"), r()))));
    const second = q.run(async () => void order.push("second"));
    const failed = q.run(() => Promise.reject(new Error("x")));
    const third = q.run(async () => void order.push("third"));
    await Promise.resolve();
    expect(order).toEqual([]);
    release();
    await Promise.all([first, second, failed.catch(() => undefined), third]);
    expect(order).toEqual(["first", "second", "third"]);
  });
});
