/**
 * What every member of a conversation runs the same way, customer (`customer.ts`) or agent
 * (`agent.ts`): the account kept in the `Store`, the `Connection` kept alive (the relay key
 * pinned on first contact, the card registered at sign-in or on first need), events told to
 * listeners, the send lock, the per-epoch counters persisted before sealing (§9.3), and
 * `SyncedConversation`, one conversation read from the relay: history from the cursor, pushes
 * that arrive during a sync held back until it ends, every item handled once per sequence
 * number, delivery marks sent.
 *
 * A member class extends `Member` and implements `resume` (what to read again once a session is
 * up, the first time or after a drop: pushes are not queued for offline accounts, §13.11) and
 * `onPush`; it keeps one `SyncedConversation` per conversation it reads.
 */
import { IdentityKeys, ProtocolError, cardFromCbor, cardToCbor, fromCbor, toCbor, type Envelope, type IdentityCard } from "@sealdesk/protocol";
import type { SequenceHoles } from "./customer-holes.js";
import type { Push, Sequenced, SkippedRange } from "./frames.js";
import { Paging, PagingError } from "./paging.js";
import { QuotaSeen } from "./quota-seen.js";
import { Connection, SessionError, type ConnectionState, type KnowledgeStorage, type Session, type SocketFactory } from "./session.js";
import { storeSendLock } from "./send-lock.js";
import { RECORDS, type Store } from "./store.js";

/** The events every member tells its view. */
export type MemberEvent = { kind: "state"; state: ConnectionState; detail?: string } | { kind: "error"; error: Error };

/** What every member is set up with. */
export interface MemberOptions {
  /** The relay's WebSocket URL (`ws://host/v1/ws`). */
  url: string;
  store: Store;
  socket: SocketFactory;
  /** Randomness (`crypto.getRandomValues`). */
  random: (n: number) => Uint8Array;
  /** Seconds since the epoch. */
  now: () => number;
  /**
   * Runs `f` while holding the send lock (Web Locks in a page: one tab seals at a time). It is
   * held from a counter's reservation to the relay's answer. Absent, the store's lock in this
   * realm is taken (`storeSendLock`): enough for any number of members on one `Store` object,
   * not for tabs or processes sharing the store's data.
   */
  withSendLock?: <T>(f: () => Promise<T>) => Promise<T>;
  /**
   * Where what the relay showed it does not know is kept beyond the page (`() => localStorage`
   * in a page: neither a reload nor another tab of the origin behind an older relay asks again;
   * `RelayKnowledge`). It may throw; absent or failing, that knowledge lives as long as the page.
   */
  relayMemory?: () => KnowledgeStorage;
  /**
   * How long a send waits for the relay's answer (ms; default `REQUEST_TIMEOUT_MS`, 15 s). One
   * left unanswered closes its session (`sendEnvelope`).
   */
  sendTimeoutMs?: number;
}

/**
 * What identifies one sealed message in its conversation (PROTOCOL §9.3): its epoch, its
 * sender's signing key and the sender's counter in that epoch — never used twice — and when it
 * was sealed.
 */
export interface SealedText {
  epoch: number;
  sender: Uint8Array;
  counter: number;
  sentAt: number;
}

/** An account: its keys and its card. */
export interface Account {
  keys: IdentityKeys;
  card: IdentityCard;
}

/** How many items one history request asks for. */
export const HISTORY_PAGE = 200;

/**
 * The account kept in `store` (`RECORDS.identity`: `{ secret, card }`), or `undefined` when it
 * holds none. The secret bytes read are wiped once the keys are made from them.
 *
 * # Errors
 * A `ProtocolError` (`malformed`) when the record is damaged.
 */
export async function readAccount(store: Store): Promise<Account | undefined> {
  const stored = await store.get(RECORDS.identity);
  if (stored === undefined) return undefined;
  const m = fromCbor(stored);
  if (m === null || typeof m !== "object" || m instanceof Uint8Array || Array.isArray(m) || !(m.secret instanceof Uint8Array)) throw new ProtocolError("malformed", "stored account");
  const keys = IdentityKeys.fromSecretBytes(m.secret);
  m.secret.fill(0);
  return { keys, card: cardFromCbor(m.card ?? null) };
}

