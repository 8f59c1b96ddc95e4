/**
 * The agent side, as the console runs it: one account (imported from the CLI's vault,
 * `vault-import.ts`) with every conversation assigned to it. Reading — each conversation's
 * items verified, hand-offs, receipts, signals, unread counts kept locally — is
 * `agent-reader.ts` (release notices read from the audit log and checked as the widget checks
 * them: `agent-notices.ts`); the model the console shows is `agent-model.ts`; this module adds sending,
 * setting the status, read receipts, typing signals and transfers.
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
 * here, the holes found (with the requests made for them), and the read and delivery marks.
 */
import {
  ProtocolError,
  envelopeToCbor,
  epochRecordHash,
  epochToCbor,
  equal,
  fromCbor,
  handoffSignedBytes,
  labels,
  seal,
  sealMessage,
  toCbor,
  verifyAgentCertificate,
  type CborValue,
  type ContentKind,
  type EpochRecord,
  type Handoff,
  type IdentityCard,
  type IdentityKeys,
  type Policy,
  type Sealed,
} from "@sealdesk/protocol";
import { AGENT_RECORDS, AgentError, STATUS_CODES, readable, viewOf, type AgentOptions, type Conv, type ConversationStatus, type ConversationView, type EpochState } from "./agent-model.js";
import { AgentReader } from "./agent-reader.js";
import { downloadAttachment, encodeAttachmentRef, sealAttachment, uploadAttachment, type AttachmentRef } from "./attachment.js";
import { makeEpochRecord, readReceiptBody } from "./epochs.js";
import { sequencedFromCbor } from "./frames.js";
import { readAccount, takeCounter, writeAccount, type SealedText } from "./member.js";
import { RelayError, sendEnvelope } from "./session.js";
import { epochPrk, sealSignal, type SignalKind } from "./signal.js";
import { RECORDS, type Store } from "./store.js";

export * from "./agent-model.js";

const enc = new TextEncoder();
/** The most times a send is tried again after the relay says the epoch moved on. */
const SEND_TRIES = 3;

/** An agent account with its conversations. */
export class Agent extends AgentReader {
  /** Whether the store holds an account. */
  static async has(store: Store): Promise<boolean> {
    return (await store.get(RECORDS.identity)) !== undefined;
  }

  /** Keeps an imported account in `store` (replacing nothing: a store holds one account). */
  static async keep(store: Store, keys: IdentityKeys, card: IdentityCard): Promise<void> {
    if (await Agent.has(store)) throw new AgentError("bad_answer", "this browser already holds an account");
    await writeAccount(store, keys, card);
  }

  /** Loads the account kept in the store. */
  static async load(opts: AgentOptions): Promise<Agent> {
    let account;
    try {
      account = await readAccount(opts.store);
    } catch (e) {
      if (e instanceof ProtocolError) throw new AgentError("no_identity", "damaged");
      throw e;
    }
    if (account === undefined) throw new AgentError("no_identity");
    if (account.card.role !== "agent") throw new AgentError("no_identity", `the account is a ${account.card.role}, not an agent`);
    return new Agent(opts, account.keys, account.card);
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
    return viewOf(c, this.opts.now(), this.blockedAll);
  }

  /** Reads a conversation up to date now (after another device sent, for instance). */
  async sync(id: string): Promise<void> {
    const c = this.need(id);
    await this.syncConv(this.session(), c);
  }

  /**
   * Reads the audit log's entries new since the last verified head (`agent-log.ts`) for notices
   * about the conversations, and checks them (`agent-notices.ts`; the relay pushes notices to
   * customers only), with the notices not yet witnessed again. The view is told of each.
   */
  async checkNotices(): Promise<void> {
    await this.scanNotices(this.session());
  }

