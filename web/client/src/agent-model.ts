/**
 * The agent's model (`agent.ts`): what the console is told (`AgentEvent`), shows
 * (`ConversationView`, `AgentLine`), and is refused with (`AgentError`); the record names of the
 * agent's store; and the state kept per conversation (`Conv`: its epochs with their secrets, its
 * lines and marks, and the `SyncedConversation` that reads it from the relay).
 */
import type { EpochRecord, EpochSecret, Policy, ReplayWindow, Handoff } from "@sealdesk/protocol";
import type { AttachmentRef } from "./attachment.js";
import type { Hole } from "./customer-holes.js";
import type { ByteQuota, Sequenced } from "./frames.js";
import type { Notice } from "./notice.js";
import type { MemberEvent, MemberOptions, SyncedConversation } from "./member.js";

/** A conversation's status (§9.6). */
export type ConversationStatus = "open" | "waiting" | "resolved";

/** The byte a status message carries (§9.6). */
export const STATUS_CODES: Record<ConversationStatus, number> = { open: 1, waiting: 2, resolved: 3 };

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
  /** A message's epoch and its sender's counter in it (absent for an event line). */
  epoch?: number;
  counter?: number;
  /** A file's reference (kind `attachment`, §9.8); fetch it with `download`. */
  attachment?: AttachmentRef;
}

/**
 * Whether `l` is a line the customer wrote for the agent to read: a text or a file, not a status
 * change or an event. These are what the unread count counts and a read receipt covers.
 */
export function readable(l: AgentLine): boolean {
  return !l.mine && (l.kind === "text" || l.kind === "attachment");
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
  /** The release (and other) notices of the audit log about this conversation, checked, by index. */
  notices: readonly AgentNotice[];
  /**
   * The runs of sequence numbers the relay withheld (asked for again and not brought, §13.10),
   * in order; `claimed` is what the relay falsely said they were.
   */
  withheld: readonly Hole[];
}

/** A notice of the audit log about a conversation, checked as the widget checks it, and its time. */
export interface AgentNotice extends Notice {
  /** When the entry was logged (Unix seconds). */
  at: number;
}

/** What the agent tells its view. */
export type AgentEvent =
  | MemberEvent
  | { kind: "conversations" }
  | { kind: "changed"; id: string }
  | { kind: "policy"; org: string; policy: Policy }
  | { kind: "key_changed"; id: string | null; detail: string }
  /**
   * The relay's warning ahead of a stored-bytes quota (§13.12), from 80% of it on: after a
   * message or a file this agent sent in conversation `id`, or pushed by the relay (`id` null)
   * whoever sent the bytes — the quota of `org` (`scope: "org"`: every conversation of the org
   * counts) or this agent's own (`org` null when pushed). Each warning is told once.
   */
  | { kind: "bytes_quota"; id: string | null; org: string | null; quota: ByteQuota };

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
export type AgentOptions = MemberOptions;

/** Record names of the agent's store (besides `RECORDS.identity` and `RECORDS.relayKey`). */
export const AGENT_RECORDS = {
  /** The org master's signing key, pinned on first sight: `pin/org/<org>`. */
  orgPin: (org: string): string => `pin/org/${org}`,
  /** An account's signing key (customer or agent), pinned by name: `pin/name/<name>`. */
  namePin: (name: string): string => `pin/name/${name}`,
  /** The hash of an epoch record this browser made: `conv/<id>/made/<epoch>`. */
  made: (id: string, epoch: number): string => `conv/${id}/made/${epoch}`,
  /**
   * The record (CBOR) of an epoch this browser made to transfer the conversation: kept, as the
   * relay does not serve it to an agent that is no member of it, so that a transfer back
   * follows it (§7.6): `conv/<id>/kept/<epoch>`.
   */
  kept: (id: string, epoch: number): string => `conv/${id}/kept/${epoch}`,
  /** The sequence number the relay stored that kept record at (a u64 as CBOR): `conv/<id>/kept_seq/<epoch>`. */
  keptSeq: (id: string, epoch: number): string => `conv/${id}/kept_seq/${epoch}`,
  /** This account's next counter in an epoch: `conv/<id>/counter/<epoch>`. */
  counter: (id: string, epoch: number): string => `conv/${id}/counter/${epoch}`,
  /** The highest sequence number the agent has read: `conv/<id>/read`. */
  read: (id: string): string => `conv/${id}/read`,
  /** The highest sequence number the customer's device received, as the relay said: `conv/<id>/delivered`. */
  delivered: (id: string): string => `conv/${id}/delivered`,
  /** The highest sequence number covered by a read receipt sent: `conv/<id>/read_sent`. */
  readSent: (id: string): string => `conv/${id}/read_sent`,
  /** The conversation's holes, their requests and the relay's claims (`customer-holes.ts`): `conv/<id>/holes`. */
  holes: (id: string): string => `conv/${id}/holes`,
} as const;

/** How long a "typing" signal shows without another one. */
export const TYPING_SECS = 8;

/** One epoch of a conversation as the agent holds it. */
export interface EpochState {
  record: EpochRecord;
  schedule: EpochSecret | null;
  /** The epoch secret, kept while the page runs (hand-offs, signals). */
  k: Uint8Array | null;
  members: Uint8Array[];
  windows: Map<string, ReplayWindow>;
  /** Messages accepted in the epoch (for rotation, §7.7). */
  messages: number;
}

/** One conversation as the agent holds it. */
export interface Conv {
  id: Uint8Array;
  hex: string;
  org: string;
  customer: string;
  agent: string;
  epochs: Map<number, EpochState>;
  /** Read from the relay: the cursor, each item once, pushes held back during a sync. */
  log: SyncedConversation;
  /** Messages that arrived before their epoch's secret (a hand-off brings it later). */
  waiting: Sequenced[];
  /**
   * The items last read from the conversation's start for a hand-off to this account
   * (`AgentReader.earlierItems`), or null: a later hand-off of the same burst (a transfer's two,
   * §7.6) that this read already served reuses it instead of reading the history again. At most
   * `MAX_SYNC_PAGES` pages; replaced by the next read.
   */
  earlier: Sequenced[] | null;
  /** The conversation's hand-offs seen (to anyone), in sequence order: the chains (§7.6) are followed over them. */
  handoffs: { seq: number; handoff: Handoff }[];
  lines: AgentLine[];
  readByCustomer: number;
  delivered: number;
  myRead: number;
  status: ConversationStatus;
  typingUntil: number;
  lastSignal: number;
  blocked: string | null;
  transferredOut: boolean;
  /** The audit log's notices about this conversation, checked, by log index. */
  notices: Map<number, AgentNotice>;
  /** Their leaf hashes (hex): the same entry again is said to be a repeat. */
  noticeLeaves: Set<string>;
}

/** What the console shows of `c` at `now` (`blockedAll`: every conversation's block, if any). */
export function viewOf(c: Conv, now: number, blockedAll: string | null): ConversationView {
  return {
    id: c.hex,
    org: c.org,
    customer: c.customer,
    agent: c.agent,
    lines: c.lines,
    unread: c.lines.filter((l) => readable(l) && l.seq > c.myRead).length,
    status: c.status,
    readByCustomer: c.readByCustomer,
    deliveredToCustomer: c.delivered,
    typing: c.typingUntil > now,
    blocked: blockedAll ?? c.blocked,
    transferredOut: c.transferredOut,
    notices: [...c.notices.values()].sort((a, b) => a.index - b.index),
    withheld: c.log.holes?.withheld() ?? [],
  };
}
