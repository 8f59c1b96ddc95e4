/**
 * The customer's typing indicators both ways (PROTOCOL §9.7), as `customer.ts` runs them: the
 * agent's signals opened under their epoch's PRK and shown for `TYPING_SHOW_SECS` unless another
 * comes (a bad one dropped silently, an older one than the last ignored), and the customer's own
 * sent as it types, throttled by `TypingThrottle` (`typing.ts`). A signal is ephemeral: the
 * relay passes it on and never stores it, so nothing here touches the store.
 */
import { equal, type EpochRecord, type IdentityKeys } from "@sealdesk/protocol";
import type { Push } from "./frames.js";
import { RelayError, type Session } from "./session.js";
import { openSignal, sealSignal, type SignalKind } from "./signal.js";
import { TYPING_SHOW_SECS, TypingThrottle } from "./typing.js";

/** An epoch as the signals need it: its record, its PRK (§9.7) and its members' signing keys. */
export interface SignalEpoch {
  record: EpochRecord;
  prk: Uint8Array;
  members: Uint8Array[];
}

/** What the typing indicators need of the customer. */
export interface TypingHost {
  keys: IdentityKeys;
  now(): number;
  random(n: number): Uint8Array;
  /** The open conversation's id, or null. */
  conversation(): Uint8Array | null;
  /** Epoch `n`, if known; `latest` the newest known (undefined before epoch 0). */
  epoch(n: number): SignalEpoch | undefined;
  latest(): SignalEpoch | undefined;
  /** Whether the customer may signal now (online, sending not blocked, not erased): the session if so. */
  mayTell(): Session | null;
  /** Tells the view that `member` started or stopped typing. */
  show(member: string, typing: boolean): void;
}

/** The typing signals of one customer's conversation. */
export class CustomerTyping {
  private lastSignal = 0;
  private member: string | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly throttle = new TypingThrottle();

  constructor(private readonly host: TypingHost) {}

  /** Who is typing now (the agent's name), or null. */
  now(): string | null {
    return this.member;
  }

  /** A signal pushed by the relay: shown if it opens and is from another member. */
  received(signal: Extract<Push, { kind: "signal" }>["signal"]): void {
    const e = this.host.epoch(signal.header.epoch);
    const conv = this.host.conversation();
    if (e === undefined || conv === null || equal(signal.header.sender, this.host.keys.signingPublic)) return;
    let kind: SignalKind;
    try {
      kind = openSignal(signal, e.prk, conv, e.record.epoch, e.members, this.host.now());
    } catch {
      return;
    }
    if (signal.header.sentAt < this.lastSignal) return;
    this.lastSignal = signal.header.sentAt;
    const member = e.record.members.find((m) => equal(m.signingKey, signal.header.sender))?.name ?? "?";
    this.clear();
    if (kind === "typing") {
      this.member = member;
      this.timer = setTimeout(() => {
        this.member = null;
        this.timer = null;
        this.host.show(member, false);
      }, TYPING_SHOW_SECS * 1000);
    } else {
      this.member = null;
    }
    this.host.show(member, kind === "typing");
  }

  /** The customer typed (`empty`: the box is empty now): "typing" (throttled) or "stopped". */
  async typed(empty: boolean): Promise<void> {
    const kind = this.throttle.input(this.host.now(), empty);
    if (kind !== null) await this.send(kind);
  }

  /** The customer sent or left the box: "stopped" if the agent was told "typing". */
  async stopped(): Promise<void> {
    const kind = this.throttle.stop();
    if (kind !== null) await this.send(kind);
  }

  /** Stops showing the agent's "typing" timer (the customer stopped). */
  clear(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private async send(kind: SignalKind): Promise<void> {
    const conv = this.host.conversation();
    const s = this.host.mayTell();
    const e = this.host.latest();
    const me = this.host.keys.signingPublic;
    if (conv === null || s === null || e === undefined || !e.members.some((m) => equal(m, me))) return;
    const signal = sealSignal(e.prk, conv, e.record.epoch, this.host.keys, kind, this.host.now(), this.host.random(12));
    const r = await s.request({ kind: "signal", signal });
    // The epoch moved on meanwhile: the signal is moot.
    if (r.kind === "error" && r.code !== "stale_epoch") throw new RelayError(r.code, r.message);
  }
}
