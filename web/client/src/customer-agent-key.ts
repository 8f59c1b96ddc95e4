/**
 * The customer keeps checking that the conversation's agent is the one it pinned: told at once
 * when the org's master re-certifies the agent for a new key (PROTOCOL §13.5 `watch_agent_keys`
 * / `agent_key_changed`), and checked again on a timer and on every session it opens, as the
 * Rust chat is (`cli/src/chat/engine.rs`'s `recheck_agent`, every `KEY_RECHECK`).
 *
 * The customer asks for the push on every session (`watchAgentKeys`; a relay that does not know
 * the request is not asked again, §13.5's older-relay rule). The push is a hint and
 * nothing in it is trusted: on it, `checkAgentKey` fetches the agent's certificate and verifies
 * it under the org's policy (itself checked against the pinned master), and compares the
 * certified card with the agent card the conversation pinned when it was opened. A certified
 * card with another key is a key change (the caller blocks sending and shows its warning); a
 * push whose card the certificate does not confirm, or that cannot be checked, changes nothing
 * and is reported as unconfirmed.
 *
 * A push is lost with the connection it was sent on, and the relay never sends it again; so
 * `AgentKeyWatch` owns the checks: the push's, one when a session opens, and one every
 * `RECHECK_AGENT_MS` (no push: the certificate against the pin). One check runs at a time; a
 * check that cannot confirm the key is told once per distinct reason, not at every tick.
 */
import { CertificateError, ProtocolError, cardFingerprint, equal, formatFingerprint, verifyAgentCertificate, type IdentityCard, type Policy } from "@sealdesk/protocol";
import { CustomerError } from "./customer-model.js";
import { RelayError, SessionError, type Session } from "./session.js";

/** How often the agent's key is checked again without a push (ms), as the Rust chat's `KEY_RECHECK`. */
export const RECHECK_AGENT_MS = 60_000;

/** What a check of the agent's key found. */
export type AgentKeyCheck =
  /** The certificate names the pinned key (and so does the push, if any). */
  | { kind: "unchanged" }
  /** The org's certificate names another key for the agent: a key change. */
  | { kind: "changed"; card: IdentityCard; detail: string }
  /** The push named a key the certificate does not confirm, or the check failed: nothing changed. */
  | { kind: "unconfirmed"; code: UnconfirmedCode; reason: string };

/**
 * Why a check could not confirm the agent's key, for a view to say in its own words (`reason`
 * holds the library's detail, for support):
 *
 * - `bad_signature`: the certificate's signature (or the agent card's) does not verify;
 * - `expired`, `invalid_validity`, `wrong_org`: the certificate's `CertificateFailure`;
 * - `malformed`: the certificate or its card does not decode or check otherwise;
 * - `relay_refused`: the relay answered an error (`not_found`, …: in `reason`);
 * - `unexpected_answer`: the relay answered something other than a certificate;
 * - `other_name`: the certificate names another agent;
 * - `not_rekeyed`: a push named a new key, and the certificate still names the pinned one.
 */
export type UnconfirmedCode = "bad_signature" | "expired" | "invalid_validity" | "wrong_org" | "malformed" | "relay_refused" | "unexpected_answer" | "other_name" | "not_rekeyed";

/** The code of an error met while fetching or verifying the certificate. */
function unconfirmedCode(e: unknown): UnconfirmedCode {
  if (e instanceof CertificateError) return e.failure;
  if (e instanceof ProtocolError) return e.code === "bad_signature" ? "bad_signature" : "malformed";
  if (e instanceof RelayError) return "relay_refused";
  return "malformed";
}

/** What the check needs of the customer. */
export interface AgentKeyHost {
  org: string;
  /** The latest policy, verified and checked against the pinned master (throws otherwise). */
  policy(s: Session): Promise<Policy>;
  now(): number;
}

/**
 * Asks the relay for `agent_key_changed` pushes on this session; false if it did not say `ok`.
 * A relay too old to know the request is asked once for the client's life (`Session.watch`, the
 * older-relay rule of §13.5); the checks on every session and on the timer cover it.
 */
export async function watchAgentKeys(s: Session): Promise<boolean> {
  return (await s.watch("watch_agent_keys")) === "watching";
}

/**
 * Checks the key of `pinned` (the conversation's agent) against its org's certificate now;
 * `pushed` is the card the relay's push named, if a push prompted the check. A lost session and
 * a changed master key are thrown (the caller handles them as always); anything else the relay
 * answers is an unconfirmed push.
 */