/** Keeps `keys` and `card` in `store` as the account (the secret bytes are wiped after). */
export async function writeAccount(store: Store, keys: IdentityKeys, card: IdentityCard): Promise<void> {
  const secret = keys.toSecretBytes();
  try {
    await store.put(RECORDS.identity, toCbor({ secret, card: cardToCbor(card) }));
  } finally {
    secret.fill(0);
  }
}

/** The number kept under `key` (a counter, a mark), or 0. */
export async function readNumber(store: Store, key: string): Promise<number> {
  const b = await store.get(key);
  if (b === undefined) return 0;
  const v = fromCbor(b);
  return typeof v === "number" ? v : 0;
}

/** Raises the number under `key` to at least `next` (never lowers it). */
export async function raiseNumber(store: Store, key: string, next: number): Promise<void> {
  if ((await readNumber(store, key)) < next) await store.put(key, toCbor(next));
}

/**
 * Takes the next counter kept under `key`: the counter returned is persisted as used before this
 * resolves, so a crash burns it and never reuses it (§9.3). Call it under the send lock.
 */
export async function takeCounter(store: Store, key: string): Promise<number> {
  const counter = await readNumber(store, key);
  await store.put(key, toCbor(counter + 1));
  return counter;
}

/** An error as an `Error`. */
export function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

/** A member of conversations, connected to one relay as one account. */
export abstract class Member<E extends { kind: string }, O extends MemberOptions = MemberOptions> {
  private readonly listeners = new Set<(e: E | MemberEvent) => void>();
  /** The connection, once `start` has run. */
  protected conn: Connection | null = null;
  /** The stored-bytes quota warnings told so far, each told once (`quota-seen.ts`). */
  protected readonly quotaSeen = new QuotaSeen();

  protected constructor(
    protected readonly opts: O,
    /** The account's keys. */
    readonly keys: IdentityKeys,
    /** The account's card. */
    readonly card: IdentityCard,
  ) {}

  /** Told each text message the send under way seals, before it goes out (`sealingText`). */
  private sealedText: ((sealed: SealedText) => Promise<void>) | null = null;

