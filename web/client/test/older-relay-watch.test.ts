/**
 * The older-relay rule of PROTOCOL §13.5 in the browser client's session code (`session.ts`):
 * a relay too old to know `watch_agent_keys` or `watch_audit` closes the connection on it as a
 * malformed frame (4102). The `Connection` then connects again at once, never asks that relay
 * again for as long as it lives, and keeps working; a close with any other code, or a 4102
 * while no watch request waits, teaches nothing, so the next session asks again.
 *
 * The relay is an in-process stand-in (no socket, no network): it authenticates anyone, answers
 * every request `ok`, and does to the watch requests what each test says.
 */
import { randomBytes } from "node:crypto";
import { IdentityKeys, decodeFrame, encodeFrame, issueCard, type CborValue } from "@sealdesk/protocol";
import { describe, expect, it, vi } from "vitest";
import {
  CLOSE_BAD_FRAME,
  Connection,
  RELAY_KNOWLEDGE_TTL_MS,
  relayKnowledgeKey,
  type ConnectionListener,
  type KnowledgeStorage,
  type KnowledgeStore,
  type Session,
  type SocketFactory,
  type SocketLike,
  type WatchOutcome,
  type WatchRequest,
} from "../src/index.js";
import { variantOf, type Frame } from "./tamper.js";

const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

/** What the stand-in does to a request: answer it, or close the connection with a code. */
type Doing = { answer: CborValue } | { close: number };

/** A relay in the test's process: one `SocketLike` per connection. */
class StandIn {
  /** Connections opened, in order. */
  connections = 0;
  /** The requests seen, as `<connection>:<kind>`. */
  readonly seen: string[] = [];
  private readonly relayKey = IdentityKeys.generate(random).signingPublic;
  private readonly open = new Set<() => void>();

  /** `does(kind, connection)` says what to do to each request. */
  constructor(private readonly does: (kind: string, connection: number) => Doing) {}

  /** How many times `kind` was asked. */
  asked(kind: string): number {
    return this.seen.filter((s) => s.endsWith(`:${kind}`)).length;
  }

  /** Drops every open connection (code 1006, as a lost network shows it). */
  dropAll(): void {
    for (const drop of [...this.open]) drop();
  }

  readonly factory: SocketFactory = () => {
    const connection = ++this.connections;
    let closed = false;
    const socket: SocketLike = {
      binaryType: "arraybuffer",
      readyState: 1,
      send: (data) => {
        if (closed) return;
        const frame = decodeFrame(data) as Frame;
        if (frame.auth !== undefined) return deliver({ welcome: { registered: true, log_key: this.relayKey } });
        const q = frame.request as Frame | undefined;
        const kind = variantOf(q?.body) ?? "";
        this.seen.push(`${connection}:${kind}`);
        const doing = this.does(kind, connection);
        if ("close" in doing) closeWith(doing.close);
        else deliver({ response: { id: q?.id ?? 0, body: doing.answer } });
      },
      close: () => closeWith(1000),
      onopen: null,
      onmessage: null,
      onclose: null,
      onerror: null,
    };
    const deliver = (frame: CborValue): void => {
      const bytes = encodeFrame(frame);
      setTimeout(() => {
        if (!closed) socket.onmessage?.({ data: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) });
      }, 0);
    };
    const closeWith = (code: number): void => {
      if (closed) return;
      closed = true;
      this.open.delete(drop);
      setTimeout(() => socket.onclose?.({ code, reason: code === CLOSE_BAD_FRAME ? "malformed frame" : "" }), 0);
    };
    const drop = (): void => closeWith(1006);
    this.open.add(drop);
    deliver({ challenge: { relay_key: this.relayKey, nonce: random(32) } });
    return socket;
  };
}

/** The stand-in relay's URL. */
const RELAY_URL = "ws://stand-in/v1/ws";

/** A `localStorage` stand-in (one for the origin's tabs); `fails` makes the named operations throw, as denied storage does. */
class Storage implements KnowledgeStorage {
  readonly items = new Map<string, string>();
  fails = new Set<"get" | "set" | "remove">();

  getItem(key: string): string | null {
    if (this.fails.has("get")) throw new Error("SecurityError: storage is denied");
    return this.items.get(key) ?? null;
  }

  setItem(key: string, value: string): void {
    if (this.fails.has("set")) throw new Error("QuotaExceededError");
    this.items.set(key, value);
  }

  removeItem(key: string): void {
    if (this.fails.has("remove")) throw new Error("SecurityError: storage is denied");
    this.items.delete(key);
  }
}

/** A relay too old to know either watch request: it closes the connection on them with 4102. */
function olderRelay(): StandIn {
  return new StandIn((kind) => (kind.startsWith("watch_") ? { close: CLOSE_BAD_FRAME } : kind === "list_conversations" ? lists : ok));
}

