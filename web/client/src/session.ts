/**
 * An authenticated session with the relay over one WebSocket (PROTOCOL §13.1), the twin of
 * `client/src/session.rs`: the challenge answered with the account's signature, the relay key
 * pinned, requests matched with their responses by id, pushes handed to a listener.
 *
 * `Connection` keeps a session alive: when the socket closes it reconnects with exponential
 * backoff (with jitter), and tells its listener, which resynchronises from its cursors (pushes
 * are not queued for offline accounts, §13.11). The WebSocket constructor is injected, so the
 * same code runs in a page and under Node.
 *
 * **The older-relay rule (§13.5).** The pushes a client asks for per connection (`watch_audit`,
 * `watch_agent_keys`) are newer than some relays. A relay that does not know such a request
 * answers it `bad_field`, or, older still, closes the connection as a malformed frame (4102).
 * `Session.watch` asks, and tells those answers apart from any other failure: the close counts
 * only with code 4102 while the watch request was waiting for its answer. What a relay showed
 * it does not know is kept in the `RelayKnowledge` its `Connection` shares with every session
 * it opens (one relay URL, for as long as the client lives), so it is never asked again there;
 * the connection lost to such a close is opened again at once, without backoff (this loses at
 * most one connection per request kind). The caller keeps working without the push: it reads
 * on a timer and at the next event instead. Given a storage (the origin's `localStorage` in a
 * page), the knowledge is also kept there for `RELAY_KNOWLEDGE_TTL_MS`, keyed by the relay URL,
 * so neither a reload nor another tab of the origin behind an older relay asks again (one
 * connection per request kind and hour for the whole origin, not one per tab or page load; a
 * tab already open reads what another tab learned before its next session asks), while a relay
 * upgraded meanwhile is asked again once the hour is over. Storage that cannot be had, read or
 * written, or holds anything but what this module wrote, is ignored: the knowledge then lives
 * in memory only, as without storage.
 */
import { IdentityKeys, labels, ProtocolError, Writer, decodeFrame, encodeFrame, equal, requestFrame, type Envelope, type IdentityCard } from "@sealdesk/protocol";
import { authFrame, requestToCbor, serverFrameFromCbor, type Push, type Request, type Response, type ServerFrame } from "./frames.js";

/** The part of the DOM `WebSocket` this module uses. */
export interface SocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

/** `WebSocket.OPEN`: the only state a socket sends in. */
const SOCKET_OPEN = 1;

/** Opens a socket to `url` (`(url) => new WebSocket(url)` in a page). */
export type SocketFactory = (url: string) => SocketLike;

/** Why a session operation failed. */
export type SessionFailure = "closed" | "timeout" | "relay_key_changed" | "unexpected" | "auth_refused";

/** A session operation failed; `failure` says how. */
export class SessionError extends Error {
  constructor(
    readonly failure: SessionFailure,
    detail?: string,
  ) {
    super(detail === undefined ? failure : `${failure}: ${detail}`);
    this.name = "SessionError";
  }
}

/** The relay answered `error`; `code` is its error code (§13.8). */
export class RelayError extends Error {
  constructor(
    readonly code: string,
    readonly detail: string,
  ) {
    super(`relay refused: ${code}: ${detail}`);
    this.name = "RelayError";
  }
}

/** The requests for pushes a client makes once per connection, and a relay may be too old to know (§13.5). */
export type WatchRequest = "watch_audit" | "watch_agent_keys";

/**
 * The close code of a relay that read a frame it could not decode (§13.6): what a relay older
 * than a `WatchRequest` closes the connection with when asked it.
 */
export const CLOSE_BAD_FRAME = 4102;

/** What asking for pushes came to (`Session.watch`). */
export type WatchOutcome =
  /** The relay said `ok`: it pushes on this session from now on. */
  | "watching"
  /** The relay does not know the request (it answered `bad_field`, or closed with 4102), now or before: not asked again. */
  | "unknown"
  /** Not watching on this session for another reason (another refusal, a timeout, a lost connection): the next session asks again. */
  | "not_now";

