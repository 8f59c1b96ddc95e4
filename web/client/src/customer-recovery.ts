/**
 * Recovery codes in the browser (PROTOCOL §3.5), the twin of the CLI's `recovery-code` and
 * `recover --name NAME`, with either kind of code: a replaceable code opens the record the relay
 * keeps (sealed and opened with the same derivations as the CLI's: `@sealdesk/protocol`'s
 * `recovery_record.ts`, held to the Rust vectors); an `init` code (version 1) stands for the keys
 * themselves (`recoveryIdentityKeys`), and the card is rebuilt from the name and the code's
 * creation time, byte for byte the card `init` made.
 *
 * ```text
 *   save     fresh version-2 code → seal keys + card under it → put_recovery → ok → the code
 *            (shown once by the caller; nothing here keeps it)
 *   recover  code parsed (checksum) ─┬ version 2: get_recovery { name, proof } on a session of
 *                                     │   throwaway keys → record opened (keys must be its card's)
 *                                     └ version 1: keys derived from the code, card rebuilt
 *            → session as the account: registered? (version 1: the relay's card for the name is
 *            the rebuilt one, and no replaceable code has replaced this one) → the org's policy
 *            checked against the page's fingerprint → the org's conversation, its agent from the
 *            history → fence, account, conversation stored
 * ```
 *
 * **An `init` code asks the relay nothing before the handshake.** The keys are the code's, so
 * the session's welcome says whether the relay holds exactly the rebuilt card (a card is
 * registered only under its own name, and a name has one key). The relay does not tell an
 * unregistered session whether a name exists, so an unknown name and a code of another account
 * are one refusal (`no_account`), worded for both.
 *
 * **Nothing stored on a refusal.** Every check (the code, the relay's answers, the record, the
 * account being registered, the policy's fingerprint) is made before the first write.
 *
 * **Other tabs.** The writes are made under the send lock, after checking again that the store
 * holds no conversation: another tab of the browser's former account that opened one meanwhile
 * wins (the recovery is refused, `has_conversation`, nothing stored), and one that tries after
 * the writes finds the store's account is not its own and opens nothing (`Customer`'s
 * `account_replaced`). The widget then tells its other tabs, which load the recovered account.
 *
 * **Counters after recovery.** The lost browser may have sealed messages the relay never
 * stored, so its highest counter in an epoch from before is not known here; reusing one would
 * reuse an AES-GCM nonce. As the CLI does (`client/src/recovery.rs`), a recovered account sends
 * only in an epoch it opened itself after recovering, or a later one: the store keeps a fence
 * (`RECOVERY_FENCE_KEY`), "none yet" at recovery, then the first epoch this account opened, and
 * `Customer`'s first send opens a new epoch while the current one is below it.
 */
import {
  IdentityKeys,
  ProtocolError,
  RECORD_CODE_VERSION,
  cardFingerprint,
  cardToCbor,
  equal,
  fingerprintMatches,
  formatFingerprint,
  formatRecoveryCode,
  generateRecordCode,
  issueCard,
  openRecoveryRecord,
  parseRecoveryCode,
  recoveryIdentityKeys,
  recoveryProof,
  recoveryRecordFromCbor,
  recoveryRecordToCbor,
  sealRecoveryRecord,
  fromCbor,
  toCbor,
  toHex,
  verifyCard,
  verifyPolicy,
  type IdentityCard,
  type RecoveryCode,
} from "@sealdesk/protocol";
import type { Request, Response } from "./frames.js";
import { HISTORY_PAGE, writeAccount } from "./member.js";
import { RelayError, Session, type SocketFactory } from "./session.js";
import { keepConversation } from "./customer-conversation.js";
import { storeSendLock } from "./send-lock.js";
import { RECORDS, type Store } from "./store.js";

/**
 * The record of a recovered account's fence: `{ fence: null }` until it opens an epoch of its
 * own, then `{ fence: N }`, the first it opened; absent for an account never recovered.
 */
export const RECOVERY_FENCE_KEY = "recovery/fence";

/** The fence kept: `undefined` when never recovered, `null` before the account opened an epoch of its own. */
async function readFence(store: Store): Promise<number | null | undefined> {
  const b = await store.get(RECOVERY_FENCE_KEY);
  if (b === undefined) return undefined;
  const v = fromCbor(b);
  const fence = v !== null && typeof v === "object" && !(v instanceof Uint8Array) && !Array.isArray(v) ? v.fence : undefined;
  return typeof fence === "number" ? fence : null;
}

