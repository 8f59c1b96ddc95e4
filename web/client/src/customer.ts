/**
 * The customer side of one conversation with one org, as the widget runs it: the account (created
 * on first use and kept in the `Store`), the org's policy checked against the master fingerprint
 * the page was given, the opening of the conversation (PROTOCOL §13.9) with epoch 0 created here,
 * every item verified (epoch records at all three levels of §7.5, messages in the order of §9.4),
 * and sending with the counter persisted before encrypting (§9.3).
 *
 * Nothing is shown twice: an item is handled once per sequence number (pushes and history pages
 * overlap after a reconnect), and items are kept in the store, so a reload shows the history at
 * once and asks the relay only for what follows. Pushes that arrive while a history sync runs
 * wait for it, so an epoch record is always handled before the messages under it.
 *
 * What has a module of its own: the notices (`customer-notices.ts`), the holes
 * (`customer-holes.ts`), uploads (`customer-uploads.ts`), consents and erasure
 * (`customer-rights.ts`), recovery (`customer-recovery.ts`), the checks of the agent's key
 * (`customer-agent-key.ts`), the typing signals (`customer-typing.ts`), the delivery and read
 * marks (`customer-marks.ts`), the epochs (`customer-epochs.ts`), the conversation's record
 * (`customer-conversation.ts`), the consents granted elsewhere (`customer-consents.ts`), the
 * org's policies (`customer-policy.ts`) and sending a message, the epoch rotated first when it is
 * full or old (§7.7), a recovered account's own epoch opened first (`customer-send.ts`).
 */
import {
  IdentityKeys,
  cardFingerprint,
  equal,
  formatFingerprint,
  fromCbor,
  openMessage,
  toCbor,
  toHex,
  verifyAgentCertificate,
  verifyPolicy,
  issueCard,
  type IdentityCard,
  type Policy,
} from "@sealdesk/protocol";
import { attachmentLineText, decodeAttachmentRef, downloadAttachment, sealAttachment, type AttachmentRef } from "./attachment.js";
import { sequencedFromCbor, type ByteQuota, type Push, type Sequenced } from "./frames.js";
import { SequenceHoles, type Hole } from "./customer-holes.js";
import { learnRevocations } from "./customer-revocations.js";
import { Uploads, type UploadState } from "./customer-uploads.js";
import { CustomerNotices, RECHECK_NOTICES_MS, type ShownNotice } from "./customer-notices.js";
import { consentIds, consentStates, eraseConversation, grantConsent, historyExport, isErased, revokeConsent, type ConsentStatus, type HistoryExport, type RevokeOutcome, type RightsHost } from "./customer-rights.js";
import { policySummary } from "./summary.js";
import { AgentKeyWatch } from "./customer-agent-key.js";
import { CustomerReadiness } from "./customer-session.js";
import { CustomerTyping } from "./customer-typing.js";
import { Member, SyncedConversation, raiseNumber, readAccount, writeAccount, type SealedText } from "./member.js";
import { RelayError, SessionError, type Session } from "./session.js";
import { RECORDS, itemKey } from "./store.js";
import { CustomerError, type ChatLine, type CustomerEvent, type CustomerOptions } from "./customer-model.js";
import { saveRecoveryCode } from "./customer-recovery.js";
import { replayWindow } from "./epochs.js";
import { CustomerPolicies } from "./customer-policy.js";
import { CustomerMarks } from "./customer-marks.js";
import { keepConversation, readConversation, type ConversationRecord } from "./customer-conversation.js";
import { ConsentWatch, takeConsentItem } from "./customer-consents.js";
import { CustomerEpochs, putOwnEpoch } from "./customer-epochs.js";
import { sendMessage, type SendHost, type SentKind } from "./customer-send.js";

export * from "./customer-model.js";

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