/** The part of the DOM `Storage` (a page's `localStorage`) that `RelayKnowledge` uses. */
export interface KnowledgeStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/**
 * Where `RelayKnowledge` keeps what a relay showed it does not know beyond the page: `storage`
 * gives the storage (it may throw: a page whose storage is denied), `now` the time in ms.
 */
export interface KnowledgeStore {
  storage: () => KnowledgeStorage;
  now: () => number;
}

/** How long what a relay showed it does not know is kept in storage (then the relay is asked again). */
export const RELAY_KNOWLEDGE_TTL_MS = 60 * 60 * 1000;

/** The storage key of what the relay at `url` showed it does not know. */
export function relayKnowledgeKey(url: string): string {
  return `sealdesk/relay-does-not-know/${url}`;
}

const WATCH_REQUESTS: readonly WatchRequest[] = ["watch_audit", "watch_agent_keys"];

/**
 * What one relay showed it does not know (§13.5, the older-relay rule): a `Connection` keeps
 * one and shares it with every session it opens to its URL. Learned here, it is kept for as long
 * as the client lives; with a `KnowledgeStore`, it is also stored (`{ "<request>": <expiry in
 * ms> }` under `relayKnowledgeKey(url)`) and read back, until its expiry, by every client on
 * that storage: the next page, another tab (shared storage, so each write merges with what is
 * stored), and this one before each question (another tab may have learned it meanwhile).
 */
export class RelayKnowledge {
  private readonly unknown = new Set<WatchRequest>();
  /** What storage said, when this was made and at each question since: a request, and when that knowledge expires (ms). */
  private readonly stored = new Map<WatchRequest, number>();

  constructor(
    private readonly url = "",
    private readonly store: KnowledgeStore | null = null,
  ) {
    this.readStored();
  }

  /** Merges what storage says now into `stored`: never cleared, so storage that fails now does not forget what it said before. */
  private readStored(): void {
    for (const [kind, until] of Object.entries(this.read())) this.stored.set(kind as WatchRequest, until);
  }

  /**
   * Whether the relay showed it does not know `kind` (here, or in storage not yet expired: read
   * again, as another tab on the same storage may have learned it since).
   */
  doesNotKnow(kind: WatchRequest): boolean {
    if (this.unknown.has(kind)) return true;
    this.readStored();
    const until = this.stored.get(kind);
    return until !== undefined && this.now() < until;
  }

  /** Notes that the relay does not know `kind` (and stores it, when it can). */
  learn(kind: WatchRequest): void {
    this.unknown.add(kind);
    if (this.store === null) return;
    const kept = this.read();
    kept[kind] = this.now() + RELAY_KNOWLEDGE_TTL_MS;
    try {
      this.store.storage().setItem(relayKnowledgeKey(this.url), JSON.stringify(kept));
    } catch {
      // Denied, or over quota: kept in memory only.
    }
  }

  /** The requests the relay showed it does not know, in the order learned, then those stored. */
  unknownRequests(): WatchRequest[] {
    return [...new Set([...this.unknown, ...WATCH_REQUESTS.filter((k) => this.doesNotKnow(k))])];
  }

  private now(): number {
    return this.store?.now() ?? 0;
  }

