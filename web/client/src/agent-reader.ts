/**
 * The reading half of the agent (`agent.ts` adds sending): the conversations assigned to the
 * account listed and each read from the relay (`SyncedConversation`), and every item verified
 * before it is shown. Epoch records at all three levels of §7.5: the policy fetched and checked
 * against the org master pinned per org (a changed master blocks every conversation), every
 * member pinned by name (a changed key blocks the conversation), the chain followed, the secret
 * opened when this account is a member. Hand-offs open earlier epochs (§7.6, through the chain
 * of earlier hand-offs: `Holders`); messages are opened in the order of §9.4 (text,
 * attachments, read receipts, statuses §9.6); typing signals
 * (§9.7) and delivery marks come as pushes. Release notices are read from the audit log and
 * checked as the widget's customer checks them (`agent-notices.ts`).
 */
import {
  EpochError,
  EpochSecret,
  Holders,
  checkFollows,
  customerOf,
  epochRecordHash,
  entryLeafHash,
  equal,
  fromCbor,
  openEpoch,
  openHandoff,
  openMessage,
  policyHash,
  toCbor,
  toHex,
  verifyEpoch,
  verifyPolicy,
  type AuditEntry,
  type CborValue,
  type EpochRecord,
  type Handoff,
  type IdentityCard,
  type Policy,
} from "@sealdesk/protocol";
import { AuditLogReader, type LogLookContext } from "./agent-log.js";
import { checkAgentNotice, noticeConversation } from "./agent-notices.js";
import { AGENT_RECORDS, AgentError, STATUS_CODES, TYPING_SECS, type AgentEvent, type AgentLine, type AgentOptions, type Conv, type ConversationStatus } from "./agent-model.js";
import { attachmentLineText, decodeAttachmentRef } from "./attachment.js";
import { replayWindow, readReceiptSeq } from "./epochs.js";
import { epochFromCbor, type ByteQuota, type ConversationInfo, type Push, type Sequenced } from "./frames.js";
import { HISTORY_PAGE, Member, SyncedConversation, raiseNumber } from "./member.js";
import { MAX_SYNC_PAGES } from "./paging.js";
import type { Session } from "./session.js";
import { epochPrk, openSignal } from "./signal.js";
import { SequenceHoles, type Verdict } from "./customer-holes.js";

const dec = new TextDecoder("utf-8", { fatal: true });
/** How a record held back (its previous one not yet read) is shown until it is accepted. */
const HELD_BACK = "held back: ";

/** An agent account reading the conversations assigned to it. */
export abstract class AgentReader extends Member<AgentEvent, AgentOptions> {
  /** The conversations, by id (hex). */
  protected readonly convs = new Map<string, Conv>();
  private readonly policies = new Map<string, Policy>();
  /** The latest verified policy of each org. */
  protected readonly latest = new Map<string, Policy>();
  /** Why all sending is blocked (the org's master key changed), or null. */
  protected blockedAll: string | null = null;
  private listing: Promise<void> | null = null;
  /** The audit log read for notices from the last verified head kept (`agent-log.ts`). */
  private readonly auditLog = new AuditLogReader(this.opts.store);
  /** Whether the relay tells this session when the log grows (`watch_audit`). */
  protected watchingAudit = false;

  protected async resume(s: Session): Promise<void> {
    // Told of every append from now on, so nothing appended while the list is read is missed.
    // A relay that does not know the request is asked once (§13.5's older-relay rule: a close
    // on it ends this session, and the next one is opened at once and not asked); the console
    // then looks at the log every few seconds (`watchesAudit`).
    this.watchingAudit = (await s.watch("watch_audit")) === "watching";
    await this.list(s);
    // A log that cannot be read now is read on the next look; it stops nothing else.
    await this.scanNotices(s).catch((error: unknown) => this.fail(error));
  }

