/**
 * Typed frames (PROTOCOL §13): the requests a customer and an agent send, and the responses and
 * pushes they read, as TypeScript unions with their CBOR encoders and decoders. Decoding is
 * strict about what it reads (a missing or mistyped field is a `ProtocolError` "malformed") and
 * ignores what it does not know (a response or push variant it has no use for decodes as
 * `other`), as the Rust client's serde decoding does.
 */
import {
  ProtocolError,
  byteQuotaFromCbor,
  cardFromCbor,
  cardToCbor,
  envelopeToCbor,
  epochToCbor,
  fromCbor,
  quotaWarningFromCbor,
  type AgentCertificate,
  type AuditEntry,
  type ByteQuota,
  type CborValue,
  type ConsentToken,
  type Envelope,
  type EpochRecord,
  type Handoff,
  type IdentityCard,
  type Policy,
  type QuotaWarning,
  type Sealed,
} from "@sealdesk/protocol";

export type { ByteQuota } from "@sealdesk/protocol";
import type { SignalEnvelope } from "./signal.js";

/** A request body (§13.3), the subset the browser clients send. */
export type Request =
  | { kind: "register" }
  | { kind: "list_conversations" }
  | { kind: "get_card"; name: string }
  | { kind: "get_policy"; org: string; version: number | null }
  | { kind: "get_certificate"; org: string; agent: string }
  | { kind: "open_conversation"; org: string; conversation: Uint8Array }
  /** `token` is the open token's CBOR, as the business's web server issued it (§13.14). */
  | { kind: "open_conversation_with_token"; org: string; conversation: Uint8Array; token: Uint8Array }
  | { kind: "put_epoch"; record: EpochRecord }
  | { kind: "send"; envelope: Envelope }
  | { kind: "history"; conversation: Uint8Array; after: number; limit: number }
  | { kind: "delivered"; conversation: Uint8Array; seq: number }
  | { kind: "get_tree_head" }
  /** Tell this session when the audit log grows (`audit_grew` pushes, §13.5). */
  | { kind: "watch_audit" }
  /** Tell this session when an agent of its conversations is re-certified (`agent_key_changed` pushes, §13.5). */
  | { kind: "watch_agent_keys" }
  | { kind: "get_inclusion"; index: number; size: number }
  | { kind: "get_consistency"; old: number; new: number }
  | { kind: "get_witnessed_head"; org: string }
  /** A signed audit entry (its CBOR map, `{ event, at, signer, signature }`), e.g. a consent's revocation (§12). */
  | { kind: "append_audit"; entry: CborValue }
  /** A customer's signed erasure request (its CBOR map, with the customer's `statement`, §10.7). */
  | { kind: "erase"; request: CborValue }
  /** Audit log entries `from..from+limit`; those the caller may not read come back withheld (§12). */
  | { kind: "get_entries"; from: number; limit: number }
  | { kind: "share_consent"; token: ConsentToken }
  | { kind: "transfer"; conversation: Uint8Array; agent: string }
  | { kind: "put_hand_off"; handoff: Handoff }
  | { kind: "signal"; signal: SignalEnvelope }
  /** One ciphertext chunk of an attachment of `size` plaintext bytes (§9.8). */
  | { kind: "attachment_put"; conversation: Uint8Array; attachment: Uint8Array; size: number; index: number; data: Uint8Array }
  /** One ciphertext chunk of an attachment (§9.8). */
  | { kind: "attachment_get"; conversation: Uint8Array; attachment: Uint8Array; index: number }
  /** This customer's recovery record (its CBOR map, `recoveryRecordToCbor`), replacing the one before (§3.5). */
  | { kind: "put_recovery"; record: CborValue }
  /** The recovery record of `name`, for the proof of its current code (§3.5); any session may ask. */
  | { kind: "get_recovery"; name: string; proof: Uint8Array };

