/**
 * A customer told at once that the org's master re-certified the conversation's agent for a new
 * key (PROTOCOL §13.5 `watch_agent_keys` / `agent_key_changed`), as the Rust client is.
 *
 * The customer asks for the push on every session (`watchAgentKeys`). The push is a hint and
 * nothing in it is trusted: on it, `checkAgentKey` fetches the agent's certificate and verifies
 * it under the org's policy (itself checked against the pinned master), and compares the
 * certified card with the agent card the conversation pinned when it was opened. A certified
 * card with another key is a key change (the caller blocks sending and shows its warning); a
 * push whose card the certificate does not confirm, or that cannot be checked, changes nothing
 * and is reported as unconfirmed.
 */
import { cardFingerprint, equal, formatFingerprint, verifyAgentCertificate, type IdentityCard, type Policy } from "@sealdesk/protocol";
import { SessionError, type Session } from "./session.js";

/** What a check of the agent's key found. */
export type AgentKeyCheck =
  /** The certificate names the pinned key (and so does the push, if any). */
  | { kind: "unchanged" }
  /** The org's certificate names another key for the agent: a key change. */
  | { kind: "changed"; card: IdentityCard; detail: string }
  /** The push named a key the certificate does not confirm, or the check failed: nothing changed. */
  | { kind: "unconfirmed"; reason: string };

/** What the check needs of the customer. */
export interface AgentKeyHost {
  org: string;
  /** The latest policy, verified and checked against the pinned master (throws otherwise). */
  policy(s: Session): Promise<Policy>;
  now(): number;
}

/** Asks the relay for `agent_key_changed` pushes on this session; false if it refused (an older relay). */
export async function watchAgentKeys(s: Session): Promise<boolean> {
  const r = await s.request({ kind: "watch_agent_keys" }).catch(() => null);
  return r !== null && r.kind === "ok";
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
    if (r.kind !== "certificate") return { kind: "unconfirmed", reason: `the relay answered ${r.kind}` };
    certified = verifyAgentCertificate(r.certificate, policy, host.now()).agent;
  } catch (e) {
    if (e instanceof SessionError) throw e;
    return { kind: "unconfirmed", reason: e instanceof Error ? e.message : String(e) };
  }
  if (certified.name !== pinned.name) return { kind: "unconfirmed", reason: `the certificate names ${certified.name}` };
  if (!equal(certified.signingKey, pinned.signingKey) || !equal(certified.agreementKey, pinned.agreementKey)) {
    const fp = formatFingerprint(cardFingerprint(certified));
    return { kind: "changed", card: certified, detail: `${pinned.name}'s key changed: the org's master re-certified ${pinned.name} for a new key (fingerprint ${fp})` };
  }
  if (pushed !== null && !equal(pushed.signingKey, pinned.signingKey)) {
    return { kind: "unconfirmed", reason: `the org's certificate still names the key pinned for ${pinned.name}` };
  }
  return { kind: "unchanged" };
}