  /**
   * Reads the audit log's entries new since the last verified head kept (`agent-log.ts`: a log
   * that does not extend it is refused with an `AuditLogError`), and checks every one about a
   * conversation (`agent-notices.ts`; the relay pushes notices to customers only), then checks
   * again the notices not yet witnessed. Runs when the console starts, when the relay says the
   * log grew (`audit_grew`), when a conversation is opened, and now and then.
   */
  protected async scanNotices(s: Session): Promise<void> {
    const relayKey = this.conn?.relayKey ?? null;
    if (relayKey === null) return;
    const check = async (c: Conv, index: number, entry: AuditEntry, raw: CborValue): Promise<void> => {
      const had = c.notices.get(index);
      if (had !== undefined && (had.verified || had.unwitnessed === null || had.unwitnessed === undefined)) return;
      // Checked again (it was not yet witnessed): it is the same notice, not a repeat of itself.
      if (had !== undefined) c.noticeLeaves.delete(toHex(entryLeafHash(entry)));
      const policy = this.latest.get(c.org) ?? (await this.policy(c.org, null));
      const customer = [...c.epochs.values()].map((e) => e.record.members.find((m) => m.role === "customer")).find((m) => m !== undefined) ?? null;
      const notice = await checkAgentNotice(s, index, raw, { org: c.org, conversation: c.id, customer, policy, relayKey, seen: c.noticeLeaves, store: this.opts.store, now: this.opts.now });
      c.notices.set(index, { ...notice, at: entry.at });
      this.emit({ kind: "changed", id: c.hex });
    };
    const ctx: LogLookContext = {
      relayKey,
      conversations: () => [...this.convs.keys()],
      conversationOf: (entry) => {
        const conv = noticeConversation(entry);
        return conv === null ? null : toHex(conv);
      },
      found: async (f) => {
        const c = this.convs.get(f.conversation);
        if (c !== undefined) await check(c, f.index, f.entry, f.raw);
      },
    };
    await this.auditLog.look(s, ctx);
    for (const c of this.convs.values()) {
      for (const n of [...c.notices.values()]) if (!n.verified && n.unwitnessed !== null && n.unwitnessed !== undefined) await this.auditLog.reread(s, n.index, ctx);
    }
  }

