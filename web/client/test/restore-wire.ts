/**
 * Test support for the restored-store, timed-out-send and tab-race suites: a tab's wire that
 * records every message it puts on the wire as (sender, epoch, counter) — one list may be shared
 * by several tabs, so a test can check that the relay never saw one (key, nonce) twice — counts
 * the `counter_reused` answers, and can hold this tab's next request of a kind, hide items from
 * the history pages it reads, or drop the answer to its next `send`.
 */
import { toHex } from "@sealdesk/protocol";
import { MemoryStore, type SocketFactory } from "../src/index.js";
import { requestKind, sendHeader, tampering, type Frame } from "./tamper.js";
import { page } from "./withhold.js";

/** One tab's wire (see the module docs). */
export interface Wire {
  socket: SocketFactory;
  /** `sender/epoch/counter` of every `send` this tab put on the wire (the list passed in). */
  readonly sent: string[];
  /** The kind of every request this tab put on the wire, in order. */
  readonly requests: string[];
  /** The `counter_reused` answers this tab got. */
  reused: number;
  /** The sequence numbers this tab's history pages leave out (as if the relay no longer had them). */
  readonly hidden: Set<number>;
  /** Holds this tab's next request of `kind` (and the frames after it) before it reaches the relay. */
  holdNext(kind: string): { readonly entered: boolean; release: () => void };
  /** While true, the relay's `stored` answers to this tab's sends read `counter_reused` (the relay still takes the messages). */
  refuseSends: boolean;
  /** Drops the relay's answer to this tab's next `send` (the relay still takes the message). */
  dropNextSendAnswer(): { readonly dropped: boolean };
}

/** A tab's wire, its sends added to `sent`. */
export function wire(sent: string[] = []): Wire {
  let hold: { kind: string; entered: boolean; gate: Promise<void>; release: () => void } | null = null;
  let drop: { id: number | null; dropped: boolean } | null = null;
  /** The request ids of this tab's sends, until answered. */
  const sends = new Set<number>();
  const w: Wire = {
    sent,
    requests: [],
    reused: 0,
    refuseSends: false,
    hidden: new Set(),
    socket: tampering(
      (f) => {
        const response = f.response as Frame | undefined;
        const body = response?.body as Frame | undefined;
        if (drop !== null && drop.id !== null && response?.id === drop.id) {
          drop.dropped = true;
          drop = null;
          return false;
        }
        const id = response?.id as number | undefined;
        if (response !== undefined && id !== undefined && sends.delete(id) && w.refuseSends && body?.stored !== undefined) response.body = { error: { code: "counter_reused", message: "refused by the test" } };
        // The body as the tab gets it (the refusal just put in counted too).
        if (((response?.body as Frame | undefined)?.error as Frame | undefined)?.code === "counter_reused") w.reused++;
        const items = page(f);
        if (items !== undefined) items.items = (items.items as Frame[]).filter((it) => !w.hidden.has(Number(it.seq)));
      },
      (f) => {
        const kind = requestKind(f);
        if (kind !== undefined) w.requests.push(kind);
        const header = sendHeader(f);
        if (header !== undefined) {
          const id = (f.request as Frame).id as number;
          sent.push(`${toHex(header.sender as Uint8Array)}/${String(header.epoch)}/${String(header.counter)}`);
          sends.add(id);
          if (drop !== null && drop.id === null) drop.id = id;
        }
        const h = hold;
        if (h === null || kind !== h.kind) return;
        hold = null;
        h.entered = true;
        return h.gate;
      },
    ),
    holdNext(kind) {
      let release: () => void = () => undefined;
      const gate = new Promise<void>((r) => (release = r));
      const h = { kind, entered: false, gate, release: () => release() };
      hold = h;
      return h;
    },
    dropNextSendAnswer() {
      const d = { id: null, dropped: false };
      drop = d;
      return d;
    },
  };
  return w;
}

/** The (sender, epoch, counter) seen more than once in `sent`: a key and nonce the relay saw twice. */
export function reusedNonces(sent: readonly string[]): string[] {
  return sent.filter((x, i) => sent.indexOf(x) !== i);
}

/** A copy of `store` as it is now: the "backup" a store is later restored from. */
export async function copyOf(store: MemoryStore): Promise<MemoryStore> {
  const copy = new MemoryStore();
  for (const k of await store.keys("")) {
    const v = await store.get(k);
    if (v !== undefined) await copy.put(k, v);
  }
  return copy;
}

/** Lets every pending promise job run (a macrotask runs only after them): no clock involved. */
export const drained = (): Promise<void> => new Promise((r) => setImmediate(r));
