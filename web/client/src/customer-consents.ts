/**
 * The consents of the customer's conversation wherever the account granted them — this browser,
 * another browser holding the same account, the CLI (`sealdesk consent grant`) — taken from what
 * the relay and the audit log can prove, not from this browser's store alone:
 *
 * - **Granted**: every consent the customer shares is an item of the conversation (`consent`,
 *   PROTOCOL §10.2 and §13.11), which its customer reads. One is taken only when its token's
 *   signature verifies under this account's own key (the conversation's customer), for this
 *   conversation and this org; then it is kept as `consent/<id>`, the record a consent granted
 *   here keeps, so `consentStates`, revoking and the notices' names treat it alike. A token the
 *   relay forged or altered is refused (`ConsentItemError`), never listed.
 * - **Revoked**: a revocation made elsewhere is an entry of the audit log, learned and proven by
 *   `learnRevocations` (`customer-revocations.ts`). A consent learned late may have been revoked
 *   before: its reading of the log starts again from the first entry.
 * - **When**: the relay pushes a consent item to every connection of the customer's account but
 *   the one that shared it, and to the org's master (§13.11), so one granted on another device
 *   is pushed here at once and taken as it comes — checked exactly as one read from the history
 *   (the customer's `ingest` path is the same for both). One this session missed (it was offline,
 *   or a hostile relay held the push back) arrives with the next read of the conversation: a
 *   pushed item past the cursor, a reconnection, a reload, the consents panel opened — and each
 *   time the log grows (`audit_grew`, asked for with `watch_audit`), when the history and the log
 *   are read again (`ConsentWatch`): a revocation made elsewhere shows at once, and any grant
 *   made before it with it.
 */
import { equal, toCbor, toHex, verifyConsent, type ConsentToken } from "@sealdesk/protocol";
import { consentToCbor } from "./frames.js";
import { CONSENT_PREFIX } from "./customer-rights.js";
import { REVOCATION_SCAN_KEY } from "./customer-revocations.js";
import type { Store } from "./store.js";

/** A consent item that is not this customer's consent for this conversation. */
export class ConsentItemError extends Error {
  constructor(detail: string) {
    super(`consent item refused: ${detail}`);
    this.name = "ConsentItemError";
  }
}

/** Whose consent items are taken. */
export interface ConsentOwner {
  store: Store;
  org: string;
  /** The conversation's id. */
  conversation: Uint8Array;
  /** This account's signing key: the conversation's customer, the only signer of its consents. */
  customer: Uint8Array;
}

/**
 * Takes the consent item `token` (null: it did not decode): checked (see the module docs) and
 * kept as `consent/<id>` when new. Returns whether it was new.
 *
 * # Errors
 * `ConsentItemError` when it does not decode, names another customer, conversation or org, or
 * its signature does not verify; nothing is kept then.
 */
export async function takeConsentItem(owner: ConsentOwner, token: ConsentToken | null): Promise<boolean> {
  if (token === null) throw new ConsentItemError("it does not decode");
  if (!equal(token.customer, owner.customer)) throw new ConsentItemError("not signed by this account");
  if (!equal(token.conversation, owner.conversation)) throw new ConsentItemError("about another conversation");
  if (token.org !== owner.org) throw new ConsentItemError(`for another org (${token.org})`);
  try {
    verifyConsent(token);
  } catch (e) {
    throw new ConsentItemError(e instanceof Error ? e.message : String(e));
  }
  const key = `${CONSENT_PREFIX}${toHex(token.id)}`;
  if ((await owner.store.get(key)) !== undefined) return false;
  await owner.store.put(key, toCbor(consentToCbor(token)));
  // Its revocation may be in the log already, before where the last reading stopped.
  await owner.store.delete(REVOCATION_SCAN_KEY);
  return true;
}

/** What watching the consents needs of the customer. */
export interface ConsentWatchHost {
  /** Reads the conversation from its cursor (consent items shared elsewhere); nothing offline. */
  catchUp(): Promise<void>;
  /** Reads the log for revocations made elsewhere; the ids learned (`learnRevocations`). */
  learn(): Promise<string[]>;
  /** The consents changed: tells the view. */
  changed(): void;
}

/**
 * Reads the conversation and the log again for consents granted or revoked elsewhere, one
 * reading at a time: asked for while one runs, one more follows it (not one per ask), so a burst
 * of `audit_grew` pushes costs two readings, not a burst.
 */
export class ConsentWatch {
  private running: Promise<void> | null = null;
  private again = false;

  constructor(private readonly host: ConsentWatchHost) {}

  /** Reads again (or once more after the reading running now); resolves when that is done. */
  poke(): Promise<void> {
    if (this.running !== null) {
      this.again = true;
      return this.running;
    }
    const run = (async () => {
      do {
        this.again = false;
        await this.host.catchUp();
        if ((await this.host.learn()).length > 0) this.host.changed();
      } while (this.again);
    })();
    this.running = run;
    const clear = (): void => {
      if (this.running === run) this.running = null;
    };
    run.then(clear, clear);
    return run;
  }
}