/** The CBOR of a request body. */
export function requestToCbor(r: Request): CborValue {
  switch (r.kind) {
    case "register":
    case "list_conversations":
    case "get_tree_head":
    case "watch_audit":
    case "watch_agent_keys":
      return r.kind;
    case "get_card":
      return { get_card: { name: r.name } };
    case "get_policy":
      return { get_policy: { org: r.org, version: r.version } };
    case "get_certificate":
      return { get_certificate: { org: r.org, agent: r.agent } };
    case "open_conversation":
      return { open_conversation: { org: r.org, conversation: r.conversation } };
    case "open_conversation_with_token":
      return { open_conversation_with_token: { org: r.org, conversation: r.conversation, token: fromCbor(r.token) } };
    case "put_epoch":
      return { put_epoch: epochToCbor(r.record) };
    case "send":
      return { send: envelopeToCbor(r.envelope) };
    case "history":
      return { history: { conversation: r.conversation, after: r.after, limit: r.limit } };
    case "delivered":
      return { delivered: { conversation: r.conversation, seq: r.seq } };
    case "get_inclusion":
      return { get_inclusion: { index: r.index, size: r.size } };
    case "get_consistency":
      return { get_consistency: { old: r.old, new: r.new } };
    case "get_witnessed_head":
      return { get_witnessed_head: { org: r.org } };
    case "append_audit":
      return { append_audit: r.entry };
    case "erase":
      return { erase: r.request };
    case "get_entries":
      return { get_entries: { from: r.from, limit: r.limit } };
    case "share_consent":
      return { share_consent: consentToCbor(r.token) };
    case "transfer":
      return { transfer: { conversation: r.conversation, agent: r.agent } };
    case "put_hand_off":
      return { put_hand_off: handoffToCbor(r.handoff) };
    case "signal":
      return { signal: signalToCbor(r.signal) };
    case "attachment_put":
      return { attachment_put: { conversation: r.conversation, attachment: r.attachment, size: r.size, index: r.index, data: r.data } };
    case "attachment_get":
      return { attachment_get: { conversation: r.conversation, attachment: r.attachment, index: r.index } };
    case "put_recovery":
      return { put_recovery: r.record };
    case "get_recovery":
      return { get_recovery: { name: r.name, proof: r.proof } };
  }
}

/** A relay error code (§13.4); a code this client does not know reads as `bad_request`. */
export type RelayErrorCode =
  | "bad_request"
  | "bad_field"
  | "forbidden"
  | "not_found"
  | "not_registered"
  | "legal_hold"
  | "too_large"
  | "rate_limited"
  | "internal"
  | "counter_reused"
  | "stale_epoch"
  | "epoch_full"
  | "name_taken"
  | "key_registered"
  | "id_taken"
  | "stale_policy"
  | "already_answered"
  | "blocked"
  | "quota_exceeded"
  | "open_token_required"
  | "open_token_expired"
  | "open_token_forged"
  | "open_token_wrong_org"
  | "open_token_wrong_customer"
  | "open_token_uncertified"
  | "open_token_bad_visitor"
  | "open_token_revoked";

const KNOWN_CODES: ReadonlySet<string> = new Set<RelayErrorCode>([
  "bad_request",
  "bad_field",
  "forbidden",
  "not_found",
  "not_registered",
  "legal_hold",
  "too_large",
  "rate_limited",
  "internal",
  "counter_reused",
  "stale_epoch",
  "epoch_full",
  "name_taken",
  "key_registered",
  "id_taken",
  "stale_policy",
  "already_answered",
  "blocked",
  "quota_exceeded",
  "open_token_required",
  "open_token_expired",
  "open_token_forged",
  "open_token_wrong_org",
  "open_token_wrong_customer",
  "open_token_uncertified",
  "open_token_bad_visitor",
  "open_token_revoked",
]);

/** A conversation item (§13.4 `Sequenced.item`). */
export type Item =
  | { kind: "epoch"; record: EpochRecord }
  | { kind: "message"; envelope: Envelope }
  | { kind: "hand_off"; handoff: Handoff }
  /**
   * A consent token the conversation's customer shared (`share_consent`, §10.2), as the relay
   * served it: not verified here (`null`: it does not decode). A reader checks it before using it.
   */
  | { kind: "consent"; token: ConsentToken | null }
  | { kind: "notice"; entry: AuditEntry | null; index: number; raw: CborValue }
  | { kind: "other"; name: string };