/** A customer of one org, with at most one conversation. */
export class Customer extends Member<CustomerEvent, CustomerOptions> {
  /** The epochs held, verified and opened (`customer-epochs.ts`). */
  private readonly epochs: CustomerEpochs;
  private readonly lines: ChatLine[] = [];
  private readonly noticeBook: CustomerNotices;
  private readonly uploads: Uploads;
  /** The checks of the conversation's agent key: on a push, at each session, on a timer. */
  private readonly agentKeys: AgentKeyWatch;
  private recheckTimer: ReturnType<typeof setInterval> | null = null;
  private conv: ConversationRecord | null = null;
  /** The conversation as read from the relay (cursor, items handled once, pushes held during a sync). */
  private synced: SyncedConversation | null = null;
  /** The items of the conversation handled so far, and the holes among them. */
  private holes = new SequenceHoles();
  /** The holes as the view was last told them (`tellHoles`). */
  private holesTold = "";
  private blocked: string | null = null;
  private erased = false;
  /** Consents granted or revoked on another device, read again when the log grows (`customer-consents.ts`). */
  private readonly consentWatch: ConsentWatch;
  /** The delivery and read marks both ways (`customer-marks.ts`). */
  private readonly marks: CustomerMarks;
  /** The typing signals both ways (`customer-typing.ts`). */
  private readonly typing: CustomerTyping;
  /**
   * Whether the customer chose to chat (`begin`, or a send): from then on each session registers
   * the card and checks the policy. Before, a fresh account only reads the org's policy (issue 22).
   */
  private begun = false;
  /** The org's policies: verified, kept, the latest told (`customer-policy.ts`). */
  private readonly policies: CustomerPolicies;
  /**
   * The session the conversation was last read up to date on (at its start, or before a send):
   * a send on another session reads it first (`SendHost.caughtUp`), so a store restored from
   * an old copy learns the counters its account used since before it takes one.
   */
  private readOn: Session | null = null;
  /** The session readied to chat on (`customer-session.ts`). */
  private readonly readiness: CustomerReadiness;
  /** What sending a message needs of this customer (`customer-send.ts`). */
  private readonly sender: SendHost;

  private constructor(opts: CustomerOptions, keys: IdentityKeys, card: IdentityCard) {
    super(opts, keys, card);
    this.policies = new CustomerPolicies({
      org: opts.org,
      masterFingerprint: opts.masterFingerprint,
      store: opts.store,
      told: (policy) => this.emit({ kind: "policy", policy, fingerprint: formatFingerprint(cardFingerprint(policy.master)) }),
      keyChanged: (detail) => this.keyChanged(detail),
    });
    this.readiness = new CustomerReadiness({ policies: this.policies, nextSession: () => this.nextSession() });
    this.noticeBook = new CustomerNotices({
      org: opts.org,
      store: opts.store,
      me: card.signingKey,
      now: opts.now,
      conversation: () => this.conv?.conversation ?? null,
      session: () => this.current(),
      relayKey: () => this.conn?.relayKey ?? null,
      policy: () => this.policies.latest,
      show: (notice) => this.emit({ kind: "notice", notice }),
      error: (error) => this.fail(error),
    });
    this.uploads = new Uploads({
      store: opts.store,
      conversation: () => this.conv?.conversation ?? null,
      announced: (id) => this.lines.some((l) => l.attachment !== undefined && equal(l.attachment.id, id)),
      announceLocked: (body) => this.sendLocked("attachment", body),
      withSendLock: (f) => this.withSendLock(f),
      upload: (upload) => this.emit({ kind: "upload", upload }),
      quota: (quota) => this.warnBytes(quota),
      fail: (e) => this.fail(e),
    });
    this.marks = new CustomerMarks({ store: opts.store, me: card.name });
    this.consentWatch = new ConsentWatch({
      catchUp: async () => {
        const s = this.current();
        const synced = this.synced;
        if (s === null || synced === null || synced.isSyncing || this.erased || !this.hasBegun()) return;
        await this.ready(s);
        await synced.sync(s);
        await this.checkHoles(s);
      },
      learn: () => learnRevocations(this.rightsHost()),
      changed: () => this.emit({ kind: "consents" }),
    });
    this.epochs = new CustomerEpochs({
      keys,
      policy: async (version) => {
        const known = this.policies.get(version);
        if (known !== undefined) return known;
        const s = this.current();
        if (s === null) throw new CustomerError("no_epoch", `policy version ${version} unknown offline`);
        return await this.policies.check(s, version);
      },
      keyChanged: (detail) => this.keyChanged(detail),
    });
    this.typing = new CustomerTyping({
      keys,
      now: opts.now,
      random: opts.random,
      conversation: () => this.conv?.conversation ?? null,
      epoch: (n) => this.epochs.get(n),
      latest: () => this.epochs.latest(),
      mayTell: () => (this.blocked !== null || this.erased ? null : this.current()),
      show: (member, typing) => this.emit({ kind: "typing", member, typing }),
    });
    this.agentKeys = new AgentKeyWatch({
      org: opts.org,
      policy: (s) => this.policies.check(s, null),
      now: opts.now,
      pinned: () => (this.erased ? null : (this.conv?.agent ?? null)),
      session: () => this.current(),
      blocked: () => this.blocked !== null,
      changed: (detail) => {
        this.blocked = detail;
        this.emit({ kind: "key_changed", detail });
      },
      unconfirmed: (agent, code, reason, pushed) => this.emit({ kind: "agent_key_unconfirmed", agent, code, reason, pushed }),
      fail: (e) => this.fail(e),
    });
    this.sender = {
      store: opts.store,
      keys,
      card,
      random: opts.random,
      now: opts.now,
      epochs: this.epochs,
      policy: () => this.policies.latest,
      sync: async (s) => {
        if (this.synced === null) return false;
        await this.synced.sync(s);
        return true;
      },
      caughtUp: async (s) => {
        const synced = this.synced;
        if (synced === null || this.readOn === s) return;
        // A sync under way may have read its page before this session: read once more after it.
        if (synced.isSyncing) await synced.sync(s).catch(() => undefined);
        await synced.sync(s);
        if (this.synced === synced) this.readOn = s;
      },
      stored: (it, s) => this.ingestOwn(it, s),
      warnBytes: (quota) => this.warnBytes(quota),
      sendTimeoutMs: opts.sendTimeoutMs,
    };
  }

