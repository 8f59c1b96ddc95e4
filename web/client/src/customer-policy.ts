/**
 * The org's policy as the customer holds it: every version verified (its master's signature) and
 * kept in the store, the latest told (`policy`), the master key checked against the fingerprint
 * the page was given and, once a conversation is open, against the master key it was opened
 * under (a change blocks sending: `keyChanged`).
 *
 * A visitor who has not written reads the latest policy on an unregistered session
 * (`showUnregistered`, PROTOCOL §13.7); a relay older than that answers `not_registered`, and the
 * policy then waits for the customer to begin (`waitsForBegin`).
 */
import { cardFingerprint, equal, fingerprintMatches, formatFingerprint, fromCbor, policyToCbor, toCbor, verifyPolicy, type Policy } from "@sealdesk/protocol";
import { policyFromCbor } from "./frames.js";
import { RelayError, type Session } from "./session.js";
import type { Store } from "./store.js";
import { CustomerError } from "./customer-model.js";

/** Store keys of the policies kept, by version. */
const POLICY_PREFIX = "policy/";

/** What the policies need of the customer. */
export interface PolicyHost {
  org: string;
  /** The master fingerprint the page was given. */
  masterFingerprint: string;
  store: Store;
  /** A latest policy, verified: told. */
  told(policy: Policy): void;
  /** The master key changed: blocks sending, tells it, and throws `key_changed`. */
  keyChanged(detail: string): never;
}

/** The org's policies: verified, kept, the latest told. */
export class CustomerPolicies {
  private readonly byVersion = new Map<number, Policy>();
  /** The latest policy told, or null before one is checked. */
  latest: Policy | null = null;
  /** The master key the open conversation was opened under, once there is one. */
  pinnedMaster: Uint8Array | null = null;
  /** The session whose latest policy was checked (once per session). */
  private checkedOn: Session | null = null;
  /** The relay refused the policy to an unregistered account (older than PROTOCOL §13.7's public policy). */
  private needsRegistration = false;

  constructor(private readonly host: PolicyHost) {}

  /** Reads the policies kept in the store; the newest becomes the latest. */
  async restore(): Promise<void> {
    for (const k of await this.host.store.keys(POLICY_PREFIX)) {
      const b = await this.host.store.get(k);
      if (b !== undefined) {
        const p = verifyPolicy(policyFromCbor(fromCbor(b)));
        this.byVersion.set(p.version, p);
      }
    }
    const newest = this.newest();
    if (newest !== undefined) this.latest = newest;
  }

  /** A kept policy of `version`. */
  get(version: number): Policy | undefined {
    return this.byVersion.get(version);
  }

  /** The newest policy kept. */
  newest(): Policy | undefined {
    return [...this.byVersion.values()].sort((a, b) => b.version - a.version)[0];
  }

  /** Whether the latest policy was checked on `s`. */
  checkedOnSession(s: Session): boolean {
    return this.checkedOn === s;
  }

  /** Whether the policy waits for the customer to begin (see the module docs). */
  waitsForBegin(): boolean {
    return this.needsRegistration && this.latest === null;
  }

  /**
   * The latest policy fetched on an unregistered session, checked and told; a relay that refuses
   * it (`not_registered`) leaves it for `begin`. A wrong fingerprint throws here, before anything
   * is registered.
   */
  async showUnregistered(s: Session): Promise<void> {
    try {
      await this.check(s, null);
      this.needsRegistration = false;
    } catch (e) {
      if (!(e instanceof RelayError && e.code === "not_registered")) throw e;
      this.needsRegistration = true;
    }
  }

  /** Fetches a policy (the latest when `version` is null), verifies it and checks the master; kept, and the latest told. */
  async check(s: Session, version: number | null): Promise<Policy> {
    if (version !== null) {
      const known = this.byVersion.get(version);
      if (known !== undefined) return known;
    }
    const r = await s.call({ kind: "get_policy", org: this.host.org, version });
    if (r.kind !== "policy") throw new CustomerError("bad_answer", r.kind);
    const p = this.accept(r.policy);
    await this.host.store.put(`${POLICY_PREFIX}${String(p.version).padStart(10, "0")}`, toCbor(policyToCbor(p)));
    if (version === null) this.checkedOn = s;
    if (version === null && (this.latest === null || p.version >= this.latest.version)) {
      this.latest = p;
      this.host.told(p);
    }
    return p;
  }

  /** Verifies `policy`: the org's, under the pinned master if any, and the fingerprint given. */
  accept(policy: Policy): Policy {
    const p = verifyPolicy(policy);
    if (p.org !== this.host.org) throw new CustomerError("bad_answer", `policy of ${p.org}`);
    if (this.pinnedMaster !== null && !equal(this.pinnedMaster, p.master.signingKey)) {
      this.host.keyChanged(`the org's master key changed (policy version ${p.version})`);
    }
    if (!fingerprintMatches(cardFingerprint(p.master), this.host.masterFingerprint)) {
      throw new CustomerError("fingerprint_mismatch", `the relay's policy for ${p.org} is signed by ${formatFingerprint(cardFingerprint(p.master))}, not the fingerprint given`);
    }
    this.byVersion.set(p.version, p);
    return p;
  }
}