/** An item with its relay sequence number. */
export interface Sequenced {
  conversation: Uint8Array;
  seq: number;
  storedAt: number;
  item: Item;
  /** The item's CBOR as received (kept in the store and decoded again on load). */
  raw: CborValue;
}

/** One entry of `conversations`. */
export interface ConversationInfo {
  conversation: Uint8Array;
  org: string;
  customer: string;
  agent: string;
  lastSeq: number;
  delivered: number;
  createdAt: number;
}

/** A run of sequence numbers a history page skips (§13.10). */
export interface SkippedRange {
  from: number;
  to: number;
  /** The epoch of the skipped items; absent for conversation-level items. */
  epoch?: number;
}

/** A response body (§13.4). */
export type Response =
  | { kind: "ok" }
  | { kind: "error"; code: RelayErrorCode; message: string; retryAfter?: number }
  | { kind: "card"; card: IdentityCard }
  | { kind: "policy"; policy: Policy }
  | { kind: "certificate"; certificate: AgentCertificate }
  | { kind: "opened"; agent: IdentityCard; certificate: AgentCertificate; policy: Policy; quota?: { open: number; most: number } }
  | { kind: "conversations"; conversations: ConversationInfo[] }
  /** Stored durably at `seq`; after a `send`, the relay's warning ahead of a stored-bytes quota, from 80% of it on (§13.12). */
  | { kind: "stored"; seq: number; quota?: ByteQuota }
  /**
   * A history page (§13.10): `skipped` names the runs of sequence numbers the caller may not
   * read (`epoch` absent: consents and notices), `head` the conversation's newest durable
   * number. Both absent from older relays.
   */
  | { kind: "items"; items: Sequenced[]; more: boolean; skipped: SkippedRange[]; head?: number }
  | { kind: "tree_head"; head: CborValue }
  | { kind: "inclusion"; index: number; size: number; path: Uint8Array[] }
  | { kind: "consistency"; old: number; new: number; path: Uint8Array[] }
  | { kind: "witnessed_head"; head: CborValue; cosignatures: CborValue[] }
  /** An audit entry appended at `index`, with a tree head that holds it. */
  | { kind: "appended"; index: number; head: CborValue }
  /**
   * Audit log slots from `from` (§12.3 "Who reads the log"): each either an entry the caller
   * may read (`entries`, their CBOR, in index order) or withheld (`withheld`: its index and its
   * leaf hash, indexes increasing, each inside `from..from + len(entries) + len(withheld)`).
   */
  | { kind: "entries"; from: number; entries: CborValue[]; withheld: WithheldSlot[] }
  /** Chunks of an attachment the relay holds (the next to send) of all (§9.8). */
  | { kind: "attachment_progress"; stored: number; chunks: number; quota?: ByteQuota }
  /** One chunk of an attachment and the size its uploader declared (§9.8). */
  | { kind: "attachment_chunk"; size: number; index: number; data: Uint8Array }
  /**
   * A recovery record (§3.5) as its CBOR, undecoded: the reader decodes it (`recoveryRecordFromCbor`)
   * so that a malformed one is a refusal of the record, not a frame that closes the session.
   */
  | { kind: "recovery"; record: CborValue }
  | { kind: "other"; name: string };

function byteQuotaFromMap(v: CborValue | undefined): ByteQuota {
  return byteQuotaFromCbor(map(v, "quota"));
}