/** A page load on `storage` at `clock.ms`: online, then stopped; the stand-in relay it met. */
async function pageLoad(storage: () => KnowledgeStorage, clock: { ms: number }, url = RELAY_URL): Promise<{ relay: StandIn; run: Run }> {
  const relay = olderRelay();
  const run = connect(relay, { storage, now: () => clock.ms }, url);
  await online(run);
  run.connection.stop();
  return { relay, run };
}

/** What each session's listener did: the outcome of each watch asked, per session. */
interface Run {
  connection: Connection;
  /** One entry per session that came online: the outcomes of its two watches. */
  sessions: Record<WatchRequest, WatchOutcome>[];
  states: string[];
  /** The sessions, in order. */
  opened: Session[];
}

/**
 * A `Connection` to `relay` whose listener asks both watches on every session, as the widget's
 * customer does (`watch_agent_keys`, then `watch_audit`), and then lists its conversations;
 * while `asks()` is false, it only lists (a widget whose customer has not begun).
 */
function connect(relay: StandIn, memory: KnowledgeStore | null = null, url = RELAY_URL, asks = (): boolean => true): Run {
  const keys = IdentityKeys.generate(random);
  const card = issueCard(keys, "web-000000000001", "customer", Math.floor(Date.now() / 1000));
  const run: Run = { connection: undefined as unknown as Connection, sessions: [], states: [], opened: [] };
  const listener: ConnectionListener = {
    async online(s) {
      run.opened.push(s);
      if (!asks()) {
        await s.call({ kind: "list_conversations" });
        return;
      }
      const agentKeys = await s.watch("watch_agent_keys");
      const audit = await s.watch("watch_audit");
      run.sessions.push({ watch_agent_keys: agentKeys, watch_audit: audit });
      await s.call({ kind: "list_conversations" });
    },
    push() {},
    state(state, detail) {
      run.states.push(detail === undefined ? state : `${state}: ${detail}`);
    },
    fatal(e) {
      throw e;
    },
  };
  // No jitter: a retry after a drop waits the shortest backoff.
  run.connection = new Connection(url, keys, card, relay.factory, listener, null, () => 0, memory);
  run.connection.start();
  return run;
}

/** Waits until `run` is online on a session that is still open. */
async function online(run: Run): Promise<Session> {
  return vi.waitFor(
    () => {
      const s = run.connection.current();
      if (s === null || run.states.at(-1) !== "online") throw new Error("not online yet");
      return s;
    },
    { timeout: 5_000, interval: 5 },
  );
}

const ok: Doing = { answer: "ok" };
const lists: Doing = { answer: { conversations: [] } };

