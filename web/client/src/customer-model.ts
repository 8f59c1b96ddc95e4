/**
 * What the customer (`customer.ts`) tells its view and is set up with: a verified line of the
 * conversation (`ChatLine`), the events (`CustomerEvent`), the typed refusal (`CustomerError`)
 * and the options (`CustomerOptions`).
 */
import type { Policy } from "@sealdesk/protocol";
import type { AttachmentRef } from "./attachment.js";
import type { ShownNotice } from "./customer-notices.js";
import type { UploadState } from "./customer-uploads.js";
import type { ByteQuota } from "./frames.js";
import type { MemberOptions } from "./member.js";
import type { ConnectionState } from "./session.js";
import type { UnconfirmedCode } from "./customer-agent-key.js";
import type { Hole } from "./customer-holes.js";

/** One line of the conversation, verified. */
export interface ChatLine {
  seq: number;
  /** Whether this account sent it. */
  mine: boolean;
  /** The sender's account name. */
  sender: string;
  /** The text; for a file, its line ("name, size" and the caption). */
  text: string;
  sentAt: number;
  /** When the relay stored it. */
  storedAt: number;
  /** The epoch and the sender's counter in it. */
  epoch: number;
  counter: number;
  /** A file's reference (a message of kind `attachment`, §9.8); fetch it with `download`. */
  attachment?: AttachmentRef;
}

/** What the customer tells its view. */
export type CustomerEvent =
  | { kind: "state"; state: ConnectionState; detail?: string }
  | { kind: "policy"; policy: Policy; fingerprint: string }
  | { kind: "line"; line: ChatLine }
  | { kind: "read"; seq: number }
  | { kind: "delivered"; member: string; seq: number }
  /** The agent (`member`) started or stopped typing (an ephemeral signal, §9.7). */
  | { kind: "typing"; member: string; typing: boolean }
  /** A notice, or a notice shown before whose verdict changed (same `seq`: replace it). */
  | { kind: "notice"; notice: ShownNotice }
  | { kind: "key_changed"; detail: string }
  /**
   * A check of the agent's key (on the relay's push, at a session, or on the timer) could not
   * confirm it: the push named a key the org's certificate does not, or the certificate could
   * not be fetched or verified. Nothing changed; told once per distinct `reason`. `pushed`: the
   * relay's push prompted the check (it claimed a new key); otherwise a check on the timer or at
   * a session found the certificate wanting.
   */
  /**
   * A check of the agent's key could not confirm it (nothing changed, sending stays open):
   * `code` says why (`UnconfirmedCode`, for the view's words), `reason` the library's detail.
   */
  | { kind: "agent_key_unconfirmed"; agent: string; code: UnconfirmedCode; reason: string; pushed: boolean }
  | { kind: "refused"; seq: number; reason: string }
  /**
   * The runs of items that never arrived, all of them as they stand now (sorted, disjoint), told
   * each time they change: a run found (`tries` 0), asked for again (`tries` up by one), given up
   * (`tries` at `REFETCH_LIMIT`: the relay withheld it), a relay's false claim caught, a run
   * closed or split because its items came after all (each also shown as a `line`, in order).
   * A view keys each run by `from` and `to` and updates it in place.
   */
  | { kind: "withheld"; holes: readonly Hole[] }
  /**
   * The account's consents changed: one granted on another device (its item in the
   * conversation, verified) or revoked there (proven in the audit log). Read `consentStates()`.
   */
  | { kind: "consents" }
  /** Where an upload stands (kept until its message is sent: see `customer-uploads.ts`). */
  | { kind: "upload"; upload: UploadState }
  /** The relay's warning ahead of a stored-bytes quota (§9.8, §13.12), from 80% of it on: after an upload's chunk or a sent message. */
  | { kind: "bytes_quota"; quota: ByteQuota }
  /** The relay's warning ahead of the open-conversations quota (§13.12): `open` of `most`. */
  | { kind: "open_quota"; open: number; most: number }
  | { kind: "error"; error: Error };

/**
 * Why the customer refused to go on. `account_replaced`: another tab recovered an account into
 * this browser's store since this customer was loaded; it opens nothing over it (reload to go
 * on as the recovered account).
 */
export type CustomerFailure = "fingerprint_mismatch" | "key_changed" | "not_open" | "no_epoch" | "bad_answer" | "account_replaced";

/**
 * The detail of a send refused `no_epoch` because another tab or device of this account opened
 * the next epoch first `OWN_EPOCH_TRIES` times (`customer-send.ts`): nothing was sent, and a
 * retry may well go through (the widget says so in plain words).
 */
export const OWN_EPOCH_LOST = "another device of this account keeps opening the next epoch first";

/**
 * The detail of a send refused `no_epoch` because another member stored the next epoch first
 * `OWN_EPOCH_TRIES` (`customer-send.ts`) times, each one this account could not send in (nothing was sent).
 */
export const EPOCH_KEPT_MOVING = "the conversation's epoch kept moving: the next one was stored first each time";

/** The customer refused something; `failure` says what, `detail` (when given) why. */
export class CustomerError extends Error {
  constructor(
    readonly failure: CustomerFailure,
    readonly detail?: string,
  ) {
    super(detail === undefined ? failure : `${failure}: ${detail}`);
    this.name = "CustomerError";
  }
}

/** How a customer is set up. */
export interface CustomerOptions extends MemberOptions {
  /** The org's name. */
  org: string;
  /** The org master's printed fingerprint, as the business published it. */
  masterFingerprint: string;
  /** An open token from the business's web site (its CBOR), for an org that requires one (§13.14). */
  openToken?: Uint8Array;
  /** How often notices not yet witnessed are checked again (ms; default `RECHECK_NOTICES_MS`). */
  recheckNoticesMs?: number;
  /**
   * How often the conversation's agent key is checked again without a push (ms; default
   * `RECHECK_AGENT_MS`, 60 s, as the Rust chat's); it is checked too on every session that opens.
   */
  recheckAgentMs?: number;
}