  /**
   * The stored knowledge not yet expired; nothing when there is no storage, it cannot be read,
   * or it holds anything else (then it is removed, so a garbage value does not stay).
   */
  private read(): Partial<Record<WatchRequest, number>> {
    if (this.store === null) return {};
    let raw: string | null;
    let storage: KnowledgeStorage;
    try {
      storage = this.store.storage();
      raw = storage.getItem(relayKnowledgeKey(this.url));
    } catch {
      return {};
    }
    if (raw === null) return {};
    const now = this.now();
    const kept: Partial<Record<WatchRequest, number>> = {};
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      value = null;
    }
    const valid =
      value !== null &&
      typeof value === "object" &&
      !Array.isArray(value) &&
      Object.entries(value).every(
        // An expiry further than the TTL from now was not written by this rule (or the clock
        // went back): not trusted, or a garbage value could keep a relay unasked for ever.
        ([k, v]) => (WATCH_REQUESTS as readonly string[]).includes(k) && typeof v === "number" && Number.isFinite(v) && v <= now + RELAY_KNOWLEDGE_TTL_MS,
      );
    if (!valid) {
      try {
        storage.removeItem(relayKnowledgeKey(this.url));
      } catch {
        // Left as it is: it is ignored at every read.
      }
      return {};
    }
    for (const [k, v] of Object.entries(value as Record<string, number>)) if (v > now) kept[k as WatchRequest] = v;
    return kept;
  }
}

/** How long the handshake and a request may take. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
/** How long a request may wait for its response. */
export const REQUEST_TIMEOUT_MS = 15_000;

/**
 * What a `send` that timed out says (`sendEnvelope`): its fate is unknown, and the tab that
 * reads this must not take it for "not sent".
 */
export const SEND_UNANSWERED = "the relay did not answer this message in time: it may still have been stored, and shows in the conversation once it is read again (its counter is never used again)";

/**
 * Sends one sealed message (`send`) over `s` and waits for the answer, at most `timeoutMs`. A
 * send left unanswered closes `s`: its frame may still reach the relay, and nothing more goes
 * out behind it — the next send goes on the next session, and that session's sync reads the
 * message back if the relay stored it (the relay never pushes an item to the connection that
 * sent it, §13.11, so on `s` it would never show). The counter stays burnt: it was persisted
 * before sealing. See ARCHITECTURE.md, "a send that times out".
 *
 * # Errors
 * A `SessionError` `timeout` with `SEND_UNANSWERED` when no answer came; the session's other
 * errors (`closed`). A refusal is returned as the `error` response, not thrown.
 */
export async function sendEnvelope(s: Session, envelope: Envelope, timeoutMs = REQUEST_TIMEOUT_MS): Promise<Response> {
  // Told before the frame goes out (a page keeps the message's identity with its text, to know
  // it again in the history after a reload); a failure there sends nothing.
  await s.beforeSend(envelope);
  try {
    return await s.request({ kind: "send", envelope }, timeoutMs);
  } catch (e) {
    if (!(e instanceof SessionError) || e.failure !== "timeout") throw e;
    s.close();
    throw new SessionError("timeout", SEND_UNANSWERED);
  }
}

/** The bytes an account signs to answer a challenge (§13.1). */
export function authSignedBytes(relayKey: Uint8Array, nonce: Uint8Array, account: Uint8Array): Uint8Array {
  return Writer.withLabel(labels.AUTH).fixed(relayKey).fixed(nonce).fixed(account).toBytes();
}

function toBytes(data: unknown): Uint8Array | null {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return null;
}

/** Pushes held between `welcome` and the session's listener (a handful at sign-in). */
const MAX_HELD_PUSHES = 64;