  /**
   * Loads the account from the store (creating it on first use, in the store only: the relay
   * hears of it when the customer begins, see `begin`) and the kept conversation.
   */
  static async load(opts: CustomerOptions): Promise<Customer> {
    let account = await readAccount(opts.store);
    if (account === undefined) {
      const keys = IdentityKeys.generate(opts.random);
      account = { keys, card: issueCard(keys, `web-${toHex(opts.random(6))}`, "customer", opts.now()) };
      await writeAccount(opts.store, account.keys, account.card);
    }
    const c = new Customer(opts, account.keys, account.card);
    await c.loadConversation();
    return c;
  }

  /** The org's latest policy, once checked (the `policy` event tells it too). */
  get policy(): Policy | null {
    return this.policies.latest;
  }

  /** The verified lines so far, in sequence order. */
  history(): readonly ChatLine[] {
    return this.lines;
  }

  /** The runs of items that never arrived, with the requests made for each (see the `withheld` event). */
  withheld(): Hole[] {
    return this.holes.withheld();
  }

  /** The conversation id (hex), once opened. */
  conversationId(): string | null {
    return this.conv === null ? null : toHex(this.conv.conversation);
  }

  /** The highest sequence number the agent has read (its read receipts). */
  readUpTo(): number {
    return this.marks.readUpTo();
  }

  /** Why sending is blocked (a pinned key changed, or the conversation erased), or null. */
  blockedBecause(): string | null {
    return this.blocked ?? (this.erased ? "this conversation was erased on the relay at your request" : null);
  }

  /** Whether this conversation was erased on the relay at the customer's request (the local copy is kept). */
  isErased(): boolean {
    return this.erased;
  }

  /** The printed fingerprint of the org's master, once the policy is checked. */
  masterFingerprint(): string | null {
    return this.policies.latest === null ? null : formatFingerprint(cardFingerprint(this.policies.latest.master));
  }

  /**
   * A new recovery code for this account, its record stored on the relay (the code before opens
   * nothing from then on): the code's text, to show once (`customer-recovery.ts`).
   */
  async newRecoveryCode(): Promise<string> {
    // Stored under the account's card: it must be registered, and the customer has begun.
    this.begun = true;
    const s = await this.ready(this.session(), true);
    return await saveRecoveryCode(s, this.keys, this.card, this.opts.random, this.opts.now());
  }

  /**
   * Whether the customer has begun (`begin`, a send, a recovery code), or this account is known
   * on the relay already. Until then the account is not registered: the relay is asked only for
   * the org's policy.
   */
  hasBegun(): boolean {
    return this.begun || this.conv !== null || this.current()?.registered === true;
  }

  /**
   * Whether the policy waits for `begin`: the relay refused it to this unregistered account
   * (`not_registered`, a relay older than PROTOCOL §13.7's public policy). A widget then begins
   * when the customer goes to write (the message box focused), and shows the policy after that.
   */
  policyWaitsForBegin(): boolean {
    return this.policies.waitsForBegin() && !this.hasBegun();
  }

  /**
   * Registers the account on the relay now (once, and idempotent: another tab or a reload may
   * have done it), watches the org's agent keys, and checks and tells the org's policy
   * (`policy`) if this session has not yet. A send, a file and a recovery code begin by
   * themselves: call this only to register before those, as a widget does on a relay that
   * serves the policy to registered accounts only (`policyWaitsForBegin`). Until the customer
   * begins, a fresh account asks the relay for the org's policy alone (PROTOCOL §13.7, checked
   * against the fingerprint and told at once), so a visitor who only reads, or who recovers
   * another account instead, leaves no account on the relay. An account the relay knows
   * (registered at authentication) begins by itself. Offline, it happens once a session is up.
   *
   * # Errors
   * The relay's refusal of the registration (`RelayError`: `rate_limited`, …) or of the policy
   * (`CustomerError`: `fingerprint_mismatch`, …); the session's errors.
   */
  async begin(): Promise<void> {
    this.begun = true;
    const s = this.current();
    if (s !== null) await this.ready(s, true);
  }