/** A push (§13.5). */
export type Push =
  | { kind: "item"; item: Sequenced }
  | { kind: "assigned"; conversation: Uint8Array; customer: IdentityCard }
  | { kind: "delivered"; conversation: Uint8Array; member: string; seq: number }
  | { kind: "signal"; signal: SignalEnvelope }
  /** The audit log grew to `size` entries (only after `watch_audit`): a hint, checked by reading. */
  | { kind: "audit_grew"; size: number }
  /**
   * The org's master re-certified agent `agent` for the key of `card` (only after
   * `watch_agent_keys`): a hint, checked against the agent's certificate, never pinned as sent.
   */
  | { kind: "agent_key_changed"; org: string; agent: string; card: IdentityCard; conversations: Uint8Array[] }
  /**
   * A stored-bytes quota this account is concerned by stands at 80% or more (§13.12): pushed at
   * the crossing, whoever sent the bytes, and again after `welcome` while it stays there. `org`
   * names the org for an org's quota, `null` for the account's own.
   */
  | ({ kind: "quota_warning" } & QuotaWarning)
  | { kind: "other"; name: string };

/** A withheld audit-log slot (§12.3): its index and the withheld entry's leaf hash (§12.2). */
export interface WithheldSlot {
  index: number;
  leaf: Uint8Array;
}

/** A decoded frame from the relay. */
export type ServerFrame =
  | { kind: "challenge"; relayKey: Uint8Array; nonce: Uint8Array }
  | { kind: "welcome"; registered: boolean; logKey: Uint8Array }
  | { kind: "response"; id: number; body: Response }
  | { kind: "push"; push: Push };

type Map_ = { [key: string]: CborValue };

function malformed(what: string): ProtocolError {
  return new ProtocolError("malformed", what);
}
function isMap(v: CborValue | undefined): v is Map_ {
  return v !== null && v !== undefined && typeof v === "object" && !(v instanceof Uint8Array) && !Array.isArray(v);
}
function map(v: CborValue | undefined, what: string): Map_ {
  if (!isMap(v)) throw malformed(`${what}: expected a map`);
  return v;
}
function get(m: Map_, key: string): CborValue {
  if (!Object.hasOwn(m, key)) throw malformed(`missing field ${key}`);
  const v = m[key];
  if (v === undefined) throw malformed(`missing field ${key}`);
  return v;
}
function bytes(m: Map_, key: string, len?: number): Uint8Array {
  const v = get(m, key);
  if (!(v instanceof Uint8Array) || (len !== undefined && v.length !== len)) throw malformed(`${key}: expected ${len ?? ""} bytes`);
  return v;
}
function uint(v: CborValue, key: string): number {
  if (typeof v === "bigint") {
    if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed(`${key}: out of range`);
    return Number(v);
  }
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw malformed(`${key}: expected an unsigned integer`);
  return v;
}
function u(m: Map_, key: string): number {
  return uint(get(m, key), key);
}
function text(m: Map_, key: string): string {
  const v = get(m, key);
  if (typeof v !== "string") throw malformed(`${key}: expected text`);
  return v;
}
function bool(m: Map_, key: string): boolean {
  const v = get(m, key);
  if (typeof v !== "boolean") throw malformed(`${key}: expected a bool`);
  return v;
}
function list(m: Map_, key: string): CborValue[] {
  const v = get(m, key);
  if (!Array.isArray(v)) throw malformed(`${key}: expected an array`);
  return v;
}
/**
 * The `withheld` list of an `entries` answer from `from` with `readable` entries: each a 32-byte
 * leaf hash at an index inside the slots `from..from + readable + len(withheld)`, indexes strictly
 * increasing (so no slot is named twice and every one is placed).
 */
function withheldFromCbor(ws: CborValue[], from: number, readable: number): WithheldSlot[] {
  const end = from + readable + ws.length;
  let last = -1;
  return ws.map((w) => {
    const m = map(w, "withheld entry");
    const index = u(m, "index");
    const leaf = bytes(m, "leaf", 32);
    if (index < from || index >= end) throw malformed(`withheld: index ${index} outside the slots ${from}..${end}`);
    if (index <= last) throw malformed("withheld: indexes not increasing");
    last = index;
    return { index, leaf };
  });
}
/** `"name"` (a unit variant) or `{ name: value }` (one entry): the variant's name and content. */
function variant(v: CborValue, what: string): [string, CborValue] {
  if (typeof v === "string") return [v, null];
  const m = map(v, what);
  const keys = Object.keys(m);
  const k = keys[0];
  if (keys.length !== 1 || k === undefined) throw malformed(`${what}: expected one variant`);
  return [k, get(m, k)];
}