  /** Listens to events; returns the function that stops listening. */
  on(f: (e: E | MemberEvent) => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  /** Tells every listener. */
  protected emit(e: E | MemberEvent): void {
    for (const f of this.listeners) f(e);
  }

  /** Tells the listeners of an error that stops nothing. */
  protected fail(error: unknown): void {
    this.emit({ kind: "error", error: asError(error) });
  }

  /** Connects (and reconnects) to the relay, with the relay key pinned in the store if any. */
  start(): void {
    if (this.conn !== null) return;
    void this.opts.store.get(RECORDS.relayKey).then((pinned) => {
      this.conn = new Connection(
        this.opts.url,
        this.keys,
        this.card,
        this.opts.socket,
        {
          online: (s) => this.online(s),
          push: (p) => this.onPush(p),
          state: (state, detail) => this.emit(detail === undefined ? { kind: "state", state } : { kind: "state", state, detail }),
          fatal: (error) => this.emit({ kind: "error", error }),
          sending: (envelope) => this.sending(envelope),
        },
        pinned ?? null,
        Math.random,
        this.opts.relayMemory === undefined ? null : { storage: this.opts.relayMemory, now: () => this.opts.now() * 1000 },
      );
      this.conn.start();
    });
  }

  /** Disconnects for good. */
  stop(): void {
    this.conn?.stop();
    this.conn = null;
  }

  /** The current session, or null when offline. */
  protected current(): Session | null {
    return this.conn?.current() ?? null;
  }

  /**
   * The current session.
   *
   * # Errors
   * A `SessionError` (`closed`) when offline.
   */
  protected session(): Session {
    const s = this.current();
    if (s === null) throw new SessionError("closed", "offline");
    return s;
  }

  /**
   * The current session, or the next one once it is up: an action whose session the relay
   * closed under the older-relay rule goes on over the next (`Connection.next`).
   *
   * # Errors
   * A `SessionError` when none comes in time, or the member is stopped.
   */
  protected nextSession(): Promise<Session> {
    return this.conn === null ? Promise.reject(new SessionError("closed", "offline")) : this.conn.next();
  }

  /**
   * Runs `f` holding the send lock: the host's (a Web Lock in a page), else the store's in this
   * realm (`storeSendLock`), never none — two sends interleaved between reading and writing a
   * counter would seal two messages under one.
   */
  protected withSendLock<T>(f: () => Promise<T>): Promise<T> {
    return (this.opts.withSendLock ?? storeSendLock(this.opts.store))(f);
  }

  /**
   * Runs `f`, a send of one text message, with the send lock held by the caller: `sealed`, when
   * given, is told the identity of each message `f` seals (epoch, sender, counter), awaited
   * before its frame goes out (a second one replaces the first only after the relay refused it).
   * Under the send lock no other send of this member runs meanwhile, so nothing else is told.
   */
  protected async sealingText<T>(sealed: ((s: SealedText) => Promise<void>) | undefined, f: () => Promise<T>): Promise<T> {
    this.sealedText = sealed ?? null;
    try {
      return await f();
    } finally {
      this.sealedText = null;
    }
  }

  /** A sealed message is about to go out (`Session.beforeSend`): told to `sealingText`'s caller, if one runs. */
  private async sending(envelope: Envelope): Promise<void> {
    const h = envelope.header;
    if (this.sealedText === null) return;
    await this.sealedText({ epoch: h.epoch, sender: h.sender, counter: h.counter, sentAt: h.sentAt });
  }

  /**
   * A session is up: the relay key pinned on first contact, the card registered when this member
   * registers at sign-in (`registersAtSignIn`), then `resume`.
   */
  private async online(s: Session): Promise<void> {
    if ((await this.opts.store.get(RECORDS.relayKey)) === undefined) await this.opts.store.put(RECORDS.relayKey, s.relayKey);
    if (this.registersAtSignIn()) await s.register();
    await this.resume(s);
  }

  /**
   * Whether the card is registered as soon as a session is up (an agent: it is certified, and
   * everything it does needs it). A member that says no registers on its first request that
   * needs a registered card (`Session.register`, before that request): a customer, whose
   * widget must not leave an account on the relay for a visitor who never writes, or who
   * recovers another account instead.
   */
  protected registersAtSignIn(): boolean {
    return true;
  }

  /** Reads again what this member follows, once a session is up (the first or after a drop). */
  protected abstract resume(s: Session): Promise<void>;

  /** A push on the current session. */
  protected abstract onPush(p: Push): void;
}

/**
 * One conversation as a member reads it: the cursor (the highest sequence number handled), each
 * item handled once (pushes and history pages overlap after a reconnect), pushes that arrive
 * while a history sync runs held back until it ends (so an epoch record is always handled
 * before the messages under it), and pushes handled one after another in arrival order.
 *
 * The cursor moves when an item is claimed, before its handling ends (an epoch record's policy
 * and secret are still being read). Items claimed through `once` are tracked until handled: a
 * push is taken as the next item, and a sync ends, only once those are done (`settled`). An
 * item handled elsewhere — a tab's stored items read back, another device's epoch record pushed
 * while this one sends — is never overtaken by the message after it, and a sync that returns has
 * every item up to the cursor handled.
 */
export class SyncedConversation {
  /** The highest sequence number handled. */
  cursor = 0;
  private readonly handled = new Set<number>();
  private syncing: Promise<void> | null = null;
  private queued: Sequenced[] = [];
  private chain: Promise<void> = Promise.resolve();
  /** The handlings claimed through `once` and not yet ended. */
  private readonly handling = new Set<Promise<void>>();