  /** Readies `s` to chat on (`customer-session.ts`): registered, pushes asked, policy checked. */
  private ready(s: Session, follow = false): Promise<Session> {
    return this.readiness.ready(s, follow);
  }

  /** A customer registers on first need (`begin`), not at sign-in. */
  protected override registersAtSignIn(): boolean {
    return false;
  }

  private async loadConversation(): Promise<void> {
    const s = this.opts.store;
    await this.policies.restore();
    const c = await readConversation(s);
    if (c === undefined) return;
    this.erased = await isErased(s);
    this.follow(c);
    this.policies.pinnedMaster = c.masterKey;
    await this.marks.restore();
    // The holes kept (with their requests) before the items kept: a hole among them is one already asked for.
    await this.holes.restore();
    for (const k of await s.keys(RECORDS.itemPrefix)) {
      const b = await s.get(k);
      if (b !== undefined) await this.ingest(sequencedFromCbor(fromCbor(b)), false);
    }
  }

  /** The conversation this customer reads from now on. */
  private follow(conv: ConversationRecord): void {
    this.conv = conv;
    this.holes = new SequenceHoles(undefined, false, { store: this.opts.store, key: `${RECORDS.holesPrefix}${toHex(conv.conversation)}` });
    this.holesTold = "";
    this.synced = new SyncedConversation(conv.conversation, (it) => this.ingest(it, true), (kind) => new CustomerError("bad_answer", kind), undefined, (e) => this.fail(e));
  }

  /** Connects (and reconnects) to the relay; the policy event follows once it is checked. */
  override start(): void {
    super.start();
    this.recheckTimer ??= setInterval(() => {
      if (this.noticeBook.pending() > 0) void this.recheckNotices().catch(() => undefined);
      // A session the log's growth is not pushed to (a relay too old to know `watch_audit`,
      // §13.5): the conversation and the log are read here instead, as the console reads them.
      const s = this.current();
      if (s !== null && this.readiness.readyWithoutAuditPushes(s) && this.conv !== null && !this.erased) void this.consentWatch.poke().catch(() => undefined);
    }, this.opts.recheckNoticesMs ?? RECHECK_NOTICES_MS);
    // A push lost with a connection is never sent again: the agent's key is checked on a timer too.
    this.agentKeys.start(this.opts.recheckAgentMs);
  }

  /** Disconnects for good. */
  override stop(): void {
    super.stop();
    this.typing.clear();
    if (this.recheckTimer !== null) clearInterval(this.recheckTimer);
    this.recheckTimer = null;
    this.agentKeys.stop();
  }

  /**
   * Reads what another tab stored: the conversation (if this tab has none yet) and the items
   * after this tab's cursor (the relay pushes them to this tab too, §13.11, but not to a tab
   * that had no conversation yet, and a push can be lost).
   */
  async resync(): Promise<void> {
    if (this.conv === null) {
      await this.loadConversation();
      if (this.conv === null) return;
    }
    const s = this.current();
    // Offline: the sync when the session is back reads it.
    if (s === null || this.synced === null) return;
    // A sync running now may have read the history before the other tab stored its item: wait
    // for it, then read again (skipping here lost the other tab's line until the next event).
    if (this.synced.isSyncing) await this.synced.sync(s).catch(() => undefined);
    // Another tab opened the conversation: this session may not be registered yet (idempotent).
    await this.ready(s);
    await this.synced.sync(s);
    await this.checkHoles(s);
    await this.recheckNotices();
  }

  /**
   * A session is up (the relay key pinned): for a fresh account that has not begun, the org's
   * policy alone, unregistered (`CustomerPolicies.showUnregistered`); else the card registered if needed, the policy,
   * then the conversation read from its cursor.
   */
  protected async resume(s: Session): Promise<void> {
    if (!this.hasBegun()) return await this.policies.showUnregistered(s);
    await this.ready(s);
    // Erased on the relay: the local copy is all there is.
    if (this.conv !== null && this.synced !== null && !this.erased) {
      if (this.epochs.newest() === null) await this.createEpochZero(s);
      const synced = this.synced;
      await synced.sync(s);
      if (this.synced === synced) this.readOn = s;
      await this.checkHoles(s);
      await this.recheckNotices();
      // A re-certification pushed while this tab was offline is not pushed again: checked here.
      await this.agentKeys.check(null);
      // Uploads cut off before (a reload, a lost connection) go on, after this resolves.
      void this.uploads.resume(s);
    }
  }

