/**
 * The delivery and read marks of a customer's conversation (PROTOCOL §9.5), as `customer.ts`
 * keeps them: the relay's `delivered` mark of the agent's device (advisory, kept in the store so
 * a reload shows it at once), the agent's end-to-end read receipts (messages of kind `read`,
 * whose body is the big-endian sequence number read up to), and the receipts this customer
 * sends — never past its newest line from the agent, never twice for one number (the last one
 * sent is kept in the store), one at a time.
 */
import { fromCbor, toCbor } from "@sealdesk/protocol";
import type { Store } from "./store.js";

/** The highest sequence number the agent's device received (its delivery marks). */
const DELIVERED_KEY = "marks/delivered";
/** The highest sequence number covered by a read receipt this customer sent. */
const READ_SENT_KEY = "marks/read_sent";

/** What the marks need of the customer. */
export interface MarksHost {
  store: Store;
  /** This account's name: its own `delivered` marks are not the agent's. */
  me: string;
}

/** Where a read receipt goes, read when its turn comes. */
export interface ReceiptTarget {
  /** The newest line from the agent (0: none). */
  newest(): number;
  /** Whether a receipt may be sent now (a conversation open, sending not blocked). */
  may(): boolean;
  /** Sends the receipt's body as a message of kind `read`. */
  send(body: Uint8Array): Promise<unknown>;
}

/** The marks of one customer's conversation, both ways. */
export class CustomerMarks {
  /** The highest sequence number the agent has read (its read receipts). */
  private readSeq = 0;
  /** The highest sequence number the agent's device has received (the relay's mark). */
  private deliveredSeq = 0;
  /** The highest sequence number covered by a receipt sent (0: not read from the store yet). */
  private readSent = 0;
  /** The receipt being sent: the next waits for it, so two never race past one number. */
  private reading: Promise<void> = Promise.resolve();

  constructor(private readonly host: MarksHost) {}

  /** The highest sequence number the agent has read. */
  readUpTo(): number {
    return this.readSeq;
  }

  /** The highest sequence number the agent's device has received. */
  deliveredUpTo(): number {
    return this.deliveredSeq;
  }

  /** Reads the delivery mark kept (a reload shows it before the relay says it again). */
  async restore(): Promise<void> {
    const b = await this.host.store.get(DELIVERED_KEY);
    const d = b === undefined ? 0 : fromCbor(b);
    if (typeof d === "number") this.deliveredSeq = d;
  }

  /** The relay's `delivered` push: the agent's mark moves forward (kept), this account's own is not one. */
  delivered(member: string, seq: number): void {
    if (member === this.host.me || seq <= this.deliveredSeq) return;
    this.deliveredSeq = seq;
    void this.host.store.put(DELIVERED_KEY, toCbor(seq)).catch(() => undefined);
  }

  /**
   * A read receipt's `body` (from the agent: `mine` false): the number it is read up to when
   * that moves the mark forward, else null (an older receipt, one of this account's own, a body
   * that is not 8 bytes).
   */
  receipt(body: Uint8Array, mine: boolean): number | null {
    if (mine || body.length !== 8) return null;
    const seq = Number(new DataView(body.buffer, body.byteOffset, 8).getBigUint64(0));
    if (seq <= this.readSeq) return null;
    this.readSeq = seq;
    return seq;
  }

  /**
   * Sends a read receipt up to `upTo` (default: the newest line from the agent; never past it)
   * when that is past the last one sent and `to` says a receipt may go now. One receipt at a
   * time: what `to` reads is read when this one's turn comes.
   */
  markRead(upTo: number | undefined, to: ReceiptTarget): Promise<void> {
    const run = this.reading.then(() => this.markReadNow(upTo, to));
    this.reading = run.catch(() => undefined);
    return run;
  }

  private async markReadNow(upTo: number | undefined, to: ReceiptTarget): Promise<void> {
    const newest = to.newest();
    const seq = Math.min(upTo ?? newest, newest);
    if (!to.may()) return;
    if (this.readSent === 0) {
      const b = await this.host.store.get(READ_SENT_KEY);
      const v = b === undefined ? 0 : fromCbor(b);
      this.readSent = typeof v === "number" ? v : 0;
    }
    if (seq <= this.readSent) return;
    await to.send(u64be(seq));
    this.readSent = seq;
    await this.host.store.put(READ_SENT_KEY, toCbor(seq));
  }
}

function u64be(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n));
  return b;
}