/** A policy from its CBOR map. */
export function policyFromCbor(v: CborValue): Policy {
  const m = map(v, "policy");
  return {
    org: text(m, "org"),
    version: u(m, "version"),
    master: cardFromCbor(get(m, "master")),
    trustees: list(m, "trustees").map(cardFromCbor),
    trusteeThreshold: u(m, "trustee_threshold"),
    arbiters: list(m, "arbiters").map(cardFromCbor),
    arbiterThreshold: u(m, "arbiter_threshold"),
    allowConsent: bool(m, "allow_consent"),
    allowDispute: bool(m, "allow_dispute"),
    maxReleaseValiditySecs: u(m, "max_release_validity_secs"),
    rotateAfterMessages: u(m, "rotate_after_messages"),
    rotateAfterSecs: u(m, "rotate_after_secs"),
    retentionSecs: u(m, "retention_secs"),
    historyHandoff: bool(m, "history_handoff"),
    createdAt: u(m, "created_at"),
    signature: bytes(m, "signature", 64),
    ...(Object.hasOwn(m, "require_open_token") ? { requireOpenToken: bool(m, "require_open_token") } : {}),
  };
}

/** An agent certificate from its CBOR map. */
export function certificateFromCbor(v: CborValue): AgentCertificate {
  const m = map(v, "certificate");
  return { org: text(m, "org"), agent: cardFromCbor(get(m, "agent")), issuedAt: u(m, "issued_at"), expiresAt: u(m, "expires_at"), signature: bytes(m, "signature", 64) };
}

function sealedFromCbor(v: CborValue): Sealed {
  const m = map(v, "sealed");
  return { enc: bytes(m, "enc", 32), ciphertext: bytes(m, "ciphertext") };
}

/** An epoch record from its CBOR map. */
export function epochFromCbor(v: CborValue): EpochRecord {
  const m = map(v, "epoch record");
  const prev = get(m, "previous");
  if (prev !== null && !(prev instanceof Uint8Array && prev.length === 32)) throw malformed("previous: expected 32 bytes or null");
  const escrow = map(get(m, "escrow"), "escrow");
  return {
    version: u(m, "version"),
    org: text(m, "org"),
    conversation: bytes(m, "conversation", 16),
    epoch: u(m, "epoch"),
    policyVersion: u(m, "policy_version"),
    policyHash: bytes(m, "policy_hash", 32),
    previous: prev,
    createdAt: u(m, "created_at"),
    creator: bytes(m, "creator", 32),
    members: list(m, "members").map(cardFromCbor),
    sealedSecrets: list(m, "sealed_secrets").map(sealedFromCbor),
    escrow: { master: sealedFromCbor(get(escrow, "master")), trustees: list(escrow, "trustees").map(sealedFromCbor) },
    commitment: bytes(m, "commitment", 32),
    signature: bytes(m, "signature", 64),
  };
}

/** A message envelope from its CBOR map. */
export function envelopeFromCbor(v: CborValue): Envelope {
  const m = map(v, "envelope");
  const h = map(get(m, "header"), "header");
  const kind = text(h, "kind");
  if (kind !== "text" && kind !== "read" && kind !== "status" && kind !== "attachment") throw malformed(`kind ${kind}`);
  return {
    header: {
      version: u(h, "version"),
      conversation: bytes(h, "conversation", 16),
      epoch: u(h, "epoch"),
      sender: bytes(h, "sender", 32),
      counter: u(h, "counter"),
      kind,
      sentAt: u(h, "sent_at"),
      commitment: bytes(h, "commitment", 32),
    },
    ciphertext: bytes(m, "ciphertext"),
    signature: bytes(m, "signature", 64),
  };
}