  private keyChanged(detail: string): never {
    this.blocked = detail;
    this.emit({ kind: "key_changed", detail });
    throw new CustomerError("key_changed", detail);
  }

  /**
   * Opens the conversation (§13.9): the relay assigns an agent; checked, then epoch 0. Called
   * under the send lock; returns the session it opened on (the next one if the relay closed
   * `s` under the older-relay rule).
   */
  private async open(first: Session): Promise<Session> {
    // Another tab recovered an account into this browser's store meanwhile (under the send
    // lock, `customer-recovery.ts`): this tab's account is not the store's any more, and must
    // not open a conversation over the recovered one's.
    const held = await readAccount(this.opts.store);
    if (held === undefined || !equal(held.card.signingKey, this.card.signingKey)) {
      throw new CustomerError("account_replaced", `this browser now holds the account ${held?.card.name ?? "(none)"}: reload the page to go on as it`);
    }
    this.begun = true;
    const s = await this.ready(first, true);
    const checked = await this.policies.check(s, null);
    const conversation = this.opts.random(16);
    const token = this.opts.openToken;
    const r = await s.call(token === undefined ? { kind: "open_conversation", org: this.opts.org, conversation } : { kind: "open_conversation_with_token", org: this.opts.org, conversation, token });
    if (r.kind !== "opened") throw new CustomerError("bad_answer", r.kind);
    if (r.quota !== undefined) this.emit({ kind: "open_quota", open: r.quota.open, most: r.quota.most });
    const policy = verifyPolicy(r.policy);
    if (!equal(policy.master.signingKey, checked.master.signingKey)) this.keyChanged("the opened conversation's policy has another master key");
    if (policy.version < checked.version) throw new CustomerError("bad_answer", "an older policy");
    this.policies.accept(policy);
    const cert = verifyAgentCertificate(r.certificate, policy, this.opts.now());
    if (!equal(cert.agent.signingKey, r.agent.signingKey) || cert.agent.name !== r.agent.name) throw new CustomerError("bad_answer", "the certificate names another agent");
    const kept = { conversation, agent: r.agent, masterKey: policy.master.signingKey };
    this.follow(kept);
    this.policies.pinnedMaster = kept.masterKey;
    await keepConversation(this.opts.store, kept, this.opts.org);
    await this.createEpochZero(s);
    // Opened just now: there is nothing of this account's to read back before its first send.
    this.readOn = s;
    return s;
  }

  private async createEpochZero(s: Session): Promise<void> {
    const conv = this.conv;
    if (conv === null) throw new CustomerError("not_open");
    const latest = this.policies.newest();
    if (latest === undefined) throw new CustomerError("no_epoch", "no policy");
    // Null: another tab created it, and the history brings it.
    const it = await putOwnEpoch(s, this.keys, this.card, this.opts, { policy: latest, conversation: conv.conversation, previous: null, members: [this.card, conv.agent] }, true);
    if (it !== null) await this.ingestOwn(it, s);
  }

  protected onPush(p: Push): void {
    const conv = this.conv;
    if (p.kind === "item") {
      if (conv === null || this.synced === null || !equal(p.item.conversation, conv.conversation)) return;
      this.synced.push(p.item, () => this.current(), (e) => this.fail(e), () => void this.afterPush().catch((e: unknown) => this.fail(e)));
    } else if (p.kind === "delivered" && conv !== null && equal(p.conversation, conv.conversation)) {
      this.marks.delivered(p.member, p.seq);
      this.emit({ kind: "delivered", member: p.member, seq: p.seq });
    } else if (p.kind === "signal" && conv !== null && equal(p.signal.header.conversation, conv.conversation)) {
      this.typing.received(p.signal);
    } else if (p.kind === "agent_key_changed" && conv !== null && p.org === this.opts.org && p.agent === conv.agent.name) {
      void this.agentKeys.check(p.card).catch((e: unknown) => this.fail(e));
    } else if (p.kind === "audit_grew" && conv !== null) {
      void this.consentWatch.poke().catch((e: unknown) => this.fail(e));
    } else if (p.kind === "quota_warning" && (p.quota.scope === "account" || p.org === this.opts.org)) {
      // §13.12: pushed at the crossing and after each sign-in, whoever sent the bytes.
      this.warnBytes(p.quota);
    }
  }