/** An authenticated session on one socket. */
export class Session {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: Response) => void; reject: (e: Error) => void; timer: ReturnType<typeof setTimeout> }>();
  private closedWith: string | null = null;
  /** The close code the socket closed with, once closed (`closeCode`). */
  private closedCode: number | null = null;
  /** The watch requests waiting for their answer, by request id (`watch`). */
  private readonly watches = new Map<number, WatchRequest>();
  /** The watch requests this session was closed on under the older-relay rule. */
  private lostOn: WatchRequest[] = [];
  /**
   * Called for every push, in arrival order. Until it is set, pushes are held (the relay may push
   * right after `welcome`, e.g. a `quota_warning`, §13.12, in the same read as the welcome):
   * `takeHeld` hands them on.
   */
  onPush: (p: Push) => void = (p) => {
    if (this.held.length < MAX_HELD_PUSHES) this.held.push(p);
  };
  private held: Push[] = [];
  /** Called once when the socket closes (after pending requests are failed). */
  onClose: (reason: string) => void = () => {};
  /** Called when a frame from the relay does not decode (the session then closes). */
  onBadFrame: (e: Error) => void = () => {};
  /**
   * Awaited by `sendEnvelope` with each sealed message just before its frame goes out (its
   * counter taken and persisted already): `ConnectionListener.sending`. A rejection sends nothing.
   */
  beforeSend: (envelope: Envelope) => Promise<void> = () => Promise.resolve();

  private constructor(
    private readonly socket: SocketLike,
    /** The relay's key, as its challenge presented it (pinned by the caller). */
    readonly relayKey: Uint8Array,
    /** Whether the card was registered on the relay at authentication. */
    private registeredAtAuth: boolean,
    /** What this relay showed it does not know (shared by the sessions of one `Connection`). */
    readonly knowledge: RelayKnowledge,
  ) {}

  /** The registration asked for on this session, once (`register`). */
  private registering: Promise<void> | null = null;

  /**
   * Whether the relay serves this session as a registered account: the card was registered at
   * authentication, or `register` registered it since.
   */
  get registered(): boolean {
    return this.registeredAtAuth;
  }

  /**
   * Registers the session's card on the relay unless it is known there already (PROTOCOL §13.3):
   * every request but `register` and `get_recovery` needs it. Idempotent: the relay answers `ok`
   * for a card it holds (another tab, a reload after the registration), and `key_registered` is
   * taken as registered too; concurrent calls share one request.
   *
   * # Errors
   * A `RelayError` for a refusal (`name_taken`, `rate_limited`, …), a `SessionError` when the
   * answer did not come (the next call asks again).
   */
  register(): Promise<void> {
    if (this.registeredAtAuth) return Promise.resolve();
    this.registering ??= this.request({ kind: "register" })
      .then((r) => {
        if (r.kind === "error" && r.code !== "key_registered") throw new RelayError(r.code, r.message);
        this.registeredAtAuth = true;
      })
      .finally(() => {
        this.registering = null;
      });
    return this.registering;
  }

  /**
   * Connects to `url`, answers the challenge as `keys`/`card`, and waits for `welcome`. A relay
   * presenting a key other than `pinnedRelayKey` (in the challenge or the welcome) is refused.
   * `knowledge` is what this relay showed before that it does not know (a `Connection`'s).
   */
  static connect(url: string, keys: IdentityKeys, card: IdentityCard, socketFactory: SocketFactory, pinnedRelayKey: Uint8Array | null, knowledge: RelayKnowledge = new RelayKnowledge()): Promise<Session> {
    return new Promise((resolve, reject) => {
      let socket: SocketLike;
      try {
        socket = socketFactory(url);
      } catch (e) {
        reject(new SessionError("closed", e instanceof Error ? e.message : "connect"));
        return;
      }
      socket.binaryType = "arraybuffer";
      let stage: "challenge" | "welcome" | "done" = "challenge";
      let relayKey: Uint8Array | null = null;
      const fail = (e: Error): void => {
        if (stage === "done") return;
        stage = "done";
        clearTimeout(timer);
        reject(e);
        try {
          socket.close(1000);
        } catch {
          /* already closed */
        }
      };
      const timer = setTimeout(() => fail(new SessionError("timeout", "handshake")), HANDSHAKE_TIMEOUT_MS);
      socket.onerror = () => {};
      socket.onclose = (ev) => fail(new SessionError("closed", `during the handshake (${ev.code} ${ev.reason})`));
      socket.onmessage = (ev) => {
        let frame: ServerFrame;
        try {
          const bytes = toBytes(ev.data);
          if (bytes === null) throw new ProtocolError("malformed", "a text message");
          frame = serverFrameFromCbor(decodeFrame(bytes));
        } catch (e) {
          fail(e instanceof Error ? e : new SessionError("unexpected"));
          return;
        }
        if (stage === "challenge") {
          if (frame.kind !== "challenge") return fail(new SessionError("unexpected", "the first frame was not a challenge"));
          if (pinnedRelayKey !== null && !equal(pinnedRelayKey, frame.relayKey)) return fail(new SessionError("relay_key_changed"));
          relayKey = frame.relayKey;
          // A challenge read while the socket is closing is answered by nothing: the close
          // event fails the handshake (a send now would be dropped, with the browser's
          // "already in CLOSING or CLOSED state" in the console).
          if (socket.readyState !== SOCKET_OPEN) return;
          const signature = keys.sign(authSignedBytes(frame.relayKey, frame.nonce, keys.signingPublic));
          socket.send(encodeFrame(authFrame(card, signature)));
          stage = "welcome";
        } else if (stage === "welcome") {
          if (frame.kind === "response" && frame.body.kind === "error") return fail(new RelayError(frame.body.code, frame.body.message));
          if (frame.kind !== "welcome" || relayKey === null) return fail(new SessionError("unexpected", "no welcome"));
          if (!equal(frame.logKey, relayKey)) return fail(new SessionError("relay_key_changed", "log key differs from the relay key"));
          stage = "done";
          clearTimeout(timer);
          const s = new Session(socket, relayKey, frame.registered, knowledge);
          s.attach();
          resolve(s);
        }
      };
    });
  }

  /** The pushes that arrived before `onPush` was set, in arrival order (once). */
  takeHeld(): Push[] {
    const held = this.held;
    this.held = [];
    return held;
  }

  private attach(): void {
    this.socket.onmessage = (ev) => {
      let frame: ServerFrame;
      try {
        const bytes = toBytes(ev.data);
        if (bytes === null) throw new ProtocolError("malformed", "a text message");
        frame = serverFrameFromCbor(decodeFrame(bytes));
      } catch (e) {
        this.onBadFrame(e instanceof Error ? e : new Error(String(e)));
        this.close();
        return;
      }
      if (frame.kind === "response") {
        const p = this.pending.get(frame.id);
        if (p === undefined) return;
        this.pending.delete(frame.id);
        this.watches.delete(frame.id);
        clearTimeout(p.timer);
        p.resolve(frame.body);
      } else if (frame.kind === "push") {
        this.onPush(frame.push);
      }
    };
    this.socket.onclose = (ev) => this.finish(`${ev.code} ${ev.reason}`.trim(), ev.code);
  }

  private finish(reason: string, code: number | null = null): void {
    if (this.closedWith !== null) return;
    this.closedWith = reason;
    this.closedCode = code;
    // The older-relay rule (§13.5): a malformed-frame close while a watch request waited for
    // its answer is that relay saying it does not know the request. Any other close (a drop,
    // a restart, a 4102 with no watch request waiting) teaches nothing.
    if (code === CLOSE_BAD_FRAME) {
      for (const kind of this.watches.values()) {
        this.knowledge.learn(kind);
        this.lostOn.push(kind);
      }
    }
    this.watches.clear();
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new SessionError("closed", reason));
    }
    this.pending.clear();
    this.onClose(reason);
  }

  /** Whether the socket has closed. */
  get closed(): boolean {
    return this.closedWith !== null;
  }

  /** The code of the close frame the socket closed with (1006 for a drop), or null while open. */
  get closeCode(): number | null {
    return this.closedCode;
  }

  /**
   * The watch requests this session was closed on because the relay does not know them (the
   * older-relay rule): non-empty only for a session closed with 4102 while one waited.
   */
  get lostToUnknown(): readonly WatchRequest[] {
    return this.lostOn;
  }

  /**
   * Asks the relay for the pushes of `kind` on this session (§13.5), under the older-relay rule:
   * a relay that showed before that it does not know `kind` is not asked; one that answers
   * `bad_field`, or closes the connection on it with 4102, is noted as not knowing it (the
   * session is then closed, and its `Connection` opens the next one at once). Never throws.
   */
  async watch(kind: WatchRequest): Promise<WatchOutcome> {
    if (this.knowledge.doesNotKnow(kind)) return "unknown";
    let r: Response;
    try {
      r = await this.send({ kind }, REQUEST_TIMEOUT_MS, kind);
    } catch {
      return this.knowledge.doesNotKnow(kind) ? "unknown" : "not_now";
    }
    if (r.kind === "ok") return "watching";
    if (r.kind === "error" && r.code === "bad_field") {
      this.knowledge.learn(kind);
      return "unknown";
    }
    return "not_now";
  }

  /** Sends `body` and waits for its response (an `error` response is returned, not thrown). */
  request(body: Request, timeoutMs = REQUEST_TIMEOUT_MS): Promise<Response> {
    return this.send(body, timeoutMs, null);
  }

  /** `request`, noting a watch request (`watch`) while it waits for its answer. */
  private send(body: Request, timeoutMs: number, watch: WatchRequest | null): Promise<Response> {
    if (this.closedWith !== null) return Promise.reject(new SessionError("closed", this.closedWith));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.watches.delete(id);
        reject(new SessionError("timeout", body.kind));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      if (watch !== null) this.watches.set(id, watch);
      // Closing but not yet closed: the close event, about to run, rejects this request with
      // the others waiting (a send now would be dropped, with the browser's "already in
      // CLOSING or CLOSED state" in the console).
      if (this.socket.readyState !== SOCKET_OPEN) return;
      try {
        this.socket.send(encodeFrame(requestFrame(id, requestToCbor(body))));
      } catch (e) {
        this.pending.delete(id);
        this.watches.delete(id);
        clearTimeout(timer);
        reject(e instanceof Error ? e : new SessionError("closed"));
      }
    });
  }

  /** Sends `body`; throws `RelayError` for an `error` response. */
  async call(body: Request): Promise<Response> {
    const r = await this.request(body);
    if (r.kind === "error") throw new RelayError(r.code, r.message);
    return r;
  }

  /** Closes the socket normally. */
  close(): void {
    try {
      this.socket.close(1000);
    } catch {
      /* already closed */
    }
    this.finish("closed by the client");
  }
}