  constructor(
    /** The conversation's id. */
    readonly id: Uint8Array,
    /** Handles one item (after `claim`ed it; it may `release` it to be handled again later). */
    private readonly ingest: (it: Sequenced) => Promise<void>,
    /** The error for an answer of the wrong kind (`kind` is what came). */
    private readonly badAnswer: (kind: string) => Error,
    /**
     * The holes of a reader that checks the runs its pages skip and their head (§13.10, an
     * agent): restored from its record before the first read, each page's fields shown to it,
     * each item handled seen there, each run named passed to it (the cursor moves past the
     * run), each last page's head told, kept after each sync and push. Without it, runs and
     * head are not read.
     */
    readonly holes?: SequenceHoles,
    /** Told when a sync stops at `MAX_SYNC_PAGES` pages (what was read is kept; the next sync goes on). */
    private readonly warn?: (e: PagingError) => void,
  ) {}

  /** Whether a history sync runs now. */
  get isSyncing(): boolean {
    return this.syncing !== null;
  }

  /**
   * Claims item `seq` for handling: false when it was handled already; else it counts as
   * handled from now and the cursor moves past it.
   */
  claim(seq: number): boolean {
    if (this.handled.has(seq)) return false;
    this.handled.add(seq);
    this.holes?.saw(seq);
    this.cursor = Math.max(this.cursor, seq);
    return true;
  }

  /**
   * Handles item `seq` once (`claim`): `work` runs unless the item was claimed already, and
   * `settled` waits for it until it ends.
   */
  async once(seq: number, work: () => Promise<void>): Promise<void> {
    if (!this.claim(seq)) return;
    const handled = work();
    this.handling.add(handled);
    try {
      await handled;
    } finally {
      this.handling.delete(handled);
    }
  }

  /**
   * Resolves once every item claimed through `once` so far, and any claimed meanwhile, has been
   * handled (its outcome, an error too, is its caller's). Never awaited from inside a `once`.
   */
  async settled(): Promise<void> {
    while (this.handling.size > 0) await Promise.allSettled([...this.handling]);
  }

  /** A run a page skips: judged by the holes, and the cursor moved past it. */
  private pass(run: SkippedRange | undefined): void {
    if (run === undefined || this.holes === undefined) return;
    this.holes.skipped(run);
    this.cursor = Math.max(this.cursor, run.to);
  }

  /** Lets item `seq` be handled again (it could not be, yet: checked on the next sync). */
  release(seq: number): void {
    this.handled.delete(seq);
  }

  /**
   * Reads the history after the cursor page by page, tells the relay what was received, then
   * handles the pushes held back meanwhile. A call while a sync runs waits for that one.
   *
   * # Errors
   * The session's errors; `badAnswer` for an answer that is not `items`.
   */
  async sync(s: Session): Promise<void> {
    if (this.syncing !== null) return this.syncing;
    this.syncing = (async () => {
      await this.holes?.restore();
      // An item claimed before (a push, a stored item read back) is handled before those after it.
      await this.settled();
      // Bounded (`paging.ts`): to the head the first page names, at most MAX_SYNC_PAGES pages.
      const paging = new Paging(this.cursor);
      for (;;) {
        const after = this.cursor;
        const r = await s.call({ kind: "history", conversation: this.id, after, limit: HISTORY_PAGE });
        if (r.kind !== "items") throw this.badAnswer(r.kind);
        this.holes?.page(r.skipped, r.head);
        // In sequence order, items and skipped runs: a run is judged with what came before it
        // (an epoch record listed earlier in the page).
        const runs = this.holes === undefined ? [] : [...r.skipped].sort((a, b) => a.from - b.from);
        let next = 0;
        for (const it of [...r.items].sort((a, b) => a.seq - b.seq)) {
          for (; next < runs.length && (runs[next]?.from ?? 0) < it.seq; next++) this.pass(runs[next]);
          await this.ingest(it);
        }
        for (; next < runs.length; next++) this.pass(runs[next]);
        if (!r.more && r.head !== undefined) this.holes?.head(r.head);
        const end = [...r.items.map((it) => it.seq), ...r.skipped.map((run) => run.to)].reduce<number | undefined>((m, x) => (m === undefined || x > m ? x : m), undefined);
        const step = paging.next(after, end, this.cursor, r.more, r.head);
        if (step.kind === "after") continue;
        if (step.kind === "budget") this.warn?.(new PagingError(paging.budgetDetail(this.cursor)));
        break;
      }
      await this.holes?.flush();
      this.delivered(s);
      // The pushes held back meanwhile, still as part of the sync: one that arrives while they
      // are handled is held back too and handled after them, never beside them (handled beside
      // them, a message overtook its epoch record while that record's policy was being read,
      // and was refused for want of it).
      for (let queued = this.takeQueued(); queued.length > 0; queued = this.takeQueued()) {
        for (const q of queued) await this.ingest(q);
        // Received too: tell the relay (the mark sent above did not cover them, and no later
        // push may come to send it).
        this.delivered(s);
      }
      // Claimed elsewhere meanwhile: handled too before the sync says the conversation is read.
      await this.settled();
    })();
    try {
      await this.syncing;
    } finally {
      this.syncing = null;
    }
  }

