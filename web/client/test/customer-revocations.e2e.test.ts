/**
 * A consent revoked on another device of the account (another browser holding the same
 * account: its records copied) shows revoked in this one, learned from the audit log and proven
 * there (`customer-revocations.ts`), and revoking it here again logs nothing; a revocation the
 * relay serves in the genuine one's place, signed by another key, is not believed (its leaf does
 * not make up the head, so the listing is refused before `checkEntry` sees it; `checkEntry`'s own
 * negatives are in `audit-listing.test.ts`), and the genuine one is read again at the next look. A revocation is learned
 * across another customer's entries, withheld as leaf hashes by the real relay, once the listing
 * makes up the signed head; the same listing with a withheld leaf altered on the way is refused
 * (`AuditLogError`, `listing_not_head`, `audit-listing.ts`) and nothing is learned from it.
 */
import { IdentityKeys, entrySignedBytes, type AuditEntry, type CborValue } from "@sealdesk/protocol";
import { describe, expect, it } from "vitest";
import { AuditLogError, MemoryStore, type Store } from "../src/index.js";
import { onlineCustomer, orgOnRelay, random } from "./customer-fixture.js";
import { eventually } from "./relay.js";
import { tampering, type Frame } from "./tamper.js";

/** A copy of `store`: another browser or device holding the same account. */
async function copyOf(store: Store): Promise<MemoryStore> {
  const copy = new MemoryStore();
  for (const k of await store.keys("")) {
    const b = await store.get(k);
    if (b !== undefined) await copy.put(k, b);
  }
  return copy;
}

describe("consents revoked on another device", () => {
  const fx = orgOnRelay("web-revocations");

  it("shows a revocation made elsewhere, proven in the log, and not one the relay forges", async () => {
    /** Whether the relay serves, in place of each revocation in the log, one signed by another key. */
    let forge = false;
    const impostor = IdentityKeys.generate(random);
    const socket = tampering((frame) => {
      const entries = ((frame.response as Frame | undefined)?.body as Frame | undefined)?.entries as Frame | undefined;
      if (!forge || entries === undefined || !Array.isArray(entries.entries)) return;
      entries.entries = (entries.entries as Frame[]).map((e): CborValue => {
        const event = e.event as Frame;
        if (event.consent_revocation === undefined) return e;
        const unsigned = { event: event as AuditEntry["event"], at: e.at as number, signer: impostor.signingPublic };
        return { event, at: unsigned.at, signer: unsigned.signer, signature: impostor.sign(entrySignedBytes(unsigned)) };
      });
    });
    const store = new MemoryStore();
    const { customer: here } = await onlineCustomer(fx.options(store, { socket }));
    await here.send("please check my refund");
    const first = await here.grantConsent("refund check");
    const second = await here.grantConsent("quality review");
    const third = await here.grantConsent("training");
    expect((await here.consentStates()).every((c) => c.state === "active")).toBe(true);

    // Another browser of the same account (its records copied) revokes the second consent.
    const { customer: elsewhere } = await onlineCustomer(fx.options(await copyOf(store)));
    // From now on the relay serves this browser a forged revocation in the genuine one's place
    // (this browser reads the log as soon as it grows: `audit_grew`): not believed.
    forge = true;
    const revoked = await elsewhere.revokeConsent(second);
    expect(revoked).toMatchObject({ state: "revoked", already: false });
    expect((await here.consentStates()).find((c) => c.id === second)?.state).toBe("active");
    forge = false;
    // Served honestly: revoked, at the genuine entry.
    const states = await here.consentStates();
    expect(states.find((c) => c.id === second)).toMatchObject({ state: "revoked", entry: revoked.state === "revoked" ? revoked.index : -1 });
    expect(states.find((c) => c.id === first)?.state).toBe("active");

    // The third, revoked elsewhere and then here: said revoked at the other device's entry, nothing logged again.
    const other = await elsewhere.revokeConsent(third);
    elsewhere.stop();
    expect(await here.revokeConsent(third)).toMatchObject({ state: "revoked", index: other.state === "revoked" ? other.index : -1, already: true });
    here.stop();
  });

  it("learns a revocation across another customer's withheld entries, and refuses the listing with a withheld leaf altered", async () => {
    /** Whether the relay alters the first withheld leaf of each listing; how many withheld slots were served. */
    let alter = false;
    let withheldServed = 0;
    const socket = tampering((frame) => {
      const entries = ((frame.response as Frame | undefined)?.body as Frame | undefined)?.entries as Frame | undefined;
      if (entries === undefined || !Array.isArray(entries.withheld)) return;
      withheldServed += entries.withheld.length;
      const first = entries.withheld[0] as Frame | undefined;
      if (alter && first?.leaf instanceof Uint8Array) first.leaf = Uint8Array.from(first.leaf, (b, i) => (i === 0 ? b ^ 1 : b));
    });
    const store = new MemoryStore();
    const { customer: here, events } = await onlineCustomer(fx.options(store, { socket }));
    await here.send("a question");
    const mine = await here.grantConsent("refund check");
    // From now on every listing past this customer's position holds the stranger's entry, altered.
    alter = true;
    // Another account (its own conversation) revokes a consent of its own: withheld from this customer.
    const { customer: stranger } = await onlineCustomer(fx.options(new MemoryStore()));
    await stranger.send("another question");
    expect(await stranger.revokeConsent(await stranger.grantConsent("training"))).toMatchObject({ state: "revoked" });
    stranger.stop();
    // This account, on another device, revokes its consent.
    const { customer: elsewhere } = await onlineCustomer(fx.options(await copyOf(store)));
    const revoked = await elsewhere.revokeConsent(mine);
    elsewhere.stop();
    expect((await here.consentStates()).find((c) => c.id === mine)?.state).toBe("active");
    await eventually("the altered listing refused", () => events.find((e) => e.kind === "error" && e.error instanceof AuditLogError && e.error.failure === "listing_not_head"));
    expect(withheldServed).toBeGreaterThan(0);
    // Served honestly: the leaves (the stranger's withheld, this account's computed) make up the head.
    alter = false;
    expect((await here.consentStates()).find((c) => c.id === mine)).toMatchObject({ state: "revoked", entry: revoked.state === "revoked" ? revoked.index : -1 });
    here.stop();
  });
});
