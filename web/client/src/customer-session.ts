/**
 * A customer's session made ready to chat on (`customer.ts`): the card registered, the pushes
 * asked for (`watch_agent_keys`, `watch_audit`) and the org's policy checked, once per session.
 * A relay too old to know a push request closes the session on it (PROTOCOL §13.5, the
 * older-relay rule); an action of the customer's then goes on over the next session, which does
 * not ask it again.
 */
import { CustomerError } from "./customer-model.js";
import { watchAgentKeys } from "./customer-agent-key.js";
import type { CustomerPolicies } from "./customer-policy.js";
import { SessionError, type Session } from "./session.js";

/** How many push requests a customer makes per session: the sessions the older-relay rule can cost one action. */
const WATCH_KINDS = 2;

/** What readiness needs of the customer. */
export interface ReadinessHost {
  readonly policies: CustomerPolicies;
  /** The next session once the current one is lost (`Member.nextSession`). */
  nextSession(): Promise<Session>;
}

/** The session readied, and whether the log's growth is pushed on it. */
export class CustomerReadiness {
  /** The session the card was registered on and the policy checked on, and that run. */
  private readied: { session: Session; run: Promise<void> } | null = null;
  /**
   * The session that said `ok` to `watch_audit` (the log's growth is pushed there), or null:
   * on any other (a relay too old to know the request), the log is read on a timer.
   */
  private auditWatchedOn: Session | null = null;

  constructor(private readonly host: ReadinessHost) {}

  /** Whether `s` is readied but the log's growth is not pushed on it (read it on a timer). */
  readyWithoutAuditPushes(s: Session): boolean {
    return this.readied?.session === s && this.auditWatchedOn !== s;
  }

  /**
   * Readies `s` (`readyOn`) and returns the session readied. With `follow` (an action of the
   * customer's: a send, a code, `begin`), a session the relay closed on a push request it does
   * not know is followed by the next one, which does not ask it again; each request kind can
   * cost one session at most.
   */
  async ready(s: Session, follow = false): Promise<Session> {
    for (let lost = 0; ; lost++) {
      try {
        await this.readyOn(s);
        return s;
      } catch (e) {
        if (!follow || s.lostToUnknown.length === 0 || lost >= WATCH_KINDS) throw e;
        s = await this.host.nextSession();
      }
    }
  }

  /**
   * Registers the card on `s` and checks the policy there (unless it was, before registering),
   * once per session (concurrent callers share the run; a failed run is tried again by the next
   * caller).
   */
  private readyOn(s: Session): Promise<void> {
    if (this.readied?.session === s) return this.readied.run;
    const run = (async () => {
      await s.register();
      // Told at once of a re-certified agent. A relay that does not know the request (§13.5's
      // older-relay rule) is not asked again: the checks at each session and on the timer stay.
      await watchAgentKeys(s);
      // Told when the log grows: a revocation made on another device shows at once. A relay
      // that does not know the request is read on the notices' timer instead (`Customer.start`).
      if ((await s.watch("watch_audit")) === "watching") this.auditWatchedOn = s;
      // Closed on a request it does not know: the caller goes on over the next session.
      if (s.closed) throw new SessionError("closed", `lost asking for pushes (${s.lostToUnknown.join(", ") || "dropped"})`);
      try {
        if (!this.host.policies.checkedOnSession(s)) await this.host.policies.check(s, null);
      } catch (e) {
        // A changed master key blocks sending (already told); reading goes on.
        if (!(e instanceof CustomerError && e.failure === "key_changed")) throw e;
      }
    })();
    this.readied = { session: s, run };
    run.catch(() => {
      if (this.readied?.run === run) this.readied = null;
    });
    return run;
  }
}
