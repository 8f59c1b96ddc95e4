/**
 * Sends the relay did not answer in time (`SEND_UNANSWERED`), as the widget and the console show
 * them: the way chat apps show a message whose delivery is unknown — in the log, as the sender's
 * own line marked "not confirmed yet", never as refused, and never with the text put back in the
 * box as if to be sent again (its counter is burnt; a second send is a second message).
 *
 * **Kept across a reload.** Each text sent is kept in the client's store (`RECORDS.pendingPrefix`;
 * in the browser the encrypted IndexedDB store, never in the clear) from just before it is
 * sealed, and what identifies the message sealed — its epoch, its sender's key and counter — is
 * written before its frame goes out (`Customer.send`'s and `Agent.send`'s `sealed`). The record
 * goes once the relay answers `stored`, the send is refused (the text goes back to the box), a
 * read shows the message, or the user dismisses it. A page that opens finds the ones left by
 * the page before it: those sealed are shown "not confirmed yet" and settled as below; one
 * never sealed (the page went before it was sent, or it was waiting for a session) was not
 * sent, and says so with its text and "Send again". The records of another tab still open (its
 * Web Lock held, `pageLock`) are left to it: its answer may still come.
 *
 * **Settled by its identity.** Once a new session is up, its read is done (`Connection` says
 * `online` after it): the line read back with the send's (epoch, sender, counter) — this
 * account's own, the same text — marks it sent; a counter is never sealed twice, so no other
 * message of the account (another device's, of the same words in the same second) can. None
 * found, it was not stored, and the page says so with a "Send again" button — sent again only
 * when pressed, as a new message. A line that comes later still (the old connection's frame
 * stored after the new read) marks it sent all the same. Until one of those, the text stays in
 * the log, to be read and copied.
 *
 * **Written while reconnecting.** A message written while the page has no session (after an
 * unanswered send closed it, or a drop) waits in the log, "Sending once reconnected", kept in
 * the store like the rest; once a session is up they go out one after another in the order
 * written (the page's `SendQueue`), each once. The connection stopped for good, or the page
 * reloaded meanwhile, they are shown not sent, text kept, with "Send again".
 */
import { equal, fromCbor, toCbor, toHex, type CborValue } from "@sealdesk/protocol";
import type { SealedText } from "../member.js";
import { RelayError, SEND_UNANSWERED, SessionError } from "../session.js";
import { RECORDS, type Store } from "../store.js";
/** What `Member.session()` throws with no session: thrown before anything is sealed. */
const OFFLINE = new SessionError("closed", "offline").message;

/**
 * Whether `e` leaves a send's fate unknown: unanswered in time (`SEND_UNANSWERED`), or its
 * session closed while it waited (the frame may have reached the relay) — not a refusal, and
 * not `wasOffline`.
 */
export function wasUnanswered(e: unknown): boolean {
  if (!(e instanceof SessionError)) return false;
  return (e.failure === "timeout" && e.message.includes(SEND_UNANSWERED)) || (e.failure === "closed" && e.message !== OFFLINE);
}

/**
 * Whether `e` says there was no session to send on (nothing sealed, nothing sent: the page is
 * reconnecting) — as after another send of this page (a read receipt) went unanswered and its
 * session was closed while this one waited for the send lock.
 */
export function wasOffline(e: unknown): boolean {
  return e instanceof SessionError && e.message === OFFLINE;
}

/** What a sent line read back shows of itself (a customer's `ChatLine`, an agent's `AgentLine`). */
export interface LineSeen {
  seq: number;
  mine: boolean;
  text: string;
  /** The message's epoch and its sender's counter (absent on a line that is no message). */
  epoch?: number;
  counter?: number;
  attachment?: unknown;
}

/** Where a kept send stands. */
export type UnansweredState =
  /** Being sent now: not shown (its answer comes), kept for a reload. */
  | "sending"
  /** Written while reconnecting: goes out once a session is up. */
  | "queued"
  /** Sealed and sent, its answer lost: a session's read tells. */
  | "pending"
  /** A session's read did not show it, or it never went out. */
  | "not_stored"
  /** Sent again (pressed), or sent from the queue: its answer comes. */
  | "resending";

/** A send kept until its fate is known (see the module docs). */
export interface Unanswered {
  /** Its record's name in the store, after the prefix (its item's `data-unanswered`). */
  readonly id: string;
  /** The conversation it was sent in. */
  readonly conversation: string;
  readonly text: string;
  /** What identifies the message last sealed for it; null while none was (nothing went out). */
  sealed: SealedText | null;
  state: UnansweredState;
  /** Whether the session that carried it has gone since (only the next one's read tells). */
  disconnected: boolean;
}

