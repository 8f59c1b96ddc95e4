/**
 * Where a browser client keeps its state: a byte store behind an interface (records are CBOR,
 * written by the caller). `MemoryStore` for tests and for a page that must keep nothing;
 * `IdbStore` (`idb.ts`) for the widget. Record names are the constants below, so that two tabs
 * and two versions of the code read the same records.
 */

/** A key/value store of byte records. `update` is atomic with respect to other callers of the same store. */
export interface Store {
  /** The record `key`, or `undefined`. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Writes `key` durably before resolving. */
  put(key: string, value: Uint8Array): Promise<void>;
  /** Deletes `key`. */
  delete(key: string): Promise<void>;
  /** The keys that start with `prefix`, sorted. */
  keys(prefix: string): Promise<string[]>;
}

/** Record names. */
export const RECORDS = {
  /** The account: `{ secret: bstr(64), card }`. */
  identity: "identity",
  /** The relay's key, pinned on first contact. */
  relayKey: "relay_key",
  /** The conversation: id, org, pinned master key, policy, agent. */
  conversation: "conversation",
  /** Next counter of this account in an epoch: `counter/<epoch>` → u64 as CBOR. */
  counterPrefix: "counter/",
  /** A conversation item as received: `item/<seq, 12 digits>` → the item's CBOR. */
  itemPrefix: "item/",
  /** The holes of a conversation (`customer-holes.ts`): `holes/<conversation id, hex>` → `{ cursor, open, named, pending }`. */
  holesPrefix: "holes/",
  /**
   * A text message the page sent (or is to send) whose fate is not known yet (`ui/unanswered.ts`):
   * `pending/<random id, hex>` → `{ conversation, text, queued?, epoch?, sender?, counter? }`,
   * from just before it is sealed until the relay's answer, a read that shows it, or the user's
   * dismissal. In the browser the encrypted IndexedDB store (`idb.ts`): never in the clear.
   */
  pendingPrefix: "pending/",
} as const;

/** The record name of item `seq` (zero-padded so that keys sort by sequence). */
export function itemKey(seq: number): string {
  return `${RECORDS.itemPrefix}${String(seq).padStart(12, "0")}`;
}

/** A store in memory: gone with the page. */
export class MemoryStore implements Store {
  private readonly map = new Map<string, Uint8Array>();

  get(key: string): Promise<Uint8Array | undefined> {
    const v = this.map.get(key);
    return Promise.resolve(v === undefined ? undefined : v.slice());
  }

  put(key: string, value: Uint8Array): Promise<void> {
    this.map.set(key, value.slice());
    return Promise.resolve();
  }

  delete(key: string): Promise<void> {
    this.map.delete(key);
    return Promise.resolve();
  }

  keys(prefix: string): Promise<string[]> {
    return Promise.resolve([...this.map.keys()].filter((k) => k.startsWith(prefix)).sort());
  }
}