/**
 * Whether this account may send in `epoch`: always unless it was recovered, and then only in the
 * first epoch it opened since, or a later one.
 */
export async function maySendIn(store: Store, epoch: number): Promise<boolean> {
  const fence = await readFence(store);
  return fence === undefined || (fence !== null && epoch >= fence);
}

/** Notes that this recovered account opened `epoch`: the first such epoch becomes its fence. */
export async function noteOwnEpoch(store: Store, epoch: number): Promise<void> {
  if ((await readFence(store)) === null) await store.put(RECOVERY_FENCE_KEY, toCbor({ fence: epoch }));
}

/** Why a recovery was refused. */
export type RecoveryFailure =
  /** The code as typed: a wrong character, length or checksum (a typo). */
  | "code_format"
  /** An `init` code: the relay knows no account of this name with the code's keys (an unknown name, or another account's code). */
  | "no_account"
  /** An `init` code the account has replaced with a replaceable code since: only the newest code recovers it. */
  | "code_replaced"
  /** An `init` code: the relay says the account is known, but its card for the name is not the one the code makes. */
  | "card_mismatch"
  /** The relay keeps no recovery record for this name. */
  | "unknown_name"
  /** The relay's record is not for this code (a wrong code, or one replaced since). */
  | "wrong_code"
  /** The record the relay handed out does not open under the code, or its keys are not its card's. */
  | "tampered"
  /** The relay does not know the recovered account. */
  | "not_registered"
  /** The org's policy on this relay is not signed by the fingerprint the page was given. */
  | "fingerprint_mismatch"
  /** This browser already holds a conversation with the org: recovery would overwrite it. */
  | "has_conversation"
  /** The relay answered something else. */
  | "bad_answer";

/** A recovery was refused, and nothing was stored; `failure` says why. */
export class RecoveryError extends Error {
  constructor(
    readonly failure: RecoveryFailure,
    detail?: string,
  ) {
    super(detail === undefined ? failure : `${failure}: ${detail}`);
    this.name = "RecoveryError";
  }
}

async function ask(s: Session, body: Request): Promise<Response> {
  const r = await s.request(body);
  if (r.kind === "error") throw new RelayError(r.code, r.message);
  return r;
}

/**
 * Makes a new replaceable recovery code for the account `keys`/`card` (a registered customer)
 * and stores its record on the relay over `s`, replacing the one before: the code before opens
 * nothing from then on. Returns the code's text, to be shown once; it is kept nowhere.
 *
 * If this does not resolve (the page closed, the connection dropped) the relay may hold the new
 * record: the code is then lost but in force, and making another one is the way out.
 *
 * # Errors
 * A `RelayError` for the relay's refusal (nothing replaced), a `SessionError` when the answer
 * did not come (the record may or may not be stored).
 */
export async function saveRecoveryCode(s: Session, keys: IdentityKeys, card: IdentityCard, random: (n: number) => Uint8Array, now: number): Promise<string> {
  const code = generateRecordCode(random, now);
  try {
    const record = sealRecoveryRecord(code, card, keys, random(12));
    const r = await ask(s, { kind: "put_recovery", record: recoveryRecordToCbor(record) });
    if (r.kind !== "ok") throw new RecoveryError("bad_answer", r.kind);
    return formatRecoveryCode(code);
  } finally {
    code.entropy.fill(0);
  }
}

/** What recovering needs: the relay and page (as a customer's options) and what the person typed. */
export interface RecoverOptions {
  url: string;
  socket: SocketFactory;
  /** Where the account goes (the widget's store); it must hold no conversation. */
  store: Store;
  org: string;
  /** The org master's printed fingerprint, as the page was given it. */
  masterFingerprint: string;
  random: (n: number) => Uint8Array;
  now: () => number;
  /** The account's name (`web-…` for an account the widget made). */
  name: string;
  /** The recovery code as typed. */
  code: string;
  /**
   * Runs `f` holding the send lock of `store` (the widget's Web Lock): the writes are made under
   * it, so a tab opening a conversation as the browser's former account and this recovery never
   * interleave (see `recoverAccount`). Without it, under the store's lock in this realm
   * (`storeSendLock`), the one a `Customer` on the same store takes without one.
   */
  withSendLock?: <T>(f: () => Promise<T>) => Promise<T>;
}