function handoffFromCbor(v: CborValue): Handoff {
  const m = map(v, "hand-off");
  const epochs = list(m, "epochs").map((e): [number, Sealed] => {
    if (!Array.isArray(e) || e.length !== 2 || e[0] === undefined || e[1] === undefined) throw malformed("hand-off epoch");
    return [uint(e[0], "epoch"), sealedFromCbor(e[1])];
  });
  return { conversation: bytes(m, "conversation", 16), from: bytes(m, "from", 32), to: bytes(m, "to", 32), epochs, createdAt: u(m, "created_at"), signature: bytes(m, "signature", 64) };
}

function itemFromCbor(v: CborValue): Item {
  const [name, body] = variant(v, "item");
  switch (name) {
    case "epoch":
      return { kind: "epoch", record: epochFromCbor(body) };
    case "message":
      return { kind: "message", envelope: envelopeFromCbor(body) };
    case "hand_off":
      return { kind: "hand_off", handoff: handoffFromCbor(body) };
    case "consent": {
      let token: ConsentToken | null;
      try {
        token = consentFromCbor(body);
      } catch {
        token = null;
      }
      return { kind: "consent", token };
    }
    case "notice": {
      const m = map(body, "notice");
      return { kind: "notice", entry: null, index: u(m, "index"), raw: get(m, "entry") };
    }
    default:
      return { kind: "other", name };
  }
}

/** A `Sequenced` from its CBOR map. */
export function sequencedFromCbor(v: CborValue): Sequenced {
  const m = map(v, "sequenced");
  return { conversation: bytes(m, "conversation", 16), seq: u(m, "seq"), storedAt: u(m, "stored_at"), item: itemFromCbor(get(m, "item")), raw: v };
}

function conversationInfoFromCbor(v: CborValue): ConversationInfo {
  const m = map(v, "conversation");
  return {
    conversation: bytes(m, "conversation", 16),
    org: text(m, "org"),
    customer: text(m, "customer"),
    agent: text(m, "agent"),
    lastSeq: u(m, "last_seq"),
    delivered: u(m, "delivered"),
    createdAt: u(m, "created_at"),
  };
}