/** What `UnansweredSends` is given. */
export interface UnansweredOptions {
  /** Where the sends are kept (the member's store); null keeps them in the page only. */
  store: Store | null;
  /** This account's signing key: a line confirms only a send sealed under it. */
  me: Uint8Array;
  random: (n: number) => Uint8Array;
  /** Seconds since the epoch (orders the kept sends). */
  now: () => number;
  /** Told when the store fails to forget one (it is shown again after a reload, then settled). */
  error?: (e: unknown) => void;
  /**
   * The pages that share the store (the tabs of one origin): this page's id, kept in each
   * record it writes, and the ids of those alive now (`pageLock`). A record of another live
   * page is that page's to settle (its answer may still come): `load` leaves it. Absent, every
   * record is taken in.
   */
  pages?: { me: string; alive: () => Promise<ReadonlySet<string>> };
}

/** The page's sends whose fate is not known yet (see the module docs). */
export class UnansweredSends {
  private nextId = 1;
  private readonly all: Unanswered[] = [];
  /** The store's writes, one after another: a record is never deleted before it is written. */
  private writes: Promise<void> = Promise.resolve();

  constructor(private readonly opts: UnansweredOptions) {}

  /**
   * Takes in the sends kept by an earlier page (call once, before sending): sealed ones as not
   * confirmed yet, settled by the next session's read; the others as not sent. The order kept
   * is the order written.
   *
   * # Errors
   * The store's, when it cannot be read. A record that does not decode is told to `error` and
   * deleted.
   */
  async load(): Promise<void> {
    const store = this.opts.store;
    if (store === null) return;
    const alive = (await this.opts.pages?.alive()) ?? new Set<string>();
    for (const k of await store.keys(RECORDS.pendingPrefix)) {
      const id = k.slice(RECORDS.pendingPrefix.length);
      const b = await store.get(k);
      const kept = b === undefined ? null : decode(id, b);
      if (kept === null) {
        this.opts.error?.(new Error(`a kept send (${id}) does not decode: dropped`));
        await store.delete(k);
        continue;
      }
      const { u, page } = kept;
      if (this.all.some((x) => x.id === id) || (page !== undefined && page !== this.opts.pages?.me && alive.has(page))) continue;
      this.all.push(u);
      // Taken over: this page's now, so another page opened meanwhile leaves it too.
      if (page !== this.opts.pages?.me) await this.write(u);
    }
  }

  /**
   * Keeps a send of `text` in `conversation` about to be sent (`sending`), or, `queued`, to be
   * sent once a session is up; resolves once it is in the store.
   *
   * # Errors
   * The store's: then nothing may be sent.
   */
  async begin(conversation: string, text: string, queued = false): Promise<Unanswered> {
    const order = `${String(this.opts.now()).padStart(12, "0")}.${String(this.nextId++).padStart(6, "0")}`;
    const u: Unanswered = { id: `${order}.${toHex(this.opts.random(8))}`, conversation, text, sealed: null, state: queued ? "queued" : "sending", disconnected: false };
    this.all.push(u);
    try {
      await this.write(u);
    } catch (e) {
      this.all.splice(this.all.indexOf(u), 1);
      throw e;
    }
    return u;
  }

  /**
   * `u`'s message was sealed as `sealed`: kept before its frame goes out (`Customer.send`'s
   * `sealed`). A later one (the first refused) replaces it.
   *
   * # Errors
   * The store's: then the message is not sent.
   */
  async sealedAs(u: Unanswered, sealed: SealedText): Promise<void> {
    u.sealed = sealed;
    await this.write(u);
  }

  /**
   * `u` went unanswered (`wasUnanswered`); `online`: whether the page still takes the session
   * that carried it for up (its close not told yet), else the next `online` settles it.
   */
  unanswered(u: Unanswered, online: boolean): void {
    u.state = "pending";
    u.disconnected = !online;
  }

  /** The ones of `conversation` the log shows (not those being sent), oldest first. */
  of(conversation: string): Unanswered[] {
    return this.all.filter((u) => u.conversation === conversation && u.state !== "sending");
  }

  /**
   * `u` waits for a session (written while reconnecting, or its session gone before it was
   * sealed): kept as such.
   *
   * # Errors
   * The store's.
   */
  async queue(u: Unanswered): Promise<void> {
    u.state = "queued";
    await this.write(u);
  }

  /** The ones written while reconnecting, not sent yet, oldest first. */
  queued(): Unanswered[] {
    return this.all.filter((u) => u.state === "queued");
  }

  /** Forgets `u` (stored, refused, or dismissed), in the store too. */
  remove(u: Unanswered): Promise<void> {
    const at = this.all.indexOf(u);
    if (at >= 0) this.all.splice(at, 1);
    const store = this.opts.store;
    if (store === null) return Promise.resolve();
    return this.then(() => store.delete(`${RECORDS.pendingPrefix}${u.id}`));
  }

