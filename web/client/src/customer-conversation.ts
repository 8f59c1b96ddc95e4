/**
 * The record of the one conversation a customer's store holds (`RECORDS.conversation`), written
 * when the conversation is opened (`customer.ts`) or brought back by a recovery
 * (`customer-recovery.ts`) and read at load: its id, the agent's card and the org master's key
 * pinned at opening (a later change of either is a key change), and the org's name.
 */
import { ProtocolError, cardFromCbor, cardToCbor, fromCbor, toCbor, type CborValue, type IdentityCard } from "@sealdesk/protocol";
import { RECORDS, type Store } from "./store.js";

/** The conversation as kept. */
export interface ConversationRecord {
  conversation: Uint8Array;
  /** The agent's card pinned at opening. */
  agent: IdentityCard;
  /** The org master's signing key pinned at opening. */
  masterKey: Uint8Array;
}

/** Keeps `c` as the store's conversation with `org`. */
export async function keepConversation(store: Store, c: ConversationRecord, org: string): Promise<void> {
  await store.put(RECORDS.conversation, toCbor({ conversation: c.conversation, agent: cardToCbor(c.agent), master_key: c.masterKey, org }));
}

/**
 * The store's conversation, or undefined when it holds none.
 *
 * # Errors
 * A `ProtocolError` (`malformed`) when the record is damaged.
 */
export async function readConversation(store: Store): Promise<ConversationRecord | undefined> {
  const b = await store.get(RECORDS.conversation);
  if (b === undefined) return undefined;
  const m = fromCbor(b);
  if (m === null || typeof m !== "object" || m instanceof Uint8Array || Array.isArray(m)) throw bad();
  return { conversation: bytesOf(m.conversation), agent: cardFromCbor(m.agent ?? null), masterKey: bytesOf(m.master_key) };
}

function bytesOf(v: CborValue | undefined): Uint8Array {
  if (!(v instanceof Uint8Array)) throw bad();
  return v;
}

function bad(): ProtocolError {
  return new ProtocolError("malformed", "stored record");
}
