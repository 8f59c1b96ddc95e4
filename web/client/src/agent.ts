/**
 * The agent side, as the console runs it: one account (imported from the CLI's vault,
 * `vault-import.ts`) with every conversation assigned to it. For each conversation: the epoch
 * records verified at all three levels of §7.5 (policies fetched and checked, the org's master
 * pinned per org, every member pinned by name), hand-offs opened (§7.6), messages received in
 * the order of §9.4 (text, read receipts, statuses §9.6), typing signals (§9.7), delivery marks,
 * unread counts kept locally; and sending, setting the status, read receipts and transfers.
 *
 * **Counters of two devices of one agent** (SECURITY.md, "Two devices of one agent"): the same
 * account may run in the CLI too, with its own counters in its vault. A message key and nonce
 * are a function of (conversation, epoch, sender, counter) only, so two devices must never seal
 * in the same epoch. The rule, kept on both sides: a device seals only in an epoch that it made
 * itself or that another member made. The console marks every epoch it makes (its record hash,
 * in its store, before the record is sent) and, before it seals, opens a new epoch (§7.7: any
 * member may) when the current one was made by this account's key elsewhere, or by another
 * member but the CLI may be sealing in it too — that is, always unless it made it itself. The
 * CLI (`client/src/client/conversation.rs` `sending_epoch`) rotates away from an epoch its key
 * made but its vault did not. So each device has epochs of its own, and within one, its
 * counters are persisted before sealing, as everywhere.
 *
 * The conversation history is not cached in the browser: it is read from the relay again when
 * the console starts (epoch secrets are re-derived from the records with the account's key),
 * and only what must survive a reload is stored: the identity, pins, counters, the epochs made
 * here, and the read and delivery marks.
 */
import {
  EpochSecret,
  IdentityKeys,
  ReplayWindow,
  cardFromCbor,
  cardToCbor,
  checkFollows,
  computeEscrow,
  envelopeToCbor,
  epochCommitment,
  epochRecordHash,
  epochSignedBytes,
  epochToCbor,
  equal,
  fromCbor,
  handoffSignedBytes,
  labels,
  openEpoch,
  openHandoff,
  openMessage,
  policyHash,
  seal,
  sealMessage,
  toCbor,
  toHex,
  verifyAgentCertificate,
  verifyEpoch,
  verifyPolicy,
  type CborValue,
  type ContentKind,
  type EpochRecord,
  type Handoff,
  type IdentityCard,
  type Policy,
  type Sealed,
} from "@sealdesk/protocol";
import { attachmentLineText, decodeAttachmentRef, downloadAttachment, type AttachmentRef } from "./attachment.js";
import { sequencedFromCbor, type ConversationInfo, type Push, type Sequenced } from "./frames.js";
import { Connection, RelayError, SessionError, type ConnectionState, type Session, type SocketFactory } from "./session.js";
import { epochPrk, openSignal, sealSignal, type SignalKind } from "./signal.js";
import { RECORDS, type Store } from "./store.js";

/** A conversation's status (§9.6). */
export type ConversationStatus = "open" | "waiting" | "resolved";

const STATUS_CODES: Record<ConversationStatus, number> = { open: 1, waiting: 2, resolved: 3 };

/** One line of a conversation, verified. */
export interface AgentLine {
  seq: number;
  /** Sent by this account (from this browser or another device). */
  mine: boolean;
  sender: string;
  /** The text, or for a status line the status set. */
  text: string;
  kind: "text" | "status" | "event" | "attachment";
  sentAt: number;
  /** A file's reference (kind `attachment`, §9.8); fetch it with `download`. */
  attachment?: AttachmentRef;
}

/** What the console shows of one conversation. */
export interface ConversationView {
  /** The conversation id (hex). */
  id: string;
  org: string;
  customer: string;
  /** The agent assigned now (this account, unless it was transferred). */
  agent: string;
  lines: readonly AgentLine[];
  /** Lines from others after this account's read mark. */
  unread: number;
  status: ConversationStatus;
  /** The highest sequence number the customer has read (its end-to-end read receipts). */
  readByCustomer: number;
  /** The highest sequence number the customer's device has received (the relay's delivery mark). */
  deliveredToCustomer: number;
  /** Whether the customer is typing now. */
  typing: boolean;
  /** Why sending is blocked in this conversation (a pinned key changed), or null. */
  blocked: string | null;
  /** Whether this account is no longer a member (transferred to another agent). */
  transferredOut: boolean;
}

/** What the agent tells its view. */
export type AgentEvent =
  | { kind: "state"; state: ConnectionState; detail?: string }
  | { kind: "conversations" }
  | { kind: "changed"; id: string }
  | { kind: "policy"; org: string; policy: Policy }
  | { kind: "key_changed"; id: string | null; detail: string }
  | { kind: "error"; error: Error };