  /**
   * The ones in `conversation` that a line among `lines` shows stored, taken out (their records
   * deleted): the line of the message's own epoch and counter, sent by this account, of the same
   * text. One line matches one send at most: no two were sealed under one counter.
   */
  confirmedBy(conversation: string, lines: readonly LineSeen[]): Unanswered[] {
    const done: Unanswered[] = [];
    for (const u of this.all.filter((x) => x.conversation === conversation)) {
      const sealed = u.sealed;
      if (sealed === null || u.state === "resending" || u.state === "sending" || !equal(sealed.sender, this.opts.me)) continue;
      if (lines.some((x) => x.mine && x.attachment === undefined && x.epoch === sealed.epoch && x.counter === sealed.counter && x.text === u.text)) done.push(u);
    }
    for (const u of done) this.remove(u).catch((e: unknown) => this.opts.error?.(e));
    return done;
  }

  /** The connection went (offline or connecting): the next session's read tells the fate. */
  disconnected(): void {
    for (const u of this.all) u.disconnected = true;
  }

  /**
   * A session is up, its read done, and the matches taken (`confirmedBy`): the pending ones
   * whose session had gone were not stored. Returns those.
   */
  settle(): Unanswered[] {
    const told = this.all.filter((u) => u.state === "pending" && u.disconnected);
    for (const u of told) u.state = "not_stored";
    return told;
  }

  /** The connection stopped for good: the ones waiting for it were not sent. Returns those. */
  stopped(): Unanswered[] {
    const told = this.queued();
    for (const u of told) u.state = "not_stored";
    return told;
  }

  /** Resolves once every write asked for so far is done (or failed). */
  flushed(): Promise<void> {
    return this.writes;
  }

  private write(u: Unanswered): Promise<void> {
    const store = this.opts.store;
    if (store === null) return Promise.resolve();
    return this.then(() => store.put(`${RECORDS.pendingPrefix}${u.id}`, encode(u, this.opts.pages?.me)));
  }

  /** Runs `f` after the store's writes asked for before it. */
  private then(f: () => Promise<void>): Promise<void> {
    const p = this.writes.then(f);
    this.writes = p.catch(() => undefined);
    return p;
  }
}

/** A kept send's record: `{ conversation, text, page?, queued?, epoch?, sender?, counter?, sent_at? }`. */
function encode(u: Unanswered, page: string | undefined): Uint8Array {
  const m: Record<string, CborValue> = { conversation: u.conversation, text: u.text };
  if (page !== undefined) m.page = page;
  if (u.state === "queued") m.queued = true;
  if (u.sealed !== null) Object.assign(m, { epoch: u.sealed.epoch, sender: u.sealed.sender, counter: u.sealed.counter, sent_at: u.sealed.sentAt });
  return toCbor(m);
}

/**
 * A record an earlier page kept, as this page takes it in: sealed, not confirmed yet (its
 * session gone); else not sent (see the module docs). Null when it does not decode.
 */
function decode(id: string, b: Uint8Array): { u: Unanswered; page: string | undefined } | null {
  let m: CborValue;
  try {
    m = fromCbor(b);
  } catch {
    return null;
  }
  if (m === null || typeof m !== "object" || m instanceof Uint8Array || Array.isArray(m)) return null;
  const { conversation, text, page, epoch, sender, counter, sent_at: sentAt } = m;
  if (typeof conversation !== "string" || typeof text !== "string" || (page !== undefined && typeof page !== "string")) return null;
  const uint = (v: CborValue | undefined): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
  let sealed: SealedText | null = null;
  if (epoch !== undefined || sender !== undefined || counter !== undefined) {
    if (!uint(epoch) || !uint(counter) || !uint(sentAt) || !(sender instanceof Uint8Array)) return null;
    sealed = { epoch, sender, counter, sentAt };
  }
  return { u: { id, conversation, text, sealed, state: sealed === null ? "not_stored" : "pending", disconnected: true }, page };
}

/**
 * This page's id among the pages of one origin, held for its life as the Web Lock
 * `<prefix><id>`, and the ids of the pages alive now (the locks held): `UnansweredOptions.pages`.
 * Without Web Locks, no page is known alive (every record is taken in).
 */