export async function checkAgentKey(s: Session, host: AgentKeyHost, pinned: IdentityCard, pushed: IdentityCard | null): Promise<AgentKeyCheck> {
  const policy = await host.policy(s);
  let certified: IdentityCard;
  try {
    const r = await s.call({ kind: "get_certificate", org: host.org, agent: pinned.name });
    if (r.kind !== "certificate") return { kind: "unconfirmed", code: "unexpected_answer", reason: `the relay answered ${r.kind}` };
    certified = verifyAgentCertificate(r.certificate, policy, host.now()).agent;
  } catch (e) {
    if (e instanceof SessionError) throw e;
    return { kind: "unconfirmed", code: unconfirmedCode(e), reason: e instanceof Error ? e.message : String(e) };
  }
  if (certified.name !== pinned.name) return { kind: "unconfirmed", code: "other_name", reason: `the certificate names ${certified.name}` };
  if (!equal(certified.signingKey, pinned.signingKey) || !equal(certified.agreementKey, pinned.agreementKey)) {
    const fp = formatFingerprint(cardFingerprint(certified));
    return { kind: "changed", card: certified, detail: `${pinned.name}'s key changed: the org's master re-certified ${pinned.name} for a new key (fingerprint ${fp})` };
  }
  if (pushed !== null && !equal(pushed.signingKey, pinned.signingKey)) {
    return { kind: "unconfirmed", code: "not_rekeyed", reason: `the org's certificate still names the key pinned for ${pinned.name}` };
  }
  return { kind: "unchanged" };
}

/** What `AgentKeyWatch` needs of the customer. */
export interface AgentKeyWatchHost extends AgentKeyHost {
  /** The agent card pinned when the conversation was opened, or null (none open, or erased). */
  pinned(): IdentityCard | null;
  /** The current session, or null when offline. */
  session(): Session | null;
  /** Whether sending is blocked already (a key changed): nothing more to check. */
  blocked(): boolean;
  /** The org's certificate names another key: block sending and show the key warning. */
  changed(detail: string): void;
  /** A check (prompted by a push: `pushed`) that could not confirm the key (`agent_key_unconfirmed`): nothing changed. */
  unconfirmed(agent: string, code: UnconfirmedCode, reason: string, pushed: boolean): void;
  /** An error that stops nothing (from a timed check). */
  fail(error: unknown): void;
}

/**
 * The checks of the conversation's agent key: on a push (`pushed`), when a session opens, and
 * every `everyMs` while started. Checks never overlap: a push that comes during a check is
 * checked after it; a tick that comes during one is skipped (the check running covers it).
 */
export class AgentKeyWatch {
  private timer: ReturnType<typeof setInterval> | null = null;
  private queue: Promise<void> = Promise.resolve();
  private running = 0;
  /** The reasons told as `unconfirmed` (and the errors told by timed checks): each told once. */
  private readonly told = new Set<string>();

  constructor(private readonly host: AgentKeyWatchHost) {}

  /** Checks the key every `everyMs` from now on (until `stop`). */
  start(everyMs: number = RECHECK_AGENT_MS): void {
    this.timer ??= setInterval(() => {
      if (this.running === 0) void this.check(null).catch((e: unknown) => this.failOnce(e));
    }, everyMs);
  }

  /** Stops the timed checks (a check running goes on to its end). */
  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /**
   * Checks the pinned agent's key now (after any check running), `pushed` being the card a
   * relay's push named, or null. Nothing is checked offline, without a conversation, or once a
   * key change has blocked sending.
   *
   * # Errors
   * A lost session (`SessionError`), and what fetching the policy threw other than a changed
   * master key (shown and blocking sending already, so not thrown).
   */
  check(pushed: IdentityCard | null): Promise<void> {
    this.running += 1;
    const run = this.queue.then(() => this.checkNow(pushed)).finally(() => (this.running -= 1));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async checkNow(pushed: IdentityCard | null): Promise<void> {
    const pinned = this.host.pinned();
    const s = this.host.session();
    if (pinned === null || s === null || this.host.blocked()) return;
    let found: AgentKeyCheck;
    try {
      found = await checkAgentKey(s, this.host, pinned, pushed);
    } catch (e) {
      // A changed master key was shown and blocks sending already.
      if (e instanceof CustomerError && e.failure === "key_changed") return;
      throw e;
    }
    // The pin may have been blocked meanwhile (a changed epoch member, another check's push).
    if (this.host.blocked()) return;
    if (found.kind === "changed") this.host.changed(found.detail);
    else if (found.kind === "unconfirmed" && this.fresh(`unconfirmed ${found.reason}`)) this.host.unconfirmed(pinned.name, found.code, found.reason, pushed !== null);
  }

  /** A timed check's error told once (a lost session is not one: the next session checks again). */
  private failOnce(e: unknown): void {
    if (e instanceof SessionError) return;
    if (this.fresh(`error ${e instanceof Error ? e.message : String(e)}`)) this.host.fail(e);
  }

  private fresh(what: string): boolean {
    if (this.told.has(what)) return false;
    this.told.add(what);
    return true;
  }
}