/** Why the agent refused. */
export type AgentFailure = "key_changed" | "not_member" | "no_conversation" | "no_epoch" | "bad_answer" | "transferred" | "no_identity";

/** The agent refused something; `failure` says what. */
export class AgentError extends Error {
  constructor(
    readonly failure: AgentFailure,
    detail?: string,
  ) {
    super(detail === undefined ? failure : `${failure}: ${detail}`);
    this.name = "AgentError";
  }
}

/** How an agent is set up. */
export interface AgentOptions {
  /** The relay's WebSocket URL. */
  url: string;
  store: Store;
  socket: SocketFactory;
  random: (n: number) => Uint8Array;
  /** Seconds since the epoch. */
  now: () => number;
  /** Runs `f` holding the send lock (Web Locks: one tab of this console seals at a time). */
  withSendLock?: <T>(f: () => Promise<T>) => Promise<T>;
}

/** Record names of the agent's store (besides `RECORDS.identity` and `RECORDS.relayKey`). */
export const AGENT_RECORDS = {
  /** The org master's signing key, pinned on first sight: `pin/org/<org>`. */
  orgPin: (org: string): string => `pin/org/${org}`,
  /** An account's signing key (customer or agent), pinned by name: `pin/name/<name>`. */
  namePin: (name: string): string => `pin/name/${name}`,
  /** The hash of an epoch record this browser made: `conv/<id>/made/<epoch>`. */
  made: (id: string, epoch: number): string => `conv/${id}/made/${epoch}`,
  /** This account's next counter in an epoch: `conv/<id>/counter/<epoch>`. */
  counter: (id: string, epoch: number): string => `conv/${id}/counter/${epoch}`,
  /** The highest sequence number the agent has read: `conv/<id>/read`. */
  read: (id: string): string => `conv/${id}/read`,
  /** The highest sequence number the customer's device received, as the relay said: `conv/<id>/delivered`. */
  delivered: (id: string): string => `conv/${id}/delivered`,
  /** The highest sequence number covered by a read receipt sent: `conv/<id>/read_sent`. */
  readSent: (id: string): string => `conv/${id}/read_sent`,
} as const;

interface EpochState {
  record: EpochRecord;
  schedule: EpochSecret | null;
  /** The epoch secret, kept while the page runs (hand-offs, signals). */
  k: Uint8Array | null;
  members: Uint8Array[];
  windows: Map<string, ReplayWindow>;
  /** Messages accepted in the epoch (for rotation, §7.7). */
  messages: number;
}

interface Conv {
  id: Uint8Array;
  hex: string;
  org: string;
  customer: string;
  agent: string;
  epochs: Map<number, EpochState>;
  handled: Set<number>;
  /** Messages that arrived before their epoch's secret (a hand-off brings it later). */
  waiting: Sequenced[];
  cursor: number;
  lines: AgentLine[];
  readByCustomer: number;
  delivered: number;
  myRead: number;
  status: ConversationStatus;
  typingUntil: number;
  lastSignal: number;
  blocked: string | null;
  transferredOut: boolean;
  syncing: Promise<void> | null;
  queued: Sequenced[];
  chain: Promise<void>;
}

const PAGE = 200;
const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });
/** How long a "typing" signal shows without another one. */
const TYPING_SECS = 8;
/** The most times a send is tried again after the relay says the epoch moved on. */
const SEND_TRIES = 3;

function u64be(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n));
  return b;
}

/** An agent account with its conversations. */
export class Agent {
  private readonly listeners = new Set<(e: AgentEvent) => void>();
  private readonly convs = new Map<string, Conv>();
  private readonly policies = new Map<string, Policy>();
  private readonly latest = new Map<string, Policy>();
  private conn: Connection | null = null;
  private blockedAll: string | null = null;
  private listing: Promise<void> | null = null;

  private constructor(
    private readonly opts: AgentOptions,
    readonly keys: IdentityKeys,
    readonly card: IdentityCard,
  ) {}

  /** Whether the store holds an account. */
  static async has(store: Store): Promise<boolean> {
    return (await store.get(RECORDS.identity)) !== undefined;
  }

  /** Keeps an imported account in `store` (replacing nothing: a store holds one account). */
  static async keep(store: Store, keys: IdentityKeys, card: IdentityCard): Promise<void> {
    if (await Agent.has(store)) throw new AgentError("bad_answer", "this browser already holds an account");
    const secret = keys.toSecretBytes();
    try {
      await store.put(RECORDS.identity, toCbor({ secret, card: cardToCbor(card) }));
    } finally {
      secret.fill(0);
    }
  }