export async function pageLock(prefix: string, random: (n: number) => Uint8Array): Promise<{ me: string; alive: () => Promise<ReadonlySet<string>> }> {
  const me = toHex(random(8));
  const locks = typeof navigator === "undefined" ? undefined : navigator.locks;
  if (locks === undefined) return { me, alive: () => Promise.resolve(new Set()) };
  // Held until the page goes (the promise never settles); granted at once (the name is new).
  await new Promise<void>((granted) => {
    void locks.request(`${prefix}${me}`, () => {
      granted();
      return new Promise<never>(() => undefined);
    });
  });
  const alive = async (): Promise<ReadonlySet<string>> => new Set(((await locks.query()).held ?? []).flatMap((l) => (l.name?.startsWith(prefix) === true ? [l.name.slice(prefix.length)] : [])));
  return { me, alive };
}

/** How one send of a kept text ended (`sendKept`). */
export type KeptOutcome<T> =
  /** Stored: its record is gone. */
  | { kind: "stored"; value: T }
  /** Sealed and sent, its fate unknown: not confirmed yet (`pending`), settled by a read. */
  | { kind: "unanswered" }
  /** No session to send on, nothing sealed: waiting for the next (`queued`). */
  | { kind: "queued" }
  /** Not sent (refused, or failed before it went out): a new one's record is gone (its text goes back to the box), one sent again is `not_stored`. */
  | { kind: "refused"; error: unknown };

/**
 * Sends kept text `u` with `send` (the member's `send`, given the `sealed` hook) and moves it
 * on by the outcome (see `KeptOutcome`); `online` says whether the page takes its session for
 * up. Whatever fails after the message was sealed, but a refusal the relay answered, leaves its
 * fate unknown: `pending`, never "not sent" (the frame may have gone out), so it is never sent
 * twice without the user pressing "Send again".
 */
export async function sendKept<T>(sends: UnansweredSends, u: Unanswered, send: (sealed: (s: SealedText) => Promise<void>) => Promise<T>, online: () => boolean): Promise<KeptOutcome<T>> {
  const fresh = u.state === "sending";
  let sealedNow = false;
  try {
    const value = await send(async (sealed) => {
      await sends.sealedAs(u, sealed);
      sealedNow = true;
    });
    await sends.remove(u).catch(() => undefined);
    return { kind: "stored", value };
  } catch (e) {
    if (wasUnanswered(e) || (sealedNow && !(e instanceof RelayError))) {
      sends.unanswered(u, online());
      return { kind: "unanswered" };
    }
    if (wasOffline(e)) {
      await sends.queue(u);
      return { kind: "queued" };
    }
    if (fresh) await sends.remove(u).catch(() => undefined);
    else u.state = "not_stored";
    return { kind: "refused", error: e };
  }
}

/**
 * The page's text sends, run one after another in the order asked (the ones written while
 * reconnecting first, then what is written after). Unbounded as a chain, but each link is one
 * message the user wrote, and each ends (answered, or its request timed out).
 */
export class SendQueue {
  private tail: Promise<unknown> = Promise.resolve();

  /** Runs `f` once every send asked for before it has ended. */
  run<T>(f: () => Promise<T>): Promise<T> {
    const p = this.tail.then(f);
    this.tail = p.catch(() => undefined);
    return p;
  }
}

/** What an unanswered send's item says, by its state. */
export const UNANSWERED_SAYS: Record<UnansweredState, string> = {
  sending: "Sending…",
  queued: "Sending once reconnected…",
  pending: "Not confirmed yet: the connection dropped while sending. Checking once reconnected…",
  resending: "Sending again…",
  not_stored: "Not sent: the relay did not store this message.",
};

/**
 * The item of `u` in a log (class `line mine unanswered`, `data-state`): the text, what is known
 * of it, and when not stored a "Send again" button that calls `again` and a "Dismiss" button that
 * calls `dismiss` (the text is forgotten).
 */
export function unansweredItem(u: Unanswered, who: string, again: (u: Unanswered) => void, dismiss: (u: Unanswered) => void): HTMLLIElement {
  const li = document.createElement("li");
  li.className = "line mine unanswered";
  li.dataset.unanswered = u.id;
  li.dataset.state = u.state;
  const name = document.createElement("span");
  name.className = "who";
  name.textContent = who;
  const body = document.createElement("p");
  body.className = "text";
  body.textContent = u.text;
  const meta = document.createElement("span");
  meta.className = "meta";
  // Said in words, not only by the clock's colour or an icon; a live region, so a screen reader
  // hears the change.
  meta.setAttribute("role", "status");
  meta.textContent = UNANSWERED_SAYS[u.state];
  li.append(name, body, meta);
  if (u.state === "not_stored") {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "again";
    b.textContent = "Send again";
    b.addEventListener("click", () => again(u));
    const d = document.createElement("button");
    d.type = "button";
    d.className = "dismiss";
    d.textContent = "Dismiss";
    d.addEventListener("click", () => dismiss(u));
    li.append(b, d);
  }
  return li;
}
