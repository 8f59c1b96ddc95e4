/**
 * The browser's store: IndexedDB, every record encrypted with AES-256-GCM under a WebCrypto key
 * that is generated non-extractable and kept in IndexedDB as a `CryptoKey` (the page can use it,
 * never read it). Each record is `nonce[12] ‖ ciphertext`, its key name the AAD, so a record
 * moved to another name does not decrypt. Asks for persistent storage
 * (`navigator.storage.persist()`) when opened.
 */
import type { Store } from "./store.js";

const KEYS_STORE = "keys";
const RECORDS_STORE = "records";
const STORAGE_KEY = "storage-key";

/** The store could not be used (no IndexedDB, a failed transaction, a record that does not decrypt). */
export class StoreError extends Error {
  constructor(
    readonly failure: "unavailable" | "transaction" | "corrupt",
    detail?: string,
  ) {
    super(detail === undefined ? failure : `${failure}: ${detail}`);
    this.name = "StoreError";
  }
}

function req<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(new StoreError("transaction", r.error?.message));
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(new StoreError("transaction", tx.error?.message));
    tx.onabort = () => reject(new StoreError("transaction", tx.error?.message ?? "aborted"));
  });
}

/** An encrypted IndexedDB store. */
export class IdbStore implements Store {
  private constructor(
    private readonly db: IDBDatabase,
    private readonly key: CryptoKey,
  ) {}

  /** Opens (or creates) database `name`, its storage key included. */
  static async open(name: string): Promise<IdbStore> {
    if (typeof indexedDB === "undefined") throw new StoreError("unavailable", "no IndexedDB");
    const open = indexedDB.open(name, 1);
    open.onupgradeneeded = () => {
      open.result.createObjectStore(KEYS_STORE);
      open.result.createObjectStore(RECORDS_STORE);
    };
    const db = await req(open);
    let key = (await req(db.transaction(KEYS_STORE).objectStore(KEYS_STORE).get(STORAGE_KEY))) as CryptoKey | undefined;
    if (key === undefined) {
      const fresh = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
      const tx = db.transaction(KEYS_STORE, "readwrite");
      // `add`, not `put`: a second tab racing to create the key fails here and reads the first one's.
      tx.objectStore(KEYS_STORE).add(fresh, STORAGE_KEY);
      try {
        await done(tx);
        key = fresh;
      } catch {
        key = (await req(db.transaction(KEYS_STORE).objectStore(KEYS_STORE).get(STORAGE_KEY))) as CryptoKey | undefined;
      }
    }
    if (key === undefined) throw new StoreError("unavailable", "no storage key");
    if (typeof navigator !== "undefined" && navigator.storage?.persist !== undefined) {
      void navigator.storage.persist().catch(() => false);
    }
    return new IdbStore(db, key);
  }

  async get(name: string): Promise<Uint8Array | undefined> {
    const v = (await req(this.db.transaction(RECORDS_STORE).objectStore(RECORDS_STORE).get(name))) as ArrayBuffer | undefined;
    if (v === undefined) return undefined;
    const all = new Uint8Array(v);
    try {
      const pt = await crypto.subtle.decrypt({ name: "AES-GCM", iv: all.slice(0, 12), additionalData: new TextEncoder().encode(name) }, this.key, all.slice(12));
      return new Uint8Array(pt);
    } catch {
      throw new StoreError("corrupt", name);
    }
  }

  async put(name: string, value: Uint8Array): Promise<void> {
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const ct = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: new TextEncoder().encode(name) }, this.key, value.slice()));
    const rec = new Uint8Array(12 + ct.length);
    rec.set(iv);
    rec.set(ct, 12);
    const tx = this.db.transaction(RECORDS_STORE, "readwrite", { durability: "strict" });
    tx.objectStore(RECORDS_STORE).put(rec.buffer, name);
    await done(tx);
  }

  async delete(name: string): Promise<void> {
    const tx = this.db.transaction(RECORDS_STORE, "readwrite");
    tx.objectStore(RECORDS_STORE).delete(name);
    await done(tx);
  }

  async keys(prefix: string): Promise<string[]> {
    const range = IDBKeyRange.bound(prefix, `${prefix}\uffff`);
    const keys = await req(this.db.transaction(RECORDS_STORE).objectStore(RECORDS_STORE).getAllKeys(range));
    return keys.map(String).sort();
  }

  /** Closes the database. */
  close(): void {
    this.db.close();
  }
}