/** A recovered account, now in the store. */
export interface Recovered {
  name: string;
  /** The account's printed fingerprint (unchanged: the same keys as before). */
  fingerprint: string;
  /** The conversation with the org restored (hex), or null when the account had none. */
  conversation: string | null;
}

function parseCode(text: string): RecoveryCode {
  try {
    return parseRecoveryCode(text);
  } catch (e) {
    if (e instanceof ProtocolError) throw new RecoveryError("code_format", e.message);
    throw e;
  }
}

/** The keys an `init` code stands for, and the card `init` made with them for `name`. */
function derivedAccount(code: RecoveryCode, name: string): { keys: IdentityKeys; card: IdentityCard } {
  const keys = recoveryIdentityKeys(code);
  try {
    return { keys, card: issueCard(keys, name, "customer", code.createdAt) };
  } catch (e) {
    // Not a name an account can have: no account of it exists to recover.
    if (e instanceof ProtocolError) throw new RecoveryError("no_account", `${JSON.stringify(name)} is not an account name (${e.message})`);
    throw e;
  }
}

/**
 * For an `init` code, on the account's registered session: the relay's card for the name must
 * be the rebuilt card, byte for byte, and the code must not have been replaced by a replaceable
 * one (the relay then holds a record for the name, and answers a proof of nothing `forbidden`,
 * as the CLI asks it).
 */
async function checkDerivedAccount(s: Session, card: IdentityCard): Promise<void> {
  const held = await s.request({ kind: "get_card", name: card.name });
  if (held.kind === "error" && held.code === "not_found") throw new RecoveryError("card_mismatch", `the relay holds no card named ${card.name}`);
  if (held.kind === "error") throw new RelayError(held.code, held.message);
  if (held.kind !== "card") throw new RecoveryError("bad_answer", held.kind);
  if (!equal(toCbor(cardToCbor(held.card)), toCbor(cardToCbor(card)))) throw new RecoveryError("card_mismatch", `the relay's card for ${card.name} is not the one this code makes`);
  const record = await s.request({ kind: "get_recovery", name: card.name, proof: new Uint8Array(0) });
  if (record.kind === "error" && record.code === "forbidden") throw new RecoveryError("code_replaced", `${card.name} made a newer recovery code`);
  if (record.kind === "error" && record.code !== "not_found") throw new RelayError(record.code, record.message);
  if (record.kind !== "error") throw new RecoveryError("bad_answer", `a recovery record for an empty proof (${record.kind})`);
}

/** Fetches and opens the record of `name` on a session of throwaway keys; returns the keys, the verified card and the relay key seen. */
async function openRecord(o: RecoverOptions, code: RecoveryCode, pinned: Uint8Array | null): Promise<{ keys: IdentityKeys; card: IdentityCard; relayKey: Uint8Array }> {
  const throwaway = IdentityKeys.generate(o.random);
  const s = await Session.connect(o.url, throwaway, issueCard(throwaway, `web-${toHex(o.random(6))}`, "customer", o.now()), o.socket, pinned);
  let r: Response;
  try {
    r = await s.request({ kind: "get_recovery", name: o.name, proof: recoveryProof(code) });
  } finally {
    s.close();
  }
  if (r.kind === "error" && r.code === "not_found") throw new RecoveryError("unknown_name", `no recovery code was saved for ${JSON.stringify(o.name)}`);
  if (r.kind === "error" && r.code === "forbidden") throw new RecoveryError("wrong_code", `this is not ${JSON.stringify(o.name)}'s current recovery code`);
  if (r.kind === "error") throw new RelayError(r.code, r.message);
  if (r.kind !== "recovery") throw new RecoveryError("bad_answer", r.kind);
  try {
    const record = recoveryRecordFromCbor(r.record);
    const keys = openRecoveryRecord(record, code, o.name);
    return { keys, card: verifyCard(record.card, "customer"), relayKey: s.relayKey };
  } catch (e) {
    if (e instanceof ProtocolError) throw new RecoveryError("tampered", `the relay's recovery record was refused (${e.message})`);
    throw e;
  }
}

/** The conversation with the org, read on the account's session, and its agent's card. */
interface Restored {
  conversation: Uint8Array;
  agent: IdentityCard;
}