/** The state a `Connection` shows. */
export type ConnectionState = "connecting" | "online" | "offline" | "stopped";

/** What a `Connection` tells its owner. */
export interface ConnectionListener {
  /** A session is up (the first, or again after a drop): resynchronise from the cursors here. */
  online(session: Session): Promise<void> | void;
  /** A push on the current session. */
  push(p: Push): void;
  /** The state changed. */
  state(s: ConnectionState, detail?: string): void;
  /** A fatal failure: the connection stops (a changed relay key, a refused authentication). */
  fatal(e: Error): void;
  /** A sealed message is about to go out on one of its sessions (`Session.beforeSend`). */
  sending?(envelope: Envelope): Promise<void>;
}

/** Backoff bounds for reconnecting. */
export const BACKOFF_MIN_MS = 250;
/** The longest wait between two attempts. */
export const BACKOFF_MAX_MS = 15_000;

/**
 * A session kept alive across drops, reconnecting with exponential backoff and jitter — at once,
 * without it, after a session lost under the older-relay rule (see the module docs).
 */
export class Connection {
  private session: Session | null = null;
  private stopped = false;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** Callers waiting for the next session (`next`); a handful at most (one per user action). */
  private waiting: { resolve: (s: Session) => void; reject: (e: Error) => void; timer: ReturnType<typeof setTimeout> }[] = [];
  /** The relay key, pinned on first contact. */
  relayKey: Uint8Array | null;
  /**
   * What this relay showed it does not know, kept for as long as this connection lives (and in
   * `knowledgeStore`, when given, for the browser session: `RelayKnowledge`).
   */
  readonly knowledge: RelayKnowledge;