  /** Whether the relay tells this session when the audit log grows (else the console polls). */
  watchesAudit(): boolean {
    return this.watchingAudit;
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
  private async newEpoch(c: Conv, last: EpochRecord, members: IdentityCard[], mine: boolean): Promise<{ record: EpochRecord; k: Uint8Array; stored: boolean; seq: number }> {
    const policy = await this.policy(c.org, null);
    const customer = members.find((m) => m.role === "customer");
    if (customer === undefined) throw new AgentError("bad_answer", "no customer in the epoch");
    const k = this.opts.random(32);
    const record = await makeEpochRecord(this.keys, this.opts.random, { policy, conversation: c.id, previous: last, members, customer: customer.signingKey, k, createdAt: this.opts.now() });
    if (mine) await this.opts.store.put(AGENT_RECORDS.made(c.hex, record.epoch), epochRecordHash(record));
    const r = await this.session().request({ kind: "put_epoch", record });
    if (r.kind === "error" && r.code === "stale_epoch") return { record, k, stored: false, seq: 0 };
    if (r.kind === "error") throw new RelayError(r.code, r.message);
    if (r.kind !== "stored") throw new AgentError("bad_answer", r.kind);
    return { record, k, stored: true, seq: r.seq };
  }

  /**
   * Whether `c`'s latest accepted epoch is one this account is a member of and holds the secret
   * of. When not, a send reads the history first (`sendKind`): a transfer to this account may
   * be under way here, its record held back until the hand-off stored after it is handled.
   */
  private seals(c: Conv): boolean {
    if (c.transferredOut || c.epochs.size === 0) return false;
    const last = this.latestEpoch(c);
    return last.schedule !== null && last.members.some((m) => equal(m, this.keys.signingPublic));
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
  private async sendKind(id: string, kind: ContentKind, body: Uint8Array, sealed?: (s: SealedText) => Promise<void>): Promise<number> {
    const c = this.need(id);
    const blocked = this.blockedAll ?? c.blocked;
    if (blocked !== null) throw new AgentError("key_changed", blocked);
    return this.withSendLock(() => this.sealingText(sealed, async () => {
      const s = this.session();
      // No epoch of this account's yet: read once (the sync first waits for the items being
      // handled, a hand-off among them, then reads what was stored since), so that a send right
      // after a transfer to this account goes out in the epoch the transfer opened.
      if (!this.seals(c)) await this.syncConv(s, c);
      for (let tries = 0; ; tries++) {
        const e = await this.sendingEpoch(c);
        const epoch = e.record.epoch;
        // The counter is persisted before the message is sealed: a crash burns it, never reuses it.
        const counter = await takeCounter(this.opts.store, AGENT_RECORDS.counter(c.hex, epoch));
        if (e.schedule === null) throw new AgentError("not_member");
        const sentAt = this.opts.now();
        const envelope = sealMessage(e.schedule, c.id, epoch, this.keys, counter, kind, sentAt, body);
        // Unanswered in time: the session is closed, and the send not tried again (`sendEnvelope`).
        const r = await sendEnvelope(s, envelope, this.opts.sendTimeoutMs);
        if (r.kind === "stored") {
          const raw: CborValue = { conversation: c.id, seq: r.seq, stored_at: sentAt, item: { message: envelopeToCbor(envelope) } };
          await this.ingestOwn(s, c, sequencedFromCbor(raw));
          if (r.quota !== undefined) this.warnBytes(c.hex, c.org, r.quota);
          return r.seq;
        }
        if (r.kind === "error" && ["stale_epoch", "epoch_full", "counter_reused", "forbidden"].includes(r.code) && tries + 1 < SEND_TRIES) {
          // The epoch moved on (another member rotated, the limit was reached, a transfer), or
          // the relay holds this counter (a store restored from an old copy, its messages since
          // not in the history it read): read the conversation up to date and try again in the
          // epoch that is current now. Never under the refused counter (`takeCounter` burnt
          // it), nor under any other of its epoch: with the send lock held to the answer no tab
          // of this store overtakes another, so the relay has counters this store does not
          // know, and the one after it may be one of them — a ciphertext under a key and nonce
          // the relay holds already. A full or reused epoch is left for a new one of this
          // browser's (`sendingEpoch`).
          if (r.code === "epoch_full" || r.code === "counter_reused") e.messages = Number.MAX_SAFE_INTEGER;
          await this.syncConv(s, c);
          continue;
        }
        if (r.kind === "error") throw new RelayError(r.code, r.message);
        throw new AgentError("bad_answer", r.kind);
      }
    }));
  }

  /**
   * Sends a text message. `sealed`, when given, is told what identifies it (epoch, sender,
   * counter) before it goes out (`Member.sealingText`), as the customer's `send`.
   */
  send(id: string, text: string, sealed?: (s: SealedText) => Promise<void>): Promise<number> {
    return this.sendKind(id, "text", enc.encode(text), sealed);
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

  /**
   * Sends a file in conversation `id` (§9.8), as the widget's customer does: sealed under a fresh
   * key, uploaded chunk by chunk (`progress` told the chunks held of all), then announced by a
   * message of kind `attachment` whose body is its reference (the caption may be empty). Returns
   * the announcement's sequence number. Refused before anything is uploaded when sending is
   * blocked or the conversation was transferred.
   */
  async sendFile(id: string, file: Uint8Array, name: string, mediaType: string, caption = "", progress?: (stored: number, chunks: number) => void): Promise<number> {
    const c = this.need(id);
    const blocked = this.blockedAll ?? c.blocked;
    if (blocked !== null) throw new AgentError("key_changed", blocked);
    if (c.transferredOut) throw new AgentError("transferred", `${c.customer}'s conversation is assigned to ${c.agent} now`);
    const sealed = sealAttachment(file, name, mediaType === "" ? "application/octet-stream" : mediaType, caption, this.opts.random);
    const uploaded = await uploadAttachment(this.session(), c.id, sealed, progress);
    if (uploaded.quota !== undefined) this.warnBytes(c.hex, c.org, uploaded.quota);
    return this.sendKind(id, "attachment", encodeAttachmentRef(sealed.ref));
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
    const upTo = Math.max(0, ...c.lines.filter(readable).map((l) => l.seq));
    if (upTo > c.myRead) {
      c.myRead = upTo;
      await this.opts.store.put(AGENT_RECORDS.read(id), toCbor(upTo));
      this.emit({ kind: "changed", id });
    }
    const sentB = await this.opts.store.get(AGENT_RECORDS.readSent(id));
    const sent = sentB === undefined ? 0 : Number(fromCbor(sentB));
    if (upTo > sent && !c.transferredOut && (this.blockedAll ?? c.blocked) === null) {
      await this.sendKind(id, "read", readReceiptBody(upTo));
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
   * has `history_handoff`, the earlier epochs' secrets sealed to the new agent: those it was a member
   * of, then those it was handed (§7.6). The record made is kept (`AGENT_RECORDS.kept`).
   */
  async transfer(id: string, to: string): Promise<number> {
    const c = this.need(id);
    const blocked = this.blockedAll ?? c.blocked;
    if (blocked !== null) throw new AgentError("key_changed", blocked);
    return this.withSendLock(async () => {
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
      // The record made is kept and checked like any other: the relay does not serve it to this
      // account (no member of it), and a transfer back follows it (§7.6).
      await this.opts.store.put(AGENT_RECORDS.kept(c.hex, made.record.epoch), toCbor(epochToCbor(made.record)));
      await this.opts.store.put(AGENT_RECORDS.keptSeq(c.hex, made.record.epoch), toCbor(made.seq));
      await this.handleEpoch(c, made.seq, made.record);
      if (policy.historyHandoff) {
        // Every epoch this account holds: first those it was a member of, then, in a second
        // hand-off, those it was handed (a reader that knows only the member rule still opens
        // the first; §7.6 "What a transferring agent hands over").
        const held = [...c.epochs].filter(([, e]) => e.k !== null).sort((a, b) => a[0] - b[0]);
        const isMember = (e: EpochState): boolean => e.members.some((m) => equal(m, this.keys.signingPublic));
        for (const part of [held.filter(([, e]) => isMember(e)), held.filter(([, e]) => !isMember(e))]) {
          if (part.length === 0) continue;
          const epochs: [number, Sealed][] = [];
          for (const [n, e] of part) {
            if (e.k === null) continue;
            epochs.push([n, await seal(this.opts.random, cert.agent.agreementKey, { purpose: labels.SEAL_HANDOFF, conversation: c.id, epoch: n, recipient: cert.agent.signingKey, extra: new Uint8Array(0) }, e.k)]);
          }
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