  /** The relay's warning ahead of a stored-bytes quota, from an answer or a push: told once. */
  private warnBytes(quota: ByteQuota): void {
    if (this.quotaSeen.fresh(this.opts.org, quota)) this.emit({ kind: "bytes_quota", quota });
  }

  /** Who is typing now (the agent's name), or null. */
  typingNow(): string | null {
    return this.typing.now();
  }

  /** The highest sequence number the agent's device has received (the relay's delivery mark). */
  deliveredUpTo(): number {
    return this.marks.deliveredUpTo();
  }

  /**
   * The customer typed (`empty`: the box is empty now): tells the agent "typing" (at most once
   * every few seconds) or "stopped", as an ephemeral signal the relay passes on and never
   * stores (§9.7; `customer-typing.ts`). Nothing is sent before the conversation is open or
   * while sending is blocked.
   */
  typed(empty: boolean): Promise<void> {
    return this.typing.typed(empty);
  }

  /** The customer sent or left the box: "stopped" if the agent was told "typing". */
  stoppedTyping(): Promise<void> {
    return this.typing.stopped();
  }

  /**
   * The customer has seen the conversation up to `upTo` (default: its newest line from the
   * agent): sends an end-to-end read receipt (a message of kind `read`, §9.5) when that is past
   * the last one sent. The widget calls it only while the page is visible.
   */
  markRead(upTo?: number): Promise<void> {
    return this.marks.markRead(upTo, {
      newest: () => Math.max(0, ...this.lines.filter((l) => !l.mine).map((l) => l.seq)),
      may: () => this.conv !== null && this.blocked === null,
      send: (body) => this.sendRaw("read", body),
    });
  }

  /** Handles one item once: verifies it, keeps it (when `keep`), shows it. */
  private async ingest(it: Sequenced, keep: boolean): Promise<void> {
    const conv = this.conv;
    if (conv === null || this.synced === null || !equal(it.conversation, conv.conversation)) return;
    // Tracked until handled: a push after it waits for it (`SyncedConversation.once`).
    await this.synced.once(it.seq, async () => {
      this.holes.saw(it.seq);
      if (keep) await this.opts.store.put(itemKey(it.seq), toCbor(it.raw));
      try {
        await this.handle(it);
      } catch (e) {
        if (e instanceof CustomerError && e.failure === "key_changed") return;
        this.emit({ kind: "refused", seq: it.seq, reason: e instanceof Error ? e.message : String(e) });
      }
    });
  }

  private async handle(it: Sequenced): Promise<void> {
    const item = it.item;
    if (item.kind === "epoch") {
      await this.epochs.accept(item.record);
    } else if (item.kind === "message") {
      const env = item.envelope;
      const e = this.epochs.get(env.header.epoch);
      if (e === undefined) throw new CustomerError("no_epoch", `message in unknown epoch ${env.header.epoch}`);
      // Counted for the epoch's limit (§7.7) whether it opens or not: the relay counted it.
      this.epochs.counted(env.header.epoch);
      const body = openMessage(env, {
        conversation: e.record.conversation,
        epoch: e.record.epoch,
        schedule: e.schedule,
        members: e.members,
        window: (sender) => replayWindow(e.windows, sender),
      });
      const mine = equal(env.header.sender, this.card.signingKey);
      if (mine) await raiseNumber(this.opts.store, `${RECORDS.counterPrefix}${env.header.epoch}`, env.header.counter + 1);
      if (env.header.kind === "read") {
        const seq = this.marks.receipt(body, mine);
        if (seq !== null) this.emit({ kind: "read", seq });
        return;
      }
      // A status the agent set (§9.6) is not a line of the chat.
      if (env.header.kind === "status") return;
      const sender = e.record.members.find((m) => equal(m.signingKey, env.header.sender))?.name ?? "?";
      // A file's reference that does not decode is refused (shown as rejected), never shown as text.
      const ref = env.header.kind === "attachment" ? decodeAttachmentRef(body) : null;
      const base = { seq: it.seq, mine, sender, sentAt: env.header.sentAt, storedAt: it.storedAt, epoch: env.header.epoch, counter: env.header.counter };
      const line: ChatLine = ref === null ? { ...base, text: dec.decode(body) } : { ...base, text: attachmentLineText(ref), attachment: ref };
      this.lines.push(line);
      this.lines.sort((a, b) => a.seq - b.seq);
      this.emit({ kind: "line", line });
    } else if (item.kind === "notice") {
      await this.noticeBook.handle(it.seq, item.index, item.raw, it.storedAt);
    } else if (item.kind === "consent") {
      // Granted here or on another device of this account: checked, then listed (`customer-consents.ts`).
      if (await takeConsentItem({ store: this.opts.store, org: this.opts.org, conversation: it.conversation, customer: this.card.signingKey }, item.token)) this.emit({ kind: "consents" });
    }
  }