/** A response body from its CBOR. */
export function responseFromCbor(v: CborValue): Response {
  const [name, body] = variant(v, "response");
  switch (name) {
    case "ok":
      return { kind: "ok" };
    case "error": {
      const m = map(body, "error");
      const code = text(m, "code");
      const known = KNOWN_CODES.has(code) ? (code as RelayErrorCode) : "bad_request";
      const error: Extract<Response, { kind: "error" }> = { kind: "error", code: known, message: text(m, "message") };
      // The seconds to wait before retrying (§13.4): only on a refusal that names a wait.
      if (Object.hasOwn(m, "retry_after")) error.retryAfter = u(m, "retry_after");
      return error;
    }
    case "card":
      return { kind: "card", card: cardFromCbor(body) };
    case "policy":
      return { kind: "policy", policy: policyFromCbor(body) };
    case "certificate":
      return { kind: "certificate", certificate: certificateFromCbor(body) };
    case "opened": {
      const m = map(body, "opened");
      const opened: Extract<Response, { kind: "opened" }> = { kind: "opened", agent: cardFromCbor(get(m, "agent")), certificate: certificateFromCbor(get(m, "certificate")), policy: policyFromCbor(get(m, "policy")) };
      // A warning ahead of the open-conversations quota (§13.4), only from 80% of it on.
      if (Object.hasOwn(m, "quota")) {
        const q = map(m.quota, "quota");
        opened.quota = { open: u(q, "open"), most: u(q, "most") };
      }
      return opened;
    }
    case "conversations": {
      if (!Array.isArray(body)) throw malformed("conversations: expected an array");
      return { kind: "conversations", conversations: body.map(conversationInfoFromCbor) };
    }
    case "stored": {
      const m = map(body, "stored");
      const stored: Extract<Response, { kind: "stored" }> = { kind: "stored", seq: u(m, "seq") };
      // Absent from relays older than the warning (and below 80%).
      if (Object.hasOwn(m, "quota")) stored.quota = byteQuotaFromMap(m.quota);
      return stored;
    }
    case "items": {
      const m = map(body, "items");
      const page: Extract<Response, { kind: "items" }> = { kind: "items", items: list(m, "items").map(sequencedFromCbor), more: bool(m, "more"), skipped: [] };
      if (Object.hasOwn(m, "skipped")) {
        page.skipped = list(m, "skipped").map((r) => {
          const run = map(r, "skipped");
          const out: SkippedRange = { from: u(run, "from"), to: u(run, "to") };
          if (Object.hasOwn(run, "epoch")) out.epoch = u(run, "epoch");
          return out;
        });
      }
      if (Object.hasOwn(m, "head")) page.head = u(m, "head");
      return page;
    }
    case "tree_head":
      return { kind: "tree_head", head: body };
    case "appended": {
      const m = map(body, "appended");
      const head = m.head;
      if (head === undefined) throw malformed("appended: head");
      return { kind: "appended", index: u(m, "index"), head };
    }
    case "attachment_progress": {
      const m = map(body, "attachment_progress");
      const progress: Extract<Response, { kind: "attachment_progress" }> = { kind: "attachment_progress", stored: u(m, "stored"), chunks: u(m, "chunks") };
      if (Object.hasOwn(m, "quota")) progress.quota = byteQuotaFromMap(m.quota);
      return progress;
    }
    case "recovery":
      return { kind: "recovery", record: body };
    case "attachment_chunk": {
      const m = map(body, "attachment_chunk");
      return { kind: "attachment_chunk", size: u(m, "size"), index: u(m, "index"), data: bytes(m, "data") };
    }
    case "inclusion": {
      const m = map(body, "inclusion");
      const path = list(m, "path").map((p) => {
        if (!(p instanceof Uint8Array) || p.length !== 32) throw malformed("path: expected 32-byte hashes");
        return p;
      });
      return { kind: "inclusion", index: u(m, "index"), size: u(m, "size"), path };
    }
    case "consistency": {
      const m = map(body, "consistency");
      const path = list(m, "path").map((p) => {
        if (!(p instanceof Uint8Array) || p.length !== 32) throw malformed("path: expected 32-byte hashes");
        return p;
      });
      return { kind: "consistency", old: u(m, "old"), new: u(m, "new"), path };
    }
    case "entries": {
      const m = map(body, "entries");
      const from = u(m, "from");
      const entries = list(m, "entries");
      const withheld = m.withheld === undefined ? [] : withheldFromCbor(list(m, "withheld"), from, entries.length);
      return { kind: "entries", from, entries, withheld };
    }
    case "witnessed_head": {
      const m = map(body, "witnessed_head");
      const head = m.head;
      if (head === undefined) throw malformed("witnessed_head: head");
      return { kind: "witnessed_head", head, cosignatures: list(m, "cosignatures") };
    }
    default:
      return { kind: "other", name };
  }
}

/** A push from its CBOR. */
export function pushFromCbor(v: CborValue): Push {
  const [name, body] = variant(v, "push");
  switch (name) {
    case "item":
      return { kind: "item", item: sequencedFromCbor(body) };
    case "assigned": {
      const m = map(body, "assigned");
      return { kind: "assigned", conversation: bytes(m, "conversation", 16), customer: cardFromCbor(get(m, "customer")) };
    }
    case "delivered": {
      const m = map(body, "delivered");
      return { kind: "delivered", conversation: bytes(m, "conversation", 16), member: text(m, "member"), seq: u(m, "seq") };
    }
    case "signal":
      return { kind: "signal", signal: signalFromCbor(body) };
    case "audit_grew":
      return { kind: "audit_grew", size: u(map(body, "audit_grew"), "size") };
    case "agent_key_changed": {
      const m = map(body, "agent_key_changed");
      const conversations = list(m, "conversations").map((c) => {
        if (!(c instanceof Uint8Array) || c.length !== 16) throw malformed("conversations: expected 16-byte ids");
        return c;
      });
      return { kind: "agent_key_changed", org: text(m, "org"), agent: text(m, "agent"), card: cardFromCbor(get(m, "card")), conversations };
    }
    case "quota_warning":
      return { kind: "quota_warning", ...quotaWarningFromCbor(map(body, "quota_warning")) };
    default:
      return { kind: "other", name };
  }
}