  /** The pushes held back so far, in the order they came; none are left held. */
  private takeQueued(): Sequenced[] {
    const queued = this.queued;
    this.queued = [];
    return queued;
  }

  /**
   * A pushed item of this conversation: held back while a sync runs, else handled after the
   * pushes before it; then `after` runs and the relay is told it was received (on `session()`,
   * when online). An error goes to `fail`.
   *
   * A push that is not the next item after the cursor is not handled alone: the history from the
   * cursor is read first, this item with it: a push can be lost (the relay does not queue them
   * for a connection that was away, and a slow reader's are cut off), and handling the push alone
   * would move the cursor past the items before it, which no later sync would read. What another
   * device of this account appended (the CLI's epoch record and message, say) is pushed like any
   * member's item (§13.11) and handled as this account's own.
   */
  push(item: Sequenced, session: () => Session | null, fail: (e: unknown) => void, after?: () => void): void {
    if (this.syncing !== null) {
      this.queued.push(item);
      return;
    }
    this.chain = this.chain
      .then(async () => {
        const s = session();
        await this.holes?.restore();
        // The item before it may be claimed and still being handled elsewhere: it is not the
        // next one until that ends (else a message overtakes its epoch record).
        await this.settled();
        if (item.seq > this.cursor + 1 && s !== null) await this.sync(s);
        // Handled by the sync already, in order, unless the history did not hold it (claimed once).
        await this.ingest(item);
        await this.holes?.flush();
      })
      .then(() => {
        after?.();
        const s = session();
        if (s !== null) this.delivered(s);
      })
      .catch(fail);
  }

  /**
   * An item this member stored itself (its message, an epoch record it made), handled as any
   * other item and resolved once handled (issue 20): in turn with the pushes taken before it
   * (one after another, as `push`), after a sync that runs now (it may have read its last page
   * before the item was stored), after the items claimed elsewhere and still being handled
   * (`settled`), and, when it is not the next item after the cursor, with the history from the
   * cursor read first. Handled once: a push of it (another tab's connection is pushed it; in a
   * cluster, rarely, this one) or a sync that meets it finds it claimed, and it never overtakes
   * an item before it whose handling has not ended.
   *
   * # Errors
   * The sync's (the session's errors, `badAnswer`); the ingest's.
   */
  stored(item: Sequenced, s: Session): Promise<void> {
    const step = this.chain.then(async () => {
      await this.holes?.restore();
      // Its outcome is its caller's; this item is read below if that sync missed it.
      if (this.syncing !== null) await this.syncing.catch(() => undefined);
      await this.settled();
      if (item.seq > this.cursor + 1) await this.sync(s);
      // Handled by the sync already, in order, unless the history did not hold it (claimed once).
      await this.ingest(item);
      await this.holes?.flush();
    });
    // The pushes after it wait for it, whatever its outcome (that is the caller's).
    this.chain = step.catch(() => undefined);
    return step;
  }

  /** Tells the relay this device received everything up to the cursor (§13.11); best effort. */
  delivered(s: Session): void {
    if (this.cursor > 0) void s.request({ kind: "delivered", conversation: this.id, seq: this.cursor }).catch(() => undefined);
  }
}