  /**
   * Judges again every notice not yet witnessed (or not yet checked): once enough of the org's
   * trustees cosigned a log holding it, it is shown verified; if they cosigned a log the one
   * served here does not extend, NOT GENUINE. Runs at each sync and every `recheckNoticesMs`.
   */
  recheckNotices(): Promise<void> {
    return this.noticeBook.recheck();
  }

  /** The notices shown so far (release, erasure, revocation, a dispute closed). */
  releaseNotices(): readonly ShownNotice[] {
    return this.noticeBook.shown;
  }

  /**
   * Consents to the org's master opening this conversation (all its epochs so far) for
   * `purpose`, valid for `validSecs` (at most the policy's limit): signs a consent token
   * (§10.2) and shares it with the master through the relay. The master still needs enough
   * trustees to agree, and every release shows here as a notice. Returns the consent's id (hex),
   * which the customer gives the business.
   */
  async grantConsent(purpose: string, validSecs = 7 * 86_400): Promise<string> {
    const lastEpoch = this.epochs.newest();
    return grantConsent(this.rightsHost(), { policy: this.policies.latest, lastEpoch, random: this.opts.random }, purpose, validSecs);
  }

  /** The ids (hex) of the account's consents known here (granted here, or read from the conversation). */
  consents(): Promise<string[]> {
    return consentIds(this.opts.store);
  }

  private rightsHost(): RightsHost {
    return {
      store: this.opts.store,
      keys: this.keys,
      now: this.opts.now,
      org: this.opts.org,
      conversation: () => this.conv?.conversation ?? null,
      session: () => this.current(),
      relayKey: () => this.conn?.relayKey ?? null,
      notices: () => this.noticeBook.shown,
      checkEntry: (index, entry) => this.noticeBook.checkEntry(index, entry),
    };
  }

  /**
   * The account's consents for this conversation, granted here or on another device, each with
   * where it stands (`customer-rights.ts`), after reading the conversation for consents shared
   * elsewhere and the audit log for revocations made elsewhere (`customer-consents.ts`; when
   * online — what cannot be read now is told as an error and the states known are shown).
   */
  async consentStates(): Promise<ConsentStatus[]> {
    await this.consentWatch.poke().catch((e: unknown) => this.fail(e));
    return consentStates(this.rightsHost());
  }

  /**
   * Revokes consent `id` (hex): said "revoked" only once the revocation is proven in the audit
   * log this customer has been shown, "witnessed" once enough of the org's trustees vouch for it.
   */
  async revokeConsent(id: string): Promise<RevokeOutcome> {
    const host = this.rightsHost();
    // Revoked on another device already: said so, nothing logged again.
    await learnRevocations(host).catch((e: unknown) => this.fail(e));
    return revokeConsent(host, id);
  }

  /**
   * Erases the conversation on the relay (the customer's signed request and its own signed
   * erasure entry); the local copy stays readable and sending stops.
   */
  async erase(): Promise<void> {
    await eraseConversation(this.rightsHost());
    this.erased = true;
  }

  /** The customer's own verified history as JSON (the shape of the CLI's `history --export`). */
  exportHistory(): HistoryExport {
    const id = this.conversationId();
    if (id === null) throw new CustomerError("not_open");
    const summary = this.policies.latest === null ? null : policySummary(this.policies.latest);
    return historyExport(id, this.opts.org, summary, this.erased, this.opts.now(), this.lines, this.noticeBook.shown, { read: this.marks.readUpTo(), delivered: this.marks.deliveredUpTo() });
  }

  /**
   * Fetches and opens the file of an attachment line (§9.8): every chunk checked, then the size
   * and hash against the signed reference. Throws an `AttachmentError` (never returns part of a
   * file) when a check fails.
   */
  async download(ref: AttachmentRef): Promise<Uint8Array> {
    const conv = this.conv;
    if (conv === null) throw new CustomerError("not_open");
    return downloadAttachment(this.session(), conv.conversation, ref);
  }

