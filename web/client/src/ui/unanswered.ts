/**
 * Sends the relay did not answer in time (`SEND_UNANSWERED`), as the widget and the console show
 * them: the way chat apps show a message whose delivery is unknown — in the log, as the sender's
 * own line marked "not confirmed yet", never as refused, and never with the text put back in the
 * box as if to be sent again (its counter is burnt; a second send is a second message).
 *
 * Once a new session is up, its read is done (`Connection` says `online` after it): a line read
 * back that this send sealed (the sender's own, the same text, sealed while it was on its way,
 * above every item known then) marks it sent; none found, it was not stored, and the page says so
 * with a "Send again" button — sent again only when pressed, as a new message. A line that comes
 * later still (the old connection's frame stored after the new read) marks it sent all the same.
 * Until one of those, the text stays in the log, to be read and copied.
 */
import { SEND_UNANSWERED, SessionError } from "../session.js";

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
  sentAt: number;
  attachment?: unknown;
}

/** A send left unanswered, until a session's read tells its fate. */
export interface Unanswered {
  /** This page's own number for it (its item's `data-unanswered`). */
  readonly id: number;
  /** The conversation it was sent in. */
  readonly conversation: string;
  readonly text: string;
  /** The highest sequence number known when it was sent: if stored, it is above. */
  readonly after: number;
  /** The seconds it was sealed between (the clock's, both ends included). */
  readonly from: number;
  readonly to: number;
  /** `pending`: not known yet; `not_stored`: a session's read did not show it; `resending`: sent again, waiting. */
  state: "pending" | "not_stored" | "resending";
  /** Whether the session that carried it has gone since (only the next one's read tells). */
  disconnected: boolean;
}

/** The page's sends left unanswered (see the module docs). */
export class UnansweredSends {
  private nextId = 1;
  private readonly all: Unanswered[] = [];
  /**
   * The lines (`conversation/seq`) that confirmed a send: each confirms one at most, however
   * often the history is looked through again. Bounded by the sends left unanswered on this page.
   */
  private readonly taken = new Set<string>();

  /**
   * Keeps a send of `text` in `conversation`, sealed between `from` and `to`, above seq `after`;
   * `online`: whether the page still takes the session that carried it for up (its close not
   * told yet), else the next `online` settles it.
   */
  add(conversation: string, text: string, after: number, from: number, to: number, online = true): Unanswered {
    const u: Unanswered = { id: this.nextId++, conversation, text, after, from, to, state: "pending", disconnected: !online };
    this.all.push(u);
    return u;
  }

  /** The ones of `conversation`, oldest first. */
  of(conversation: string): Unanswered[] {
    return this.all.filter((u) => u.conversation === conversation);
  }

  /** Forgets `u` (confirmed, or sent again and stored). */
  remove(u: Unanswered): void {
    const at = this.all.indexOf(u);
    if (at >= 0) this.all.splice(at, 1);
  }

  /**
   * The ones in `conversation` that a line among `lines` shows stored, taken out: each is matched
   * by one line at most, and a line matches one at most, in this call and any later one.
   */
  confirmedBy(conversation: string, lines: readonly LineSeen[]): Unanswered[] {
    const done: Unanswered[] = [];
    for (const u of this.of(conversation)) {
      if (u.state === "resending") continue;
      const l = lines.find((x) => !this.taken.has(`${conversation}/${x.seq}`) && x.mine && x.attachment === undefined && x.seq > u.after && x.text === u.text && x.sentAt >= u.from && x.sentAt <= u.to);
      if (l === undefined) continue;
      this.taken.add(`${conversation}/${l.seq}`);
      done.push(u);
    }
    for (const u of done) this.remove(u);
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
}

/** What an unanswered send's item says, by its state. */
export const UNANSWERED_SAYS = {
  pending: "Not confirmed yet: the connection dropped while sending. Checking once reconnected…",
  resending: "Sending again…",
  not_stored: "Not sent: the relay did not store this message.",
} as const;

/**
 * The item of `u` in a log (class `line mine unanswered`, `data-state`): the text, what is known
 * of it, and when not stored a "Send again" button that calls `again`.
 */
export function unansweredItem(u: Unanswered, who: string, again: (u: Unanswered) => void): HTMLLIElement {
  const li = document.createElement("li");
  li.className = "line mine unanswered";
  li.dataset.unanswered = String(u.id);
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
    li.append(b);
  }
  return li;
}