describe("the older-relay rule (§13.5) in the browser client's session", () => {
  it("a relay closing with 4102 on each watch request costs one connection per request, opened again at once, and is never asked again", async () => {
    const relay = new StandIn((kind) => (kind.startsWith("watch_") ? { close: CLOSE_BAD_FRAME } : kind === "list_conversations" ? lists : ok));
    const run = connect(relay);
    const s = await online(run);
    // Asked once each: the first session lost to watch_agent_keys, the second to watch_audit.
    expect(relay.connections).toBe(3);
    expect(relay.asked("watch_agent_keys")).toBe(1);
    expect(relay.asked("watch_audit")).toBe(1);
    expect(run.connection.knowledge.unknownRequests()).toEqual(["watch_agent_keys", "watch_audit"]);
    expect(run.opened[0]?.closeCode).toBe(CLOSE_BAD_FRAME);
    expect(run.opened[0]?.lostToUnknown).toEqual(["watch_agent_keys"]);
    expect(run.opened[1]?.lostToUnknown).toEqual(["watch_audit"]);
    // Connected again at once (no backoff), and said why.
    expect(run.states.filter((st) => st.startsWith("offline"))).toEqual([
      "offline: the relay does not know watch_agent_keys; connecting again without it",
      "offline: the relay does not know watch_audit; connecting again without it",
    ]);
    // The third session asked neither, and works.
    expect(run.sessions.at(-1)).toEqual({ watch_agent_keys: "unknown", watch_audit: "unknown" });
    expect(relay.seen.filter((q) => q.startsWith("3:"))).toEqual(["3:list_conversations"]);
    expect(s.closed).toBe(false);

    // A drop later: connected again with backoff, and still not asked.
    relay.dropAll();
    await vi.waitFor(() => expect(relay.connections).toBe(4), { timeout: 5_000, interval: 5 });
    await online(run);
    expect(relay.asked("watch_agent_keys")).toBe(1);
    expect(relay.asked("watch_audit")).toBe(1);
    run.connection.stop();
  });

  it("a relay answering bad_field is not asked again, and keeps the session", async () => {
    const relay = new StandIn((kind) =>
      kind === "watch_audit" ? { answer: { error: { code: "bad_field", message: "body: unknown variant `watch_audit`" } } } : kind === "list_conversations" ? lists : ok,
    );
    const run = connect(relay);
    await online(run);
    expect(relay.connections).toBe(1);
    expect(run.sessions).toEqual([{ watch_agent_keys: "watching", watch_audit: "unknown" }]);
    relay.dropAll();
    await vi.waitFor(() => expect(run.sessions).toHaveLength(2), { timeout: 5_000, interval: 5 });
    expect(run.sessions[1]).toEqual({ watch_agent_keys: "watching", watch_audit: "unknown" });
    expect(relay.asked("watch_agent_keys")).toBe(2);
    expect(relay.asked("watch_audit")).toBe(1);
    run.connection.stop();
  });

  for (const code of [1006, 1011, 4101]) {
    it(`a close with code ${code} right after a watch request is no older relay: the next session asks again`, async () => {
      // The first watch_agent_keys is met by the close; every later request is answered.
      const relay = new StandIn((kind, connection) => (kind === "watch_agent_keys" && connection === 1 ? { close: code } : kind === "list_conversations" ? lists : ok));
      const run = connect(relay);
      await online(run);
      expect(relay.connections).toBe(2);
      expect(relay.asked("watch_agent_keys")).toBe(2);
      expect(run.connection.knowledge.unknownRequests()).toEqual([]);
      expect(run.opened[0]?.lostToUnknown).toEqual([]);
      expect(run.sessions.at(-1)).toEqual({ watch_agent_keys: "watching", watch_audit: "watching" });
      // Reconnected with backoff, as after any drop, not "without it".
      expect(run.states.some((st) => st.includes("without it"))).toBe(false);
      run.connection.stop();
    });
  }

  it("a 4102 close while no watch request waits teaches nothing", async () => {
    // The first session's list_conversations is closed with 4102 (both watches were answered).
    const relay = new StandIn((kind, connection) => (kind === "list_conversations" ? (connection === 1 ? { close: CLOSE_BAD_FRAME } : lists) : ok));
    const run = connect(relay);
    await online(run);
    expect(relay.connections).toBe(2);
    expect(run.connection.knowledge.unknownRequests()).toEqual([]);
    expect(relay.asked("watch_agent_keys")).toBe(2);
    expect(relay.asked("watch_audit")).toBe(2);
    run.connection.stop();
  });

  describe("kept for the origin's tabs (localStorage, keyed by relay URL, for an hour)", () => {
    const T0 = 1_800_000_000_000;

    it("a reload behind a relay that closed with 4102 opens one connection and asks nothing", async () => {
      const storage = new Storage();
      const clock = { ms: T0 };
      const first = await pageLoad(() => storage, clock);
      expect(first.relay.connections).toBe(3);
      expect(JSON.parse(storage.items.get(relayKnowledgeKey(RELAY_URL)) ?? "null")).toEqual({
        watch_agent_keys: T0 + RELAY_KNOWLEDGE_TTL_MS,
        watch_audit: T0 + RELAY_KNOWLEDGE_TTL_MS,
      });
      clock.ms = T0 + RELAY_KNOWLEDGE_TTL_MS - 1;
      const reload = await pageLoad(() => storage, clock);
      expect(reload.relay.connections).toBe(1);
      expect(reload.relay.seen).toEqual(["1:list_conversations"]);
      expect(reload.run.sessions).toEqual([{ watch_agent_keys: "unknown", watch_audit: "unknown" }]);
      // Another relay URL is asked: the knowledge is that relay's.
      const other = await pageLoad(() => storage, clock, "ws://other-relay/v1/ws");
      expect(other.relay.connections).toBe(3);
    });

    it("a tab open before another learned reads it at its next session: one connection more, nothing asked", async () => {
      const storage = new Storage();
      const clock = { ms: T0 };
      // Tab B is open and online, its customer not begun yet: it has asked nothing.
      let begun = false;
      const relayB = olderRelay();
      const tabB = connect(relayB, { storage: () => storage, now: () => clock.ms }, RELAY_URL, () => begun);
      await online(tabB);
      // Tab A, opened meanwhile, learns what the relay does not know: three connections.
      const tabA = await pageLoad(() => storage, clock);
      expect(tabA.relay.connections).toBe(3);
      // B's customer begins and its connection is lost: its next session reads what A stored.
      begun = true;
      relayB.dropAll();
      await vi.waitFor(() => expect(relayB.connections).toBe(2), { timeout: 5_000, interval: 5 });
      await vi.waitFor(() => expect(tabB.sessions).toHaveLength(1), { timeout: 5_000, interval: 5 });
      expect(tabB.sessions).toEqual([{ watch_agent_keys: "unknown", watch_audit: "unknown" }]);
      expect(relayB.asked("watch_agent_keys")).toBe(0);
      expect(relayB.asked("watch_audit")).toBe(0);
      expect(relayB.connections).toBe(2);
      tabB.connection.stop();
    });

    it("once the hour is over, the relay is asked again (it may have been upgraded), and learned again", async () => {
      const storage = new Storage();
      const clock = { ms: T0 };
      await pageLoad(() => storage, clock);
      clock.ms = T0 + RELAY_KNOWLEDGE_TTL_MS;
      const later = await pageLoad(() => storage, clock);
      expect(later.relay.connections).toBe(3);
      expect(later.relay.asked("watch_agent_keys")).toBe(1);
      expect(later.relay.asked("watch_audit")).toBe(1);
      expect(JSON.parse(storage.items.get(relayKnowledgeKey(RELAY_URL)) ?? "null")).toEqual({
        watch_agent_keys: clock.ms + RELAY_KNOWLEDGE_TTL_MS,
        watch_audit: clock.ms + RELAY_KNOWLEDGE_TTL_MS,
      });
      // An upgraded relay: asked after the hour, it answers, and nothing is stored for it.
      const upgraded = new StandIn((kind) => (kind === "list_conversations" ? lists : ok));
      clock.ms += RELAY_KNOWLEDGE_TTL_MS;
      const run = connect(upgraded, { storage: () => storage, now: () => clock.ms });
      await online(run);
      expect(run.sessions).toEqual([{ watch_agent_keys: "watching", watch_audit: "watching" }]);
      run.connection.stop();
    });

    it("stored knowledge that expires while the page is open is asked again at the next connection", async () => {
      const storage = new Storage();
      const clock = { ms: T0 };
      await pageLoad(() => storage, clock);
      clock.ms = T0 + RELAY_KNOWLEDGE_TTL_MS - 1;
      const relay = olderRelay();
      const run = connect(relay, { storage: () => storage, now: () => clock.ms });
      await online(run);
      expect(relay.connections).toBe(1);
      clock.ms += 1;
      relay.dropAll();
      // The drop, then one connection lost to each watch request, then the one that stays.
      await vi.waitFor(() => expect(relay.connections).toBe(4), { timeout: 5_000, interval: 5 });
      await online(run);
      expect(relay.asked("watch_agent_keys")).toBe(1);
      expect(relay.asked("watch_audit")).toBe(1);
      run.connection.stop();
    });

    const garbage = [
      "not json",
      "null",
      "[]",
      '"watch_audit"',
      '{"watch_audit": "later"}',
      '{"watch_audit": null}',
      '{"watch_audit": 1e308}',
      '{"watch_everything": 1800000000001}',
    ];
    for (const value of garbage) {
      it(`a garbage stored value (${value}) is ignored and replaced: the page asks, and works`, async () => {
        const storage = new Storage();
        storage.items.set(relayKnowledgeKey(RELAY_URL), value);
        const clock = { ms: T0 };
        const page = await pageLoad(() => storage, clock);
        expect(page.relay.connections).toBe(3);
        expect(page.run.sessions.at(-1)).toEqual({ watch_agent_keys: "unknown", watch_audit: "unknown" });
        expect(JSON.parse(storage.items.get(relayKnowledgeKey(RELAY_URL)) ?? "null")).toEqual({
          watch_agent_keys: T0 + RELAY_KNOWLEDGE_TTL_MS,
          watch_audit: T0 + RELAY_KNOWLEDGE_TTL_MS,
        });
      });
    }

    const failing: [string, (s: Storage) => () => KnowledgeStorage][] = [
      [
        "localStorage itself throws (storage denied)",
        () => () => {
          throw new Error("SecurityError: storage is denied");
        },
      ],
      [
        "every read and write throws",
        (s) => {
          s.fails = new Set(["get", "set", "remove"]);
          return () => s;
        },
      ],
      [
        "writes throw (over quota)",
        (s) => {
          s.fails = new Set(["set"]);
          return () => s;
        },
      ],
    ];
    for (const [what, storageOf] of failing) {
      it(`when ${what}, the in-memory rule holds and the page works`, async () => {
        const storage = new Storage();
        const clock = { ms: T0 };
        const relay = olderRelay();
        const run = connect(relay, { storage: storageOf(storage), now: () => clock.ms });
        await online(run);
        expect(relay.connections).toBe(3);
        expect(run.connection.knowledge.unknownRequests()).toEqual(["watch_agent_keys", "watch_audit"]);
        // A drop: still not asked, from memory.
        relay.dropAll();
        await vi.waitFor(() => expect(relay.connections).toBe(4), { timeout: 5_000, interval: 5 });
        await online(run);
        expect(relay.asked("watch_agent_keys")).toBe(1);
        expect(relay.asked("watch_audit")).toBe(1);
        run.connection.stop();
        expect(storage.items.size).toBe(0);
      });
    }
  });
});