  /**
   * Sends a file (§9.8): sealed under a fresh key, kept in the store until its message is sent
   * (an interrupted upload goes on once a session is up again, from the chunks the relay has),
   * uploaded chunk by chunk, then announced by a message of kind `attachment` whose body is its
   * reference (the caption may be empty).
   */
  async sendFile(file: Uint8Array, name: string, mediaType: string, caption = ""): Promise<ChatLine> {
    if (this.blocked !== null) throw new CustomerError("key_changed", this.blocked);
    const sealed = sealAttachment(file, name, mediaType === "" ? "application/octet-stream" : mediaType, caption, this.opts.random);
    if (this.conv === null) {
      const s = this.session();
      await this.withSendLock(async () => {
        if (this.conv === null) await this.open(s);
      });
    }
    const conv = this.conv;
    if (conv === null) throw new CustomerError("not_open");
    return this.lineAt(await this.uploads.send(this.session(), conv.conversation, sealed, file, (body) => this.sendRaw("attachment", body)));
  }

  /** The uploads kept until their message is sent (interrupted ones go on once online). */
  pendingUploads(): Promise<UploadState[]> {
    return this.uploads.pending();
  }

  /** Cancels upload `id` (hex): forgotten here, never announced; the relay deletes its chunks in time. */
  cancelUpload(id: string): Promise<void> {
    return this.uploads.cancel(id);
  }

  /**
   * Sends `text`, opening the conversation first if needed. The counter is persisted before the
   * message is encrypted, under the send lock, so no two tabs (or a crash and a retry) can use
   * one counter twice. `sealed`, when given, is told what identifies the message sealed, before
   * it goes out (`Member.sealingText`): the page keeps it with the text, to know the message
   * again in the history if the relay leaves it unanswered.
   */
  async send(text: string, sealed?: (s: SealedText) => Promise<void>): Promise<ChatLine> {
    const body = enc.encode(text);
    return this.lineAt(await this.withSendLock(() => this.sealingText(sealed, () => this.sendLocked("text", body))));
  }

  /** The line of this account's message `seq`, verified and kept. */
  private lineAt(seq: number): ChatLine {
    const line = this.lines.find((l) => l.seq === seq);
    if (line === undefined) throw new CustomerError("bad_answer", "own message did not verify");
    return line;
  }

  /** Seals and sends one message of `kind`; returns its sequence number once verified and kept. */
  private sendRaw(kind: SentKind, body: Uint8Array): Promise<number> {
    return this.withSendLock(() => this.sendLocked(kind, body));
  }

  /** `sendRaw` with the send lock held: the conversation opened if needed (`customer-send.ts`). */
  private async sendLocked(kind: SentKind, body: Uint8Array): Promise<number> {
    if (this.blocked !== null) throw new CustomerError("key_changed", this.blocked);
    if (this.erased) throw new CustomerError("not_open", "this conversation was erased");
    let s = this.session();
    if (this.conv === null) s = await this.open(s);
    const conv = this.conv;
    if (conv === null) throw new CustomerError("not_open");
    return sendMessage(this.sender, s, conv.conversation, kind, body);
  }

  /**
   * An item this tab stored itself (its message, an epoch it opened), handled in order as any
   * other (`SyncedConversation.stored`): after the pushes and a sync under way, and after the
   * history from the cursor when it is not the next item (what another tab of this account sent
   * may not have been handled here yet: its push is on the way, §13.11); then the holes left
   * are asked for again and told (an item the relay withheld).
   */
  private async ingestOwn(it: Sequenced, s: Session): Promise<void> {
    const synced = this.synced;
    if (synced === null) return;
    await synced.stored(it, s);
    await this.checkHoles(s);
  }

  /** After a push was handled: the holes, then the notices not yet witnessed. */
  private async afterPush(): Promise<void> {
    await this.checkHoles(this.current());
    await this.recheckNotices();
  }

  /**
   * Tells the view the holes as found, asks the relay again for their items
   * (`customer-holes.ts`), handling what comes as in order, and tells the holes again if that
   * changed them (`withheld`: one more request, given up, closed).
   */
  private async checkHoles(s: Session | null): Promise<void> {
    const conv = this.conv;
    if (conv === null || this.erased) return;
    await this.holes.restore();
    this.tellHoles();
    await this.holes.refetch(s, conv.conversation, (it) => this.ingest(it, true), (kind) => new CustomerError("bad_answer", kind));
    this.tellHoles();
  }

  /** Emits `withheld` with the open holes when they differ from what the view was last told. */
  private tellHoles(): void {
    const holes = this.holes.withheld();
    const told = holes.map((h) => `${h.from}-${h.to}/${h.tries}/${h.claimed === undefined ? "" : String(h.claimed)}`).join(",");
    if (told === this.holesTold) return;
    this.holesTold = told;
    this.emit({ kind: "withheld", holes });
  }
}
