/**
 * A consent item of the conversation taken by its customer (`customer-consents.ts`), without a
 * relay: the token decodes as `consentToCbor` writes it (a field that does not fit is
 * `malformed`); one signed by this account for this conversation and org is kept as
 * `consent/<id>` once (and the log's reading for revocations starts again); one that does not
 * decode, names another customer, conversation or org, or whose signature does not verify is
 * refused and nothing is kept. `ConsentWatch` reads once more, not once per ask, when asked
 * while reading.
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { IdentityKeys, ProtocolError, consentSignedBytes, fromCbor, toCbor, type ConsentToken } from "@sealdesk/protocol";
import { CONSENT_PREFIX, ConsentItemError, ConsentWatch, MemoryStore, REVOCATION_SCAN_KEY, consentFromCbor, consentToCbor, takeConsentItem } from "../src/index.js";

const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

/** A consent token signed by `keys` (its `customer`), with `over` changed before signing. */
function token(keys: IdentityKeys, conversation: Uint8Array, over: Partial<ConsentToken> = {}): ConsentToken {
  const unsigned = {
    id: random(16),
    org: "acme",
    conversation,
    epochs: { first: 0, last: 1 },
    grantee: random(32),
    scope: "full" as const,
    purpose: "refund check",
    issuedAt: 1_800_000_000,
    expiresAt: 1_800_086_400,
    customer: keys.signingPublic,
    ...over,
  };
  return { ...unsigned, signature: keys.sign(consentSignedBytes(unsigned)) };
}

describe("consent items", () => {
  const me = IdentityKeys.generate(random);
  const conversation = random(16);
  const owner = (store: MemoryStore) => ({ store, org: "acme", conversation, customer: me.signingPublic });

  it("decodes a token as consentToCbor writes it, and refuses a field that does not fit", () => {
    const t = token(me, conversation);
    expect(consentFromCbor(fromCbor(toCbor(consentToCbor(t))))).toEqual(t);
    const bad = consentToCbor(t) as Record<string, unknown>;
    expect(() => consentFromCbor({ ...bad, scope: "everything" } as never)).toThrow(ProtocolError);
    expect(() => consentFromCbor({ ...bad, signature: new Uint8Array(63) } as never)).toThrow(ProtocolError);
  });

  it("keeps this account's consent once, and reads the log for revocations again from the start", async () => {
    const store = new MemoryStore();
    await store.put(REVOCATION_SCAN_KEY, toCbor(12));
    const t = token(me, conversation);
    expect(await takeConsentItem(owner(store), t)).toBe(true);
    expect(await store.keys(CONSENT_PREFIX)).toEqual([`${CONSENT_PREFIX}${Buffer.from(t.id).toString("hex")}`]);
    expect(await store.get(REVOCATION_SCAN_KEY)).toBeUndefined();
    await store.put(REVOCATION_SCAN_KEY, toCbor(12));
    expect(await takeConsentItem(owner(store), t)).toBe(false);
    expect(await store.get(REVOCATION_SCAN_KEY)).toBeDefined();
  });

  it("refuses a token that does not decode, of another customer, conversation or org, or badly signed; nothing kept", async () => {
    const stranger = IdentityKeys.generate(random);
    const good = token(me, conversation);
    const cases: [ConsentToken | null, string][] = [
      [null, "it does not decode"],
      [token(stranger, conversation), "not signed by this account"],
      [token(me, random(16)), "about another conversation"],
      [token(me, conversation, { org: "other" }), "for another org"],
      [{ ...good, purpose: "altered by the relay" }, "signature"],
      // Signed by a stranger, claiming this account as its customer.
      [{ ...good, signature: token(stranger, conversation, { id: good.id, grantee: good.grantee, customer: me.signingPublic }).signature }, "signature"],
    ];
    for (const [t, why] of cases) {
      const store = new MemoryStore();
      const err = await takeConsentItem(owner(store), t).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConsentItemError);
      expect((err as Error).message).toContain(why);
      expect(await store.keys("")).toEqual([]);
    }
  });

  it("reads once more, not once per ask, when asked while reading", async () => {
    let readings = 0;
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const watch = new ConsentWatch({
      catchUp: async () => {
        readings += 1;
        if (readings === 1) await gate;
      },
      learn: () => Promise.resolve([]),
      changed: () => undefined,
    });
    const first = watch.poke();
    const asks = [watch.poke(), watch.poke(), watch.poke()];
    release();
    await Promise.all([first, ...asks]);
    expect(readings).toBe(2);
  });
});