  /** Whether a notice is waiting for the trustees' cosignatures (checked again at each look). */
  noticesPending(): boolean {
    return [...this.convs.values()].some((c) => [...c.notices.values()].some((n) => !n.verified && n.unwitnessed !== null && n.unwitnessed !== undefined));
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
      const conv: Conv = {
        id: info.conversation,
        hex,
        org: info.org,
        customer: info.customer,
        agent: info.agent,
        epochs: new Map(),
        log: new SyncedConversation(info.conversation, (it) => this.ingest(conv, it), (kind) => new AgentError("bad_answer", kind), new SequenceHoles((epoch) => this.judgeRun(conv, epoch, true), true, { store: this.opts.store, key: AGENT_RECORDS.holes(hex) }), (e) => this.fail(e)),
        waiting: [],
        earlier: null,
        handoffs: [],
        lines: [],
        readByCustomer: 0,
        delivered: 0,
        myRead: 0,
        status: "open",
        typingUntil: 0,
        lastSignal: 0,
        blocked: null,
        transferredOut: false,
        notices: new Map(),
        noticeLeaves: new Set(),
      };
      c = conv;
      this.convs.set(hex, conv);
      // Its notices may be in the part of the log read already: the next look reads them
      // (from the indices kept for it, or once from the log's start: `agent-log.ts`).
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

  /** Reads `c` up to date, asks again for what is missing, then tells the view. */
  protected async syncConv(s: Session, c: Conv): Promise<void> {
    await c.log.sync(s);
    await this.keptNext(c);
    await this.checkHoles(s, c);
    this.emit({ kind: "changed", id: c.hex });
  }

  /**
   * An item this browser stored itself (its message), handled in order as any other
   * (`SyncedConversation.stored`: after the pushes and a sync under way, the history read first
   * when it is not the next item), then the holes asked for again and the view told.
   */
  protected async ingestOwn(s: Session, c: Conv, it: Sequenced): Promise<void> {
    await c.log.stored(it, s);
    await this.checkHoles(s, c);
    this.emit({ kind: "changed", id: c.hex });
  }

  /**
   * Asks the relay again for the items in `c`'s holes (`customer-holes.ts`, the customer's
   * rules with the runs its pages skip judged by `judgeRun`: at most `REFETCH_PAGES` pages, a
   * try only when the cursor moved, `REFETCH_LIMIT` tries); every open hole is shown in its
   * place (`ConversationView.withheld`), given up after the last try.
   */
  private async checkHoles(s: Session | null, c: Conv): Promise<void> {
    await c.log.holes?.refetch(s, c.id, (it) => this.ingest(c, it), (kind) => new AgentError("bad_answer", kind));
  }

  /**
   * What a skipped run claiming `epoch` of `c` is worth (PROTOCOL §13.10): a lie when this
   * account is a member of that epoch's record or (`handed`) was handed its secret; unknown
   * while the record has not arrived; else (an epoch it is no member of, conversation-level
   * items) it holds up.
   */
  private judgeRun(c: Conv, epoch: number | undefined, handed: boolean): Verdict {
    if (epoch === undefined) return "holds";
    const e = c.epochs.get(epoch);
    if (e === undefined) return "unknown";
    const member = e.members.some((m) => equal(m, this.keys.signingPublic));
    return member || (handed && e.k !== null) ? "lie" : "holds";
  }

  /** The relay's warning ahead of a stored-bytes quota, after a send (`id`) or pushed (`null`): told once. */
  protected warnBytes(id: string | null, org: string | null, quota: ByteQuota): void {
    if (this.quotaSeen.fresh(org, quota)) this.emit({ kind: "bytes_quota", id, org, quota });
  }

  /** An item pushed for `c`: handled in order (`SyncedConversation.push`), then the holes. */
  private pushed(c: Conv, item: Sequenced): void {
    c.log.push(
      item,
      () => this.current(),
      (error) => this.fail(error),
      () => {
        this.emit({ kind: "changed", id: c.hex });
        void this.checkHoles(this.current(), c)
          .then(() => this.emit({ kind: "changed", id: c.hex }))
          .catch((error: unknown) => this.fail(error));
      },
    );
  }

  protected onPush(p: Push): void {
    if (p.kind === "quota_warning") {
      // §13.12: the org's quota (or the agent's own), at the crossing and after each sign-in.
      this.warnBytes(null, p.org, p.quota);
    } else if (p.kind === "item") {
      const hex = toHex(p.item.conversation);
      const c = this.convs.get(hex);
      if (c !== undefined) return this.pushed(c, p.item);
      // A conversation this agent does not know yet: listed, then the item handled as a push
      // (the listing's sync may have read the history before the item was stored). A listing
      // under way may have been answered before the conversation existed: listed again then.
      const s = this.current();
      if (s === null) return;
      void this.list(s)
        .then(async () => {
          if (!this.convs.has(hex)) await this.list(s);
          const met = this.convs.get(hex);
          if (met !== undefined) this.pushed(met, p.item);
        })
        .catch((error: unknown) => this.fail(error));
    } else if (p.kind === "assigned") {
      const s = this.current();
      if (s !== null)
        void this.list(s)
          .then(() => this.scanNotices(s))
          .catch((error: unknown) => this.fail(error));
    } else if (p.kind === "audit_grew") {
      // A hint: the look fetches the signed head and proves it extends the kept one.
      const s = this.current();
      if (s !== null) void this.scanNotices(s).catch((error: unknown) => this.fail(error));
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

  /** Handles one item once. */
  protected async ingest(c: Conv, it: Sequenced): Promise<void> {
    if (!equal(it.conversation, c.id)) return;
    // Tracked until handled: a push after it, and a sync (a send's, after `stale_epoch`), wait for it.
    await c.log.once(it.seq, async () => {
      try {
        await this.handle(c, it);
      } catch (e) {
        if (e instanceof AgentError && e.failure === "key_changed") return;
        if (e instanceof AgentError && e.failure === "no_epoch" && it.item.kind === "message") {
          c.waiting.push(it);
          return;
        }
        if (e instanceof AgentError && e.failure === "no_epoch" && it.item.kind === "epoch") {
          // Held back, never accepted, until the records before it are read: a hand-off makes
          // this account a reader of them (a transfer while it is online, §7.6).
          c.waiting.push(it);
          if (!c.lines.some((l) => l.seq === it.seq && l.kind === "event")) this.line(c, { seq: it.seq, mine: false, sender: "", text: `${HELD_BACK}${e.message}`, kind: "event", sentAt: it.storedAt });
          return;
        }
        this.line(c, { seq: it.seq, mine: false, sender: "", text: `refused: ${e instanceof Error ? e.message : String(e)}`, kind: "event", sentAt: it.storedAt });
      }
    });
  }

  /** Adds a line to `c`, in sequence order. */
  protected line(c: Conv, l: AgentLine): void {
    c.lines.push(l);
    c.lines.sort((a, b) => a.seq - b.seq);
  }

  /** The policy `version` of `org` (the latest when null), verified and checked against the pinned master. */
  protected async policy(org: string, version: number | null, fresh = false): Promise<Policy> {
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
  protected async pin(c: Conv, card: IdentityCard): Promise<void> {
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
      await this.handleEpoch(c, it.seq, item.record);
    } else if (item.kind === "hand_off") {
      await this.handOff(c, it.seq, item.handoff);
    } else if (item.kind === "message") {
      const env = item.envelope;
      const e = c.epochs.get(env.header.epoch);
      if (e === undefined || e.schedule === null) throw new AgentError("no_epoch", `message in epoch ${env.header.epoch} this account cannot read`);
      const body = openMessage(env, {
        conversation: e.record.conversation,
        epoch: e.record.epoch,
        schedule: e.schedule,
        members: e.members,
        window: (sender) => replayWindow(e.windows, sender),
      });
      e.messages += 1;
      const mine = equal(env.header.sender, this.keys.signingPublic);
      // A counter of this account's key seen here (this browser's own, or another device's in
      // an epoch this browser did not make) is never used by this browser again.
      if (mine) await raiseNumber(this.opts.store, AGENT_RECORDS.counter(c.hex, env.header.epoch), env.header.counter + 1);
      const senderCard = e.record.members.find((m) => equal(m.signingKey, env.header.sender));
      const sender = senderCard?.name ?? "?";
      const id = { epoch: env.header.epoch, counter: env.header.counter };
      if (env.header.kind === "read") {
        const seq = mine ? null : readReceiptSeq(body);
        if (seq !== null && seq > c.readByCustomer) c.readByCustomer = seq;
        return;
      }
      if (env.header.kind === "status") {
        const code = body.length === 1 ? body[0] : undefined;
        const status = (Object.keys(STATUS_CODES) as ConversationStatus[]).find((s) => STATUS_CODES[s] === code);
        if (senderCard?.role !== "agent" || status === undefined) throw new AgentError("bad_answer", "a status from a non-agent or of an unknown kind");
        c.status = status;
        this.line(c, { seq: it.seq, mine, sender, text: status, kind: "status", sentAt: env.header.sentAt, ...id });
        return;
      }
      if (env.header.kind === "attachment") {
        // A reference that does not decode is refused (shown as rejected), never shown as text.
        const ref = decodeAttachmentRef(body);
        this.line(c, { seq: it.seq, mine, sender, text: attachmentLineText(ref), kind: "attachment", sentAt: env.header.sentAt, ...id, attachment: ref });
        return;
      }
      this.line(c, { seq: it.seq, mine, sender, text: dec.decode(body), kind: "text", sentAt: env.header.sentAt, ...id });
    } else if (item.kind === "notice") {
      this.line(c, { seq: it.seq, mine: false, sender: "", text: "an audit notice was recorded for this conversation (the customer's app checks it)", kind: "event", sentAt: it.storedAt });
    }
  }

  /** An epoch record, verified at all three levels of §7.5; its secret opened when a member. */
  protected async handleEpoch(c: Conv, seq: number, r: EpochRecord): Promise<void> {
    let policy = await this.policy(r.org, r.policyVersion);
    if (!equal(policyHash(policy), r.policyHash)) {
      // Another policy under a version read before (the org was made again): read it again,
      // checked against the pinned master as always.
      policy = await this.policy(r.org, r.policyVersion, true);
    }
    verifyEpoch(r, policy);
    const had = c.epochs.get(r.epoch);
    if (had !== undefined) {
      if (equal(epochRecordHash(had.record), epochRecordHash(r))) return;
      throw new EpochError("bad_chain", `a second record for epoch ${r.epoch}`);
    }
    if (r.epoch > 0 && !c.epochs.has(r.epoch - 1)) await this.keptRecord(c, seq, r.epoch - 1);
    const mine = r.members.some((m) => equal(m.signingKey, this.keys.signingPublic));
    // The first record of a transfer to this account (pushed while online): the relay serves
    // the agent a transfer brought in the earlier epochs' records, hand-off or not (§7.6, §13.10),
    // so read them and check the chain from the customer's epoch 0. Nothing else is taken from
    // the read here: a hand-off brings in what it opens.
    if (r.epoch > 0 && c.epochs.size === 0 && mine && !equal(r.creator, customerOf(r).signingKey)) {
      for (const it of await this.earlierItems(c, seq)) if (it.item.kind === "epoch") await this.ingest(c, it);
    }
    const previous = r.epoch === 0 ? null : (c.epochs.get(r.epoch - 1)?.record ?? null);
    // An account that joins late (an agent re-certified for a new key, §4.4) is no reader of
    // the earlier epochs, so the relay withholds their records: its view starts at the first
    // epoch it is a member of, provided it has seen no epoch of the conversation before and
    // the customer made that epoch. Any other record whose previous one is missing is refused
    // (as the Rust client does): a second transferee is handed the whole chain (§7.6) and
    // reads every epoch from 0.
    const joinsLate = r.epoch > 0 && c.epochs.size === 0 && r.members.some((m) => equal(m.signingKey, this.keys.signingPublic)) && equal(r.creator, customerOf(r).signingKey);
    if (r.epoch === 0 || previous !== null) checkFollows(r, previous);
    else if (!joinsLate) throw new AgentError("no_epoch", `the record of the previous epoch ${r.epoch - 1} is missing`);
    c.lines = c.lines.filter((l) => !(l.seq === seq && l.text.startsWith(HELD_BACK)));
    for (const m of r.members) await this.pin(c, m);
    const member = mine;
    let k: Uint8Array | null = null;
    if (member) k = await openEpoch(r, this.keys, policy);
    const wasMember = previous !== null && previous.members.some((m) => equal(m.signingKey, this.keys.signingPublic));
    c.transferredOut = !member && (wasMember || c.transferredOut);
    c.epochs.set(r.epoch, { record: r, schedule: k === null ? null : new EpochSecret(k, r.conversation, r.epoch), k, members: r.members.map((m) => m.signingKey), windows: new Map(), messages: 0 });
    // Runs that claimed this epoch before its record came: a lie if it lists this account.
    c.log.holes?.judgePending((epoch) => this.judgeRun(c, epoch, false));
    if (r.epoch > 0 && previous !== null) {
      const customer = r.members.find((m) => m.role === "customer");
      const agents = r.members.filter((m) => m.role === "agent").map((m) => m.name);
      const before = previous.members.filter((m) => m.role === "agent").map((m) => m.name);
      if (customer !== undefined && agents.join() !== before.join()) {
        this.line(c, { seq, mine: false, sender: "", text: `transferred from ${before.join(", ")} to ${agents.join(", ")}`, kind: "event", sentAt: r.createdAt });
      }
    }
  }

  /**
   * A hand-off: kept (the chains of later ones are followed over it), and opened when it is to
   * this account. Its signer must be a member of each epoch it carries, or hold it by the
   * earlier hand-offs of the conversation (§7.6 "Chains", `Holders`).
   */
  private async handOff(c: Conv, seq: number, h: Handoff): Promise<void> {
    if (!equal(h.conversation, c.id)) return;
    if (!c.handoffs.some((x) => x.seq === seq)) {
      c.handoffs.push({ seq, handoff: h });
      c.handoffs.sort((a, b) => a.seq - b.seq);
    }
    if (!equal(h.to, this.keys.signingPublic)) return;
    // Epochs it carries whose records were not served before it made this account their reader:
    // read again (and handled) first.
    let earlier: Sequenced[] = [];
    if (h.epochs.some(([e]) => !c.epochs.has(e))) {
      earlier = await this.earlierItems(c, seq);
      for (const it of earlier) await this.ingest(c, it);
    }
    const records = new Map<number, EpochRecord>();
    for (const [n, e] of c.epochs) records.set(n, e.record);
    const byMembership = h.epochs.every(([e]) => records.get(e)?.members.some((m) => equal(m.signingKey, h.from)) === true);
    // A hand-off of an epoch its signer holds by hand-off: the chain is followed over every
    // earlier hand-off, read again from the relay (one stored while this account was no reader
    // of the epoch it went in was not served to it then).
    if (!byMembership && earlier.length === 0) earlier = await this.earlierItems(c, seq);
    const held = Holders.follow(records.values(), [...c.handoffs.filter((x) => x.seq < seq).map((x) => x.handoff), ...earlier.flatMap((it) => (it.item.kind === "hand_off" && !c.handoffs.some((x) => x.seq === it.seq) ? [it.item.handoff] : []))]);
    const secrets = await openHandoff(h, this.keys, records, held);
    let opened = false;
    for (const [n, k] of secrets) {
      const e = c.epochs.get(n);
      if (e !== undefined && e.schedule === null) {
        e.schedule = new EpochSecret(k, c.id, n);
        e.k = k;
        opened = true;
      }
    }
    // The items of an epoch now opened that were stored before this hand-off made this account
    // its reader were not served to it: read again and handled (those handled already are not).
    if (opened) for (const it of earlier.length > 0 ? earlier : await this.earlierItems(c, seq)) await this.ingest(c, it);
    const waiting = c.waiting.sort((a, b) => a.seq - b.seq);
    c.waiting = [];
    for (const w of waiting) {
      c.log.release(w.seq);
      await this.ingest(c, w);
    }
  }

  /**
   * The items of `c` before the hand-off at `seq`, as the relay serves them now that it has
   * stored that hand-off (and made this account a reader of the epochs it carries); before the
   * record at `seq` of a transfer to this account, the earlier records (`handleEpoch`).
   *
   * Read from the start (the items newly readable lie anywhere before `seq`), on to the last
   * page (at most `MAX_SYNC_PAGES`), and kept (`Conv.earlier`). A read that served the hand-off
   * at `seq` itself was made after the relay stored it, so it holds every item that hand-off
   * made readable: the next hand-off of a burst (a transfer's two, §7.6) reuses it. A hand-off the
   * kept read did not serve (stored after it) is read for afresh: the relay may have made this
   * account a reader of more epochs since, and their items lie before it.
   */
  private async earlierItems(c: Conv, seq: number): Promise<Sequenced[]> {
    const servedIt = (items: Sequenced[]): boolean => items.some((it) => it.seq === seq && it.item.kind === "hand_off");
    let read = c.earlier;
    if (read === null || !servedIt(read)) {
      const s = this.session();
      const out: Sequenced[] = [];
      let after = 0;
      for (let pages = 0; pages < MAX_SYNC_PAGES; pages++) {
        const r = await s.call({ kind: "history", conversation: c.id, after, limit: HISTORY_PAGE });
        if (r.kind !== "items") throw new AgentError("bad_answer", r.kind);
        for (const it of r.items) if (equal(it.conversation, c.id)) out.push(it);
        const end = Math.max(after, ...r.items.map((it) => it.seq), ...r.skipped.map((run) => run.to));
        if (!r.more || end <= after) break;
        after = end;
      }
      read = out.sort((a, b) => a.seq - b.seq);
      c.earlier = read;
    }
    return read.filter((it) => it.seq < seq);
  }

  /**
   * The record of epoch `n` this browser made to transfer `c` and kept (the relay does not serve
   * it to this account), checked like any other record before the record that follows it.
   */
  private async keptRecord(c: Conv, seq: number, n: number): Promise<void> {
    const b = await this.opts.store.get(AGENT_RECORDS.kept(c.hex, n));
    if (b === undefined) return;
    await this.handleEpoch(c, seq, epochFromCbor(fromCbor(b)));
  }

  /**
   * The record this browser made and kept to transfer `c`, when it follows the latest epoch read
   * (`keptRecord` brings it in before a later record; this, when none came: after a reload, a
   * transfer the relay serves this account nothing after). Checked like any other record; a
   * refusal is shown as one.
   */
  private async keptNext(c: Conv): Promise<void> {
    if (c.epochs.size === 0) return;
    const n = Math.max(...c.epochs.keys()) + 1;
    const b = await this.opts.store.get(AGENT_RECORDS.kept(c.hex, n));
    if (b === undefined) return;
    const at = await this.opts.store.get(AGENT_RECORDS.keptSeq(c.hex, n));
    const seq = at === undefined ? c.log.cursor : Number(fromCbor(at));
    try {
      await this.handleEpoch(c, seq, epochFromCbor(fromCbor(b)));
    } catch (e) {
      if (e instanceof AgentError && e.failure === "key_changed") return;
      // Tried again at each sync (it stays the record after the latest epoch): shown once.
      const text = `refused: ${e instanceof Error ? e.message : String(e)}`;
      if (!c.lines.some((l) => l.seq === seq && l.text === text)) this.line(c, { seq, mine: false, sender: "", text, kind: "event", sentAt: this.opts.now() });
    }
  }

  /** The conversation `id` (hex). */
  protected need(id: string): Conv {
    const c = this.convs.get(id);
    if (c === undefined) throw new AgentError("no_conversation", id);
    return c;
  }
}