  constructor(
    private readonly url: string,
    private readonly keys: IdentityKeys,
    private readonly card: IdentityCard,
    private readonly socketFactory: SocketFactory,
    private readonly listener: ConnectionListener,
    pinnedRelayKey: Uint8Array | null,
    private readonly random: () => number = Math.random,
    knowledgeStore: KnowledgeStore | null = null,
  ) {
    this.relayKey = pinnedRelayKey;
    this.knowledge = new RelayKnowledge(url, knowledgeStore);
  }

  /** Starts connecting. */
  start(): void {
    this.stopped = false;
    void this.connect();
  }

  /** The current session, when online. */
  current(): Session | null {
    return this.session !== null && !this.session.closed ? this.session : null;
  }

  /**
   * The current session, or the next one once it is authenticated (before its listener's
   * `online` has run): for an action whose session was closed under the older-relay rule, to go
   * on over the next one.
   *
   * # Errors
   * A `SessionError`: `timeout` when none comes within `timeoutMs`, `closed` when stopped.
   */
  next(timeoutMs = HANDSHAKE_TIMEOUT_MS): Promise<Session> {
    const s = this.current();
    if (s !== null) return Promise.resolve(s);
    if (this.stopped) return Promise.reject(new SessionError("closed", "stopped"));
    return new Promise((resolve, reject) => {
      const w = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiting = this.waiting.filter((x) => x !== w);
          reject(new SessionError("timeout", "no session"));
        }, timeoutMs),
      };
      this.waiting.push(w);
    });
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    this.listener.state("connecting");
    let s: Session;
    try {
      s = await Session.connect(this.url, this.keys, this.card, this.socketFactory, this.relayKey, this.knowledge);
    } catch (e) {
      if (e instanceof SessionError && e.failure === "relay_key_changed") return this.die(e);
      if (e instanceof RelayError) return this.die(e);
      this.retry(e instanceof Error ? e.message : "connect failed");
      return;
    }
    if (this.stopped) {
      s.close();
      return;
    }
    this.relayKey = s.relayKey;
    this.session = s;
    s.onPush = (p) => this.listener.push(p);
    s.beforeSend = (envelope) => this.listener.sending?.(envelope) ?? Promise.resolve();
    for (const p of s.takeHeld()) this.listener.push(p);
    s.onClose = (reason) => {
      if (this.session === s) this.session = null;
      const unknown = s.lostToUnknown;
      // The relay does not know a request this session asked (the older-relay rule): it is
      // never asked again here, so connecting again at once cannot loop.
      if (unknown.length > 0) this.again(`the relay does not know ${unknown.join(", ")}; connecting again without it`);
      else this.retry(reason);
    };
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) {
      clearTimeout(w.timer);
      w.resolve(s);
    }
    try {
      await this.listener.online(s);
      this.attempt = 0;
      if (!s.closed) this.listener.state("online");
    } catch (e) {
      if (!s.closed) {
        this.listener.fatal(e instanceof Error ? e : new Error(String(e)));
        this.stop();
      }
    }
  }

  private die(e: Error): void {
    this.listener.fatal(e);
    this.stop();
  }

  /** Connects again now, without backoff (the attempts count is kept). */
  private again(reason: string): void {
    if (this.stopped || this.timer !== null) return;
    this.listener.state("offline", reason);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.connect();
    }, 0);
  }

  private retry(reason: string): void {
    if (this.stopped || this.timer !== null) return;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    const wait = Math.round(base / 2 + (this.random() * base) / 2);
    this.attempt = Math.min(this.attempt + 1, 16);
    this.listener.state("offline", `${reason}; retrying in ${(wait / 1000).toFixed(1)} s`);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.connect();
    }, wait);
  }

  /** Stops for good: closes the session and cancels any retry. */
  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.session?.close();
    this.session = null;
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) {
      clearTimeout(w.timer);
      w.reject(new SessionError("closed", "stopped"));
    }
    this.listener.state("stopped");
  }
}

export type { IdentityKeys };