async function restoreConversation(s: Session, org: string, me: IdentityCard): Promise<Restored | null> {
  const listed = await ask(s, { kind: "list_conversations" });
  if (listed.kind !== "conversations") throw new RecoveryError("bad_answer", listed.kind);
  const info = listed.conversations.filter((c) => c.org === org).sort((a, b) => b.createdAt - a.createdAt)[0];
  if (info === undefined) return null;
  let agent: IdentityCard | null = null;
  for (let after = 0; ; ) {
    const page = await ask(s, { kind: "history", conversation: info.conversation, after, limit: HISTORY_PAGE });
    if (page.kind !== "items") throw new RecoveryError("bad_answer", page.kind);
    for (const it of page.items) {
      after = Math.max(after, it.seq);
      if (it.item.kind === "epoch") agent = it.item.record.members.find((m) => m.name === info.agent && m.name !== me.name) ?? agent;
    }
    if (!page.more || page.items.length === 0) break;
  }
  if (agent === null) throw new RecoveryError("bad_answer", `no epoch of the conversation names its agent ${info.agent}`);
  return { conversation: info.conversation, agent };
}

/**
 * Recovers the account `name` with its recovery code, of either kind, into `o.store`: its keys
 * (exactly as the store keeps an account it made), its conversation with the org, and its fence
 * (it sends only in an epoch it opens from now on). The caller then loads a `Customer` from the
 * store, which reads the history.
 *
 * # Errors
 * A `RecoveryError` saying why (nothing is stored then); a `SessionError` or `RelayError` when
 * the relay could not be asked (nothing is stored either).
 */
export async function recoverAccount(o: RecoverOptions): Promise<Recovered> {
  if ((await o.store.get(RECORDS.conversation)) !== undefined) throw new RecoveryError("has_conversation", "this browser already holds a conversation with the business");
  const code = parseCode(o.code);
  const pinned = (await o.store.get(RECORDS.relayKey)) ?? null;
  const derived = code.version !== RECORD_CODE_VERSION;
  let opened: { keys: IdentityKeys; card: IdentityCard; relayKey: Uint8Array | null };
  try {
    opened = derived ? { ...derivedAccount(code, o.name), relayKey: pinned } : await openRecord(o, code, pinned);
  } finally {
    code.entropy.fill(0);
  }
  const { keys, card } = opened;
  const s = await Session.connect(o.url, keys, card, o.socket, opened.relayKey);
  const relayKey = s.relayKey;
  let restored: Restored | null;
  let master: Uint8Array;
  try {
    if (!s.registered && derived) throw new RecoveryError("no_account", `the relay knows no account ${card.name} with this code's keys`);
    if (!s.registered) throw new RecoveryError("not_registered", `the relay does not know the account ${card.name}`);
    if (derived) await checkDerivedAccount(s, card);
    const p = await ask(s, { kind: "get_policy", org: o.org, version: null });
    if (p.kind !== "policy") throw new RecoveryError("bad_answer", p.kind);
    const policy = verifyPolicy(p.policy);
    if (policy.org !== o.org) throw new RecoveryError("bad_answer", `policy of ${policy.org}`);
    if (!fingerprintMatches(cardFingerprint(policy.master), o.masterFingerprint)) throw new RecoveryError("fingerprint_mismatch", `${o.org}'s policy is signed by ${formatFingerprint(cardFingerprint(policy.master))}`);
    master = policy.master.signingKey;
    restored = await restoreConversation(s, o.org, card);
  } finally {
    s.close();
  }
  // Every check is made: now the writes, under the send lock (another tab of this browser may
  // be opening a conversation as the former account), the fence first (this browser's fresh
  // account has sent nothing: it is not held back by it), then the account, then the conversation.
  const write = async (): Promise<void> => {
    if ((await o.store.get(RECORDS.conversation)) !== undefined) throw new RecoveryError("has_conversation", "another tab of this browser opened a conversation with the business meanwhile");
    if (pinned === null) await o.store.put(RECORDS.relayKey, relayKey);
    await o.store.put(RECOVERY_FENCE_KEY, toCbor({ fence: null }));
    await writeAccount(o.store, keys, card);
    if (restored !== null) {
      await keepConversation(o.store, { conversation: restored.conversation, agent: restored.agent, masterKey: master }, o.org);
    }
  };
  await (o.withSendLock ?? storeSendLock(o.store))(write);
  return { name: card.name, fingerprint: formatFingerprint(cardFingerprint(card)), conversation: restored === null ? null : toHex(restored.conversation) };
}