/** A hand-off's CBOR map (§7.6). */
export function handoffToCbor(h: Handoff): CborValue {
  return {
    conversation: h.conversation,
    from: h.from,
    to: h.to,
    epochs: h.epochs.map(([e, s]): CborValue => [e, { enc: s.enc, ciphertext: s.ciphertext }]),
    created_at: h.createdAt,
    signature: h.signature,
  };
}

/** A signal's CBOR map (§9.7). */
export function signalToCbor(s: SignalEnvelope): CborValue {
  const h = s.header;
  return {
    header: { version: h.version, conversation: h.conversation, epoch: h.epoch, sender: h.sender, sent_at: h.sentAt, nonce: h.nonce },
    ciphertext: s.ciphertext,
    signature: s.signature,
  };
}

/** A signal from its CBOR map. */
export function signalFromCbor(v: CborValue): SignalEnvelope {
  const m = map(v, "signal");
  const h = map(get(m, "header"), "signal header");
  return {
    header: { version: u(h, "version"), conversation: bytes(h, "conversation", 16), epoch: u(h, "epoch"), sender: bytes(h, "sender", 32), sentAt: u(h, "sent_at"), nonce: bytes(h, "nonce", 12) },
    ciphertext: bytes(m, "ciphertext"),
    signature: bytes(m, "signature", 64),
  };
}

/** A frame from the relay (already past `decodeFrame`). */
export function serverFrameFromCbor(v: CborValue): ServerFrame {
  const [name, body] = variant(v, "frame");
  const m = name === "push" ? null : map(body, name);
  switch (name) {
    case "challenge":
      return { kind: "challenge", relayKey: bytes(m ?? {}, "relay_key", 32), nonce: bytes(m ?? {}, "nonce", 32) };
    case "welcome":
      return { kind: "welcome", registered: bool(m ?? {}, "registered"), logKey: bytes(m ?? {}, "log_key", 32) };
    case "response":
      return { kind: "response", id: u(m ?? {}, "id"), body: responseFromCbor(get(m ?? {}, "body")) };
    case "push":
      return { kind: "push", push: pushFromCbor(body) };
    default:
      throw malformed(`unexpected frame ${name}`);
  }
}

/** The `auth` frame: the card and the signature over the challenge (§13.1). */
export function authFrame(card: IdentityCard, signature: Uint8Array): CborValue {
  return { auth: { card: cardToCbor(card), signature } };
}

/**
 * A consent token from its CBOR map (§10.2; the shape `consentToCbor` writes), decoded only: its
 * signature is the reader's check (`verifyConsent`).
 *
 * # Errors
 * A `ProtocolError` (`malformed`) naming the first field that does not fit.
 */
export function consentFromCbor(v: CborValue): ConsentToken {
  const m = map(v, "consent");
  const epochs = map(get(m, "epochs"), "consent epochs");
  const scope = text(m, "scope");
  if (scope !== "full" && scope !== "redacted") throw malformed(`consent scope ${scope}`);
  return {
    id: bytes(m, "id", 16),
    org: text(m, "org"),
    conversation: bytes(m, "conversation", 16),
    epochs: { first: u(epochs, "first"), last: u(epochs, "last") },
    grantee: bytes(m, "grantee", 32),
    scope,
    purpose: text(m, "purpose"),
    issuedAt: u(m, "issued_at"),
    expiresAt: u(m, "expires_at"),
    customer: bytes(m, "customer", 32),
    signature: bytes(m, "signature", 64),
  };
}

/** A consent token's CBOR map (§10.2). */
export function consentToCbor(c: ConsentToken): CborValue {
  return {
    id: c.id,
    org: c.org,
    conversation: c.conversation,
    epochs: { first: c.epochs.first, last: c.epochs.last },
    grantee: c.grantee,
    scope: c.scope,
    purpose: c.purpose,
    issued_at: c.issuedAt,
    expires_at: c.expiresAt,
    customer: c.customer,
    signature: c.signature,
  };
}