  /** Loads the account kept in the store. */
  static async load(opts: AgentOptions): Promise<Agent> {
    const stored = await opts.store.get(RECORDS.identity);
    if (stored === undefined) throw new AgentError("no_identity");
    const m = fromCbor(stored);
    if (m === null || typeof m !== "object" || m instanceof Uint8Array || Array.isArray(m) || !(m.secret instanceof Uint8Array)) throw new AgentError("no_identity", "damaged");
    const keys = IdentityKeys.fromSecretBytes(m.secret);
    m.secret.fill(0);
    const card = cardFromCbor(m.card ?? null);
    if (card.role !== "agent") throw new AgentError("no_identity", `the account is a ${card.role}, not an agent`);
    return new Agent(opts, keys, card);
  }

  /** Listens to events; returns the function that stops listening. */
  on(f: (e: AgentEvent) => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  private emit(e: AgentEvent): void {
    for (const f of this.listeners) f(e);
  }

  /** The account's name. */
  get name(): string {
    return this.card.name;
  }

  /** Why all sending is blocked (the org's master key changed), or null. */
  blockedBecause(): string | null {
    return this.blockedAll;
  }

  /** The latest verified policy of `org`, once read. */
  policyOf(org: string): Policy | null {
    return this.latest.get(org) ?? null;
  }

  /** The conversations, newest activity first. */
  conversations(): ConversationView[] {
    return [...this.convs.values()].map((c) => this.view(c)).sort((a, b) => (b.lines.at(-1)?.seq ?? 0) - (a.lines.at(-1)?.seq ?? 0) || a.id.localeCompare(b.id));
  }

  /** One conversation, by id (hex). */
  conversation(id: string): ConversationView | null {
    const c = this.convs.get(id);
    return c === undefined ? null : this.view(c);
  }

  private view(c: Conv): ConversationView {
    return {
      id: c.hex,
      org: c.org,
      customer: c.customer,
      agent: c.agent,
      lines: c.lines,
      unread: c.lines.filter((l) => !l.mine && l.kind === "text" && l.seq > c.myRead).length,
      status: c.status,
      readByCustomer: c.readByCustomer,
      deliveredToCustomer: c.delivered,
      typing: c.typingUntil > this.opts.now(),
      blocked: this.blockedAll ?? c.blocked,
      transferredOut: c.transferredOut,
    };
  }

  /** Connects (and reconnects) to the relay. */
  start(): void {
    if (this.conn !== null) return;
    void this.opts.store.get(RECORDS.relayKey).then((pinned) => {
      this.conn = new Connection(
        this.opts.url,
        this.keys,
        this.card,
        this.opts.socket,
        {
          online: (s) => this.online(s),
          push: (p) => this.onPush(p),
          state: (state, detail) => this.emit(detail === undefined ? { kind: "state", state } : { kind: "state", state, detail }),
          fatal: (error) => this.emit({ kind: "error", error }),
        },
        pinned ?? null,
      );
      this.conn.start();
    });
  }

  /** Disconnects for good. */
  stop(): void {
    this.conn?.stop();
    this.conn = null;
  }

  private session(): Session {
    const s = this.conn?.current() ?? null;
    if (s === null) throw new SessionError("closed", "offline");
    return s;
  }

  private async online(s: Session): Promise<void> {
    if ((await this.opts.store.get(RECORDS.relayKey)) === undefined) await this.opts.store.put(RECORDS.relayKey, s.relayKey);
    if (!s.registered) {
      const r = await s.request({ kind: "register" });
      if (r.kind === "error" && r.code !== "key_registered") throw new RelayError(r.code, r.message);
    }
    await this.list(s);
  }

  /** Reads the list of conversations and syncs each one (once at a time). */
  private async list(s: Session): Promise<void> {
    if (this.listing !== null) return this.listing;
    this.listing = (async () => {
      const r = await s.call({ kind: "list_conversations" });
      if (r.kind !== "conversations") throw new AgentError("bad_answer", r.kind);
      for (const info of r.conversations) this.meet(info);
      this.emit({ kind: "conversations" });
      for (const info of r.conversations) {
        const c = this.convs.get(toHex(info.conversation));
        if (c !== undefined) await this.syncConv(s, c);
      }
    })();
    try {
      await this.listing;
    } finally {
      this.listing = null;
    }
  }

  private meet(info: ConversationInfo): Conv {
    const hex = toHex(info.conversation);
    let c = this.convs.get(hex);
    if (c === undefined) {
      c = {
        id: info.conversation,
        hex,
        org: info.org,
        customer: info.customer,
        agent: info.agent,
        epochs: new Map(),
        handled: new Set(),
        waiting: [],
        cursor: 0,
        lines: [],
        readByCustomer: 0,
        delivered: 0,
        myRead: 0,
        status: "open",
        typingUntil: 0,
        lastSignal: 0,
        blocked: null,
        transferredOut: false,
        syncing: null,
        queued: [],
        chain: Promise.resolve(),
      };
      this.convs.set(hex, c);
      const conv = c;
      void this.opts.store.get(AGENT_RECORDS.read(hex)).then((b) => {
        if (b !== undefined) {
          const v = fromCbor(b);
          if (typeof v === "number") conv.myRead = Math.max(conv.myRead, v);
          this.emit({ kind: "changed", id: hex });
        }
      });
      void this.opts.store.get(AGENT_RECORDS.delivered(hex)).then((b) => {
        if (b !== undefined) {
          const v = fromCbor(b);
          if (typeof v === "number") conv.delivered = Math.max(conv.delivered, v);
          this.emit({ kind: "changed", id: hex });
        }
      });
    }
    c.agent = info.agent;
    return c;
  }

  private async syncConv(s: Session, c: Conv): Promise<void> {
    if (c.syncing !== null) return c.syncing;
    c.syncing = (async () => {
      for (;;) {
        const r = await s.call({ kind: "history", conversation: c.id, after: c.cursor, limit: PAGE });
        if (r.kind !== "items") throw new AgentError("bad_answer", r.kind);
        for (const it of r.items) await this.ingest(c, it);
        if (!r.more || r.items.length === 0) break;
      }
      if (c.cursor > 0) void s.request({ kind: "delivered", conversation: c.id, seq: c.cursor }).catch(() => undefined);
    })();
    try {
      await c.syncing;
    } finally {
      c.syncing = null;
    }
    const queued = c.queued;
    c.queued = [];
    for (const q of queued) await this.ingest(c, q);
    this.emit({ kind: "changed", id: c.hex });
  }

  /** Reads a conversation up to date now (after another device sent, for instance). */
  async sync(id: string): Promise<void> {
    const c = this.need(id);
    await this.syncConv(this.session(), c);
  }

  private onPush(p: Push): void {
    if (p.kind === "item") {
      const c = this.convs.get(toHex(p.item.conversation));
      if (c === undefined) {
        const s = this.conn?.current() ?? null;
        if (s !== null) void this.list(s).catch((error: unknown) => this.fail(error));
        return;
      }
      if (c.syncing !== null) {
        c.queued.push(p.item);
        return;
      }
      c.chain = c.chain
        .then(() => this.ingest(c, p.item))
        .then(() => {
          this.emit({ kind: "changed", id: c.hex });
          const s = this.conn?.current();
          if (s !== undefined && s !== null) void s.request({ kind: "delivered", conversation: c.id, seq: c.cursor }).catch(() => undefined);
        })
        .catch((error: unknown) => this.fail(error));
    } else if (p.kind === "assigned") {
      const s = this.conn?.current() ?? null;
      if (s !== null) void this.list(s).catch((error: unknown) => this.fail(error));
    } else if (p.kind === "delivered") {
      const c = this.convs.get(toHex(p.conversation));
      if (c !== undefined && p.member !== this.card.name && p.seq > c.delivered) {
        c.delivered = p.seq;
        void this.opts.store.put(AGENT_RECORDS.delivered(c.hex), toCbor(p.seq)).catch(() => undefined);
        this.emit({ kind: "changed", id: c.hex });
      }
    } else if (p.kind === "signal") {
      const c = this.convs.get(toHex(p.signal.header.conversation));
      const e = c?.epochs.get(p.signal.header.epoch);
      if (c === undefined || e === undefined || e.k === null) return;
      try {
        const now = this.opts.now();
        const kind = openSignal(p.signal, epochPrk(e.k, c.id, e.record.epoch), c.id, e.record.epoch, e.members, now);
        if (p.signal.header.sentAt < c.lastSignal || equal(p.signal.header.sender, this.keys.signingPublic)) return;
        c.lastSignal = p.signal.header.sentAt;
        c.typingUntil = kind === "typing" ? now + TYPING_SECS : 0;
        this.emit({ kind: "changed", id: c.hex });
      } catch {
        // A signal that fails is dropped silently (§9.7): it says nothing that lasts.
      }
    }
  }

  private fail(error: unknown): void {
    this.emit({ kind: "error", error: error instanceof Error ? error : new Error(String(error)) });
  }

  /** Handles one item once. */
  private async ingest(c: Conv, it: Sequenced): Promise<void> {
    if (c.handled.has(it.seq) || !equal(it.conversation, c.id)) return;
    c.handled.add(it.seq);
    c.cursor = Math.max(c.cursor, it.seq);
    try {
      await this.handle(c, it);
    } catch (e) {
      if (e instanceof AgentError && e.failure === "key_changed") return;
      if (e instanceof AgentError && e.failure === "no_epoch" && it.item.kind === "message") {
        c.waiting.push(it);
        return;
      }
      this.line(c, { seq: it.seq, mine: false, sender: "", text: `refused: ${e instanceof Error ? e.message : String(e)}`, kind: "event", sentAt: it.storedAt });
    }
  }

  private line(c: Conv, l: AgentLine): void {
    c.lines.push(l);
    c.lines.sort((a, b) => a.seq - b.seq);
  }

  /** The policy `version` of `org` (the latest when null), verified and checked against the pinned master. */
  private async policy(org: string, version: number | null, fresh = false): Promise<Policy> {
    if (version !== null && !fresh) {
      const known = this.policies.get(`${org}/${version}`);
      if (known !== undefined) return known;
    }
    const r = await this.session().call({ kind: "get_policy", org, version });
    if (r.kind !== "policy") throw new AgentError("bad_answer", r.kind);
    const p = verifyPolicy(r.policy);
    if (p.org !== org || (version !== null && p.version !== version)) throw new AgentError("bad_answer", "another policy than asked for");
    const pin = await this.opts.store.get(AGENT_RECORDS.orgPin(org));
    if (pin === undefined) await this.opts.store.put(AGENT_RECORDS.orgPin(org), p.master.signingKey);
    else if (!equal(pin, p.master.signingKey)) {
      const detail = `${org}'s master key changed (policy version ${p.version}): sending is blocked until the org's owner confirms the new key`;
      this.blockedAll = detail;
      this.emit({ kind: "key_changed", id: null, detail });
      throw new AgentError("key_changed", detail);
    }
    this.policies.set(`${org}/${p.version}`, p);
    const before = this.latest.get(org);
    if (before === undefined || p.version > before.version) {
      this.latest.set(org, p);
      this.emit({ kind: "policy", org, policy: p });
    }
    return p;
  }

  /** Pins `card` by name; a different key under a pinned name blocks the conversation. */
  private async pin(c: Conv, card: IdentityCard): Promise<void> {
    if (equal(card.signingKey, this.keys.signingPublic)) return;
    const name = AGENT_RECORDS.namePin(card.name);
    const pinned = await this.opts.store.get(name);
    if (pinned === undefined) {
      await this.opts.store.put(name, card.signingKey);
    } else if (!equal(pinned, card.signingKey)) {
      const detail = `${card.name}'s key changed: this may not be the same person. Sending is blocked in this conversation.`;
      c.blocked = detail;
      this.emit({ kind: "key_changed", id: c.hex, detail });
      throw new AgentError("key_changed", detail);
    }
  }

  private async handle(c: Conv, it: Sequenced): Promise<void> {
    const item = it.item;
    if (item.kind === "epoch") {
      const r = item.record;
      let policy = await this.policy(r.org, r.policyVersion);
      if (!equal(policyHash(policy), r.policyHash)) {
        // Another policy under a version read before (the org was made again): read it again,
        // checked against the pinned master as always.
        policy = await this.policy(r.org, r.policyVersion, true);
      }
      verifyEpoch(r, policy);
      const previous = r.epoch === 0 ? null : (c.epochs.get(r.epoch - 1)?.record ?? null);
      if (r.epoch === 0 || previous !== null) checkFollows(r, previous);
      for (const m of r.members) await this.pin(c, m);
      const member = r.members.some((m) => equal(m.signingKey, this.keys.signingPublic));
      let k: Uint8Array | null = null;
      if (member) k = await openEpoch(r, this.keys, policy);
      const wasMember = previous !== null && previous.members.some((m) => equal(m.signingKey, this.keys.signingPublic));
      c.transferredOut = !member && (wasMember || c.transferredOut);
      c.epochs.set(r.epoch, { record: r, schedule: k === null ? null : new EpochSecret(k, r.conversation, r.epoch), k, members: r.members.map((m) => m.signingKey), windows: new Map(), messages: 0 });
      if (r.epoch > 0 && previous !== null) {
        const customer = r.members.find((m) => m.role === "customer");
        const agents = r.members.filter((m) => m.role === "agent").map((m) => m.name);
        const before = previous.members.filter((m) => m.role === "agent").map((m) => m.name);
        if (customer !== undefined && agents.join() !== before.join()) {
          this.line(c, { seq: it.seq, mine: false, sender: "", text: `transferred from ${before.join(", ")} to ${agents.join(", ")}`, kind: "event", sentAt: r.createdAt });
        }
      }
    } else if (item.kind === "hand_off") {
      await this.handOff(c, item.handoff);
    } else if (item.kind === "message") {
      const env = item.envelope;
      const e = c.epochs.get(env.header.epoch);
      if (e === undefined || e.schedule === null) throw new AgentError("no_epoch", `message in epoch ${env.header.epoch} this account cannot read`);
      const body = openMessage(env, {
        conversation: e.record.conversation,
        epoch: e.record.epoch,
        schedule: e.schedule,
        members: e.members,
        window: (sender) => {
          const key = toHex(sender);
          let w = e.windows.get(key);
          if (w === undefined) {
            w = new ReplayWindow();
            e.windows.set(key, w);
          }
          return w;
        },
      });
      e.messages += 1;
      const mine = equal(env.header.sender, this.keys.signingPublic);
      // A counter of this account's key seen here (this browser's own, or another device's in
      // an epoch this browser did not make) is never used by this browser again.
      if (mine) await this.bumpCounter(c.hex, env.header.epoch, env.header.counter + 1);
      const senderCard = e.record.members.find((m) => equal(m.signingKey, env.header.sender));
      const sender = senderCard?.name ?? "?";
      if (env.header.kind === "read") {
        if (!mine && body.length === 8) {
          const seq = Number(new DataView(body.buffer, body.byteOffset, 8).getBigUint64(0));
          if (seq > c.readByCustomer) c.readByCustomer = seq;
        }
        return;
      }
      if (env.header.kind === "status") {
        const code = body.length === 1 ? body[0] : undefined;
        const status = (Object.keys(STATUS_CODES) as ConversationStatus[]).find((s) => STATUS_CODES[s] === code);
        if (senderCard?.role !== "agent" || status === undefined) throw new AgentError("bad_answer", "a status from a non-agent or of an unknown kind");
        c.status = status;
        this.line(c, { seq: it.seq, mine, sender, text: status, kind: "status", sentAt: env.header.sentAt });
        return;
      }
      if (env.header.kind === "attachment") {
        // A reference that does not decode is refused (shown as rejected), never shown as text.
        const ref = decodeAttachmentRef(body);
        this.line(c, { seq: it.seq, mine, sender, text: attachmentLineText(ref), kind: "attachment", sentAt: env.header.sentAt, attachment: ref });
        return;
      }
      this.line(c, { seq: it.seq, mine, sender, text: dec.decode(body), kind: "text", sentAt: env.header.sentAt });
    } else if (item.kind === "notice") {
      this.line(c, { seq: it.seq, mine: false, sender: "", text: "an audit notice was recorded for this conversation (the customer's app checks it)", kind: "event", sentAt: it.storedAt });
    }
  }

  private async handOff(c: Conv, h: Handoff): Promise<void> {
    if (!equal(h.to, this.keys.signingPublic) || !equal(h.conversation, c.id)) return;
    const records = new Map<number, EpochRecord>();
    for (const [n, e] of c.epochs) records.set(n, e.record);
    const secrets = await openHandoff(h, this.keys, records);
    for (const [n, k] of secrets) {
      const e = c.epochs.get(n);
      if (e !== undefined && e.schedule === null) {
        e.schedule = new EpochSecret(k, c.id, n);
        e.k = k;
      }
    }
    const waiting = c.waiting.sort((a, b) => a.seq - b.seq);
    c.waiting = [];
    for (const w of waiting) {
      c.handled.delete(w.seq);
      await this.ingest(c, w);
    }
  }

  private need(id: string): Conv {
    const c = this.convs.get(id);
    if (c === undefined) throw new AgentError("no_conversation", id);
    return c;
  }

  private async readCounter(id: string, epoch: number): Promise<number> {
    const b = await this.opts.store.get(AGENT_RECORDS.counter(id, epoch));
    if (b === undefined) return 0;
    const v = fromCbor(b);
    return typeof v === "number" ? v : 0;
  }

  private async bumpCounter(id: string, epoch: number, next: number): Promise<void> {
    if ((await this.readCounter(id, epoch)) < next) await this.opts.store.put(AGENT_RECORDS.counter(id, epoch), toCbor(next));
  }

  /** Whether this browser made `record` (its hash was kept before the record was sent). */
  private async madeHere(id: string, record: EpochRecord): Promise<boolean> {
    const b = await this.opts.store.get(AGENT_RECORDS.made(id, record.epoch));
    return b !== undefined && equal(b, epochRecordHash(record));
  }

  private latestEpoch(c: Conv): EpochState {
    const n = Math.max(...c.epochs.keys());
    const e = c.epochs.get(n);
    if (e === undefined) throw new AgentError("no_epoch", "the customer has not opened the first epoch yet");
    return e;
  }

  /**
   * Creates and stores epoch `n + 1` with `members` (the same members to rotate; the customer
   * and another agent to transfer). When `mine`, the record's hash is kept first: this
   * browser seals in it. Returns the record and its secret.
   */
  private async newEpoch(c: Conv, last: EpochRecord, members: IdentityCard[], mine: boolean): Promise<{ record: EpochRecord; k: Uint8Array; stored: boolean }> {
    const policy = await this.policy(c.org, null);
    const customer = members.find((m) => m.role === "customer");
    if (customer === undefined) throw new AgentError("bad_answer", "no customer in the epoch");
    const epoch = last.epoch + 1;
    const k = this.opts.random(32);
    const sealedSecrets = [];
    for (const m of members) sealedSecrets.push(await seal(this.opts.random, m.agreementKey, { purpose: labels.SEAL_EPOCH_SECRET, conversation: c.id, epoch, recipient: m.signingKey, extra: new Uint8Array(0) }, k));
    const escrow = await computeEscrow(k, c.id, epoch, customer.signingKey, policy);
    const unsigned = {
      version: 1,
      org: policy.org,
      conversation: c.id,
      epoch,
      policyVersion: policy.version,
      policyHash: policyHash(policy),
      previous: epochRecordHash(last),
      createdAt: this.opts.now(),
      creator: this.keys.signingPublic,
      members,
      sealedSecrets,
      escrow,
      commitment: epochCommitment(c.id, epoch, k),
    };
    const record: EpochRecord = { ...unsigned, signature: this.keys.sign(epochSignedBytes(unsigned)) };
    if (mine) await this.opts.store.put(AGENT_RECORDS.made(c.hex, epoch), epochRecordHash(record));
    const r = await this.session().request({ kind: "put_epoch", record });
    if (r.kind === "error" && r.code === "stale_epoch") return { record, k, stored: false };
    if (r.kind === "error") throw new RelayError(r.code, r.message);
    if (r.kind !== "stored") throw new AgentError("bad_answer", r.kind);
    return { record, k, stored: true };
  }

  /** The epoch this browser seals in now: the current one if it made it and it is not full or old, else a new one (§7.7). */
  private async sendingEpoch(c: Conv): Promise<EpochState> {
    for (let tries = 0; tries < SEND_TRIES; tries++) {
      const last = this.latestEpoch(c);
      if (c.transferredOut || last.schedule === null || !last.members.some((m) => equal(m, this.keys.signingPublic))) throw new AgentError("transferred", `${c.customer}'s conversation is assigned to ${c.agent} now`);
      const policy = await this.policy(c.org, last.record.policyVersion);
      const full = last.messages >= policy.rotateAfterMessages || this.opts.now() - last.record.createdAt >= policy.rotateAfterSecs;
      if (!full && (await this.madeHere(c.hex, last.record))) return last;
      const made = await this.newEpoch(c, last.record, last.record.members, true);
      made.k.fill(0);
      // Read it back through the one ingest path (or the epoch another member made first).
      await this.syncConv(this.session(), c);
    }
    throw new AgentError("no_epoch", "the conversation's epoch kept moving");
  }

  /** Seals and sends one message of `kind`; returns its sequence number. */
  private async sendKind(id: string, kind: ContentKind, body: Uint8Array): Promise<number> {
    const c = this.need(id);
    const blocked = this.blockedAll ?? c.blocked;
    if (blocked !== null) throw new AgentError("key_changed", blocked);
    const lock = this.opts.withSendLock ?? ((f) => f());
    return lock(async () => {
      const s = this.session();
      if (c.epochs.size === 0) await this.syncConv(s, c);
      for (let tries = 0; ; tries++) {
        const e = await this.sendingEpoch(c);
        const epoch = e.record.epoch;
        // The counter is persisted before the message is sealed: a crash burns it, never reuses it.
        const counter = await this.readCounter(c.hex, epoch);
        await this.opts.store.put(AGENT_RECORDS.counter(c.hex, epoch), toCbor(counter + 1));
        if (e.schedule === null) throw new AgentError("not_member");
        const sentAt = this.opts.now();
        const envelope = sealMessage(e.schedule, c.id, epoch, this.keys, counter, kind, sentAt, body);
        const r = await s.request({ kind: "send", envelope });
        if (r.kind === "stored") {
          const raw: CborValue = { conversation: c.id, seq: r.seq, stored_at: sentAt, item: { message: envelopeToCbor(envelope) } };
          if (c.cursor + 1 === r.seq) await this.ingest(c, sequencedFromCbor(raw));
          else await this.syncConv(s, c);
          this.emit({ kind: "changed", id: c.hex });
          return r.seq;
        }
        if (r.kind === "error" && ["stale_epoch", "epoch_full", "counter_reused", "forbidden"].includes(r.code) && tries + 1 < SEND_TRIES) {
          // The epoch moved on (another member rotated, the limit was reached, a transfer):
          // read the conversation up to date and try again in the epoch that is current now.
          if (r.code === "epoch_full") e.messages = Number.MAX_SAFE_INTEGER;
          await this.syncConv(s, c);
          continue;
        }
        if (r.kind === "error") throw new RelayError(r.code, r.message);
        throw new AgentError("bad_answer", r.kind);
      }
    });
  }

  /** Sends a text message. */
  send(id: string, text: string): Promise<number> {
    return this.sendKind(id, "text", enc.encode(text));
  }

  /**
   * Fetches and opens the file of an attachment line of conversation `id` (§9.8): every chunk
   * checked, then the size and hash against the signed reference. Throws an `AttachmentError`
   * (never returns part of a file) when a check fails.
   */
  async download(id: string, ref: AttachmentRef): Promise<Uint8Array> {
    const c = this.need(id);
    return downloadAttachment(this.session(), c.id, ref);
  }

  /** Sets the conversation's status (a message of kind `status`, §9.6). */
  setStatus(id: string, status: ConversationStatus): Promise<number> {
    return this.sendKind(id, "status", new Uint8Array([STATUS_CODES[status]]));
  }

  /**
   * Marks the conversation read up to its newest line (the unread count goes to zero) and sends
   * the customer an end-to-end read receipt when there is something new from them.
   */
  async markRead(id: string): Promise<void> {
    const c = this.need(id);
    const upTo = Math.max(0, ...c.lines.filter((l) => !l.mine && l.kind === "text").map((l) => l.seq));
    if (upTo > c.myRead) {
      c.myRead = upTo;
      await this.opts.store.put(AGENT_RECORDS.read(id), toCbor(upTo));
      this.emit({ kind: "changed", id });
    }
    const sentB = await this.opts.store.get(AGENT_RECORDS.readSent(id));
    const sent = sentB === undefined ? 0 : Number(fromCbor(sentB));
    if (upTo > sent && !c.transferredOut && (this.blockedAll ?? c.blocked) === null) {
      await this.sendKind(id, "read", u64be(upTo));
      await this.opts.store.put(AGENT_RECORDS.readSent(id), toCbor(upTo));
    }
  }

  /** Tells the other members online that this agent is typing (or stopped). Never stored. */
  async signal(id: string, kind: SignalKind): Promise<void> {
    const c = this.need(id);
    if (c.epochs.size === 0) return;
    const e = this.latestEpoch(c);
    if (e.k === null || !e.members.some((m) => equal(m, this.keys.signingPublic))) return;
    const env = sealSignal(epochPrk(e.k, c.id, e.record.epoch), c.id, e.record.epoch, this.keys, kind, this.opts.now(), this.opts.random(12));
    const r = await this.session().request({ kind: "signal", signal: env });
    if (r.kind === "error" && r.code !== "stale_epoch") throw new RelayError(r.code, r.message);
  }

  /**
   * Transfers the conversation to agent `to` (§7.6, as `sealdesk transfer` does): the new
   * agent's certificate checked against the org's latest policy and its key pinned, the relay
   * told (`transfer`), a new epoch with the customer and the new agent, and, when the policy
   * has `history_handoff`, the earlier epochs' secrets sealed to the new agent.
   */
  async transfer(id: string, to: string): Promise<number> {
    const c = this.need(id);
    const blocked = this.blockedAll ?? c.blocked;
    if (blocked !== null) throw new AgentError("key_changed", blocked);
    const lock = this.opts.withSendLock ?? ((f) => f());
    return lock(async () => {
      const s = this.session();
      await this.syncConv(s, c);
      const last = this.latestEpoch(c);
      if (last.schedule === null) throw new AgentError("transferred", "this account is not a member of the current epoch");
      const policy = await this.policy(c.org, null);
      const r = await s.call({ kind: "get_certificate", org: c.org, agent: to });
      if (r.kind !== "certificate") throw new AgentError("bad_answer", r.kind);
      const cert = verifyAgentCertificate(r.certificate, policy, this.opts.now());
      if (cert.agent.name !== to || cert.agent.role !== "agent") throw new AgentError("bad_answer", "the certificate names another agent");
      await this.pin(c, cert.agent);
      const customer = last.record.members.find((m) => m.role === "customer");
      if (customer === undefined) throw new AgentError("bad_answer", "the current epoch has no customer");
      await s.call({ kind: "transfer", conversation: c.id, agent: to });
      const made = await this.newEpoch(c, last.record, [customer, cert.agent], false);
      made.k.fill(0);
      if (!made.stored) throw new AgentError("bad_answer", "another epoch was stored first");
      if (policy.historyHandoff) {
        const epochs: [number, Sealed][] = [];
        for (const [n, e] of [...c.epochs].sort((a, b) => a[0] - b[0])) {
          if (e.k === null || !e.members.some((m) => equal(m, this.keys.signingPublic))) continue;
          epochs.push([n, await seal(this.opts.random, cert.agent.agreementKey, { purpose: labels.SEAL_HANDOFF, conversation: c.id, epoch: n, recipient: cert.agent.signingKey, extra: new Uint8Array(0) }, e.k)]);
        }
        if (epochs.length > 0) {
          const unsigned = { conversation: c.id, from: this.keys.signingPublic, to: cert.agent.signingKey, epochs, createdAt: this.opts.now() };
          const handoff: Handoff = { ...unsigned, signature: this.keys.sign(handoffSignedBytes(unsigned)) };
          const h = await s.request({ kind: "put_hand_off", handoff });
          if (h.kind === "error") throw new RelayError(h.code, h.message);
        }
      }
      c.agent = to;
      c.transferredOut = true;
      await this.syncConv(s, c).catch(() => undefined);
      this.emit({ kind: "changed", id: c.hex });
      return made.record.epoch;
    });
  }

  /** The epoch records' CBOR of a conversation, for tests and diagnostics (no secrets). */
  epochRecords(id: string): CborValue[] {
    return [...this.need(id).epochs.values()].map((e) => epochToCbor(e.record));
  }
}
