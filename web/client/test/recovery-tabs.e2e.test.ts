/**
 * A recovery and another tab of the same browser, against the real relay and `sealdesk`
 * binaries: both hold one store, and the send lock (a Web Lock in a page, a queue here) orders
 * the recovery's writes with the other tab's first send, which opens a conversation as the
 * browser's former account. Whichever comes first wins, and the other changes nothing: a send
 * that opened the conversation first makes the recovery refuse (`has_conversation`, nothing
 * stored); a recovery that wrote first makes the other tab's send refuse (`account_replaced`),
 * and it opens nothing over the recovered account.
 */
import { toHex } from "@sealdesk/protocol";
import { describe, expect, it } from "vitest";
import { CustomerError, MemoryStore, RECOVERY_FENCE_KEY, RecoveryError, readAccount, recoverAccount } from "../src/index.js";
import { readConversation } from "../src/customer-conversation.js";
import { onlineCustomer, orgOnRelay } from "./customer-fixture.js";
import { recoveryKit, sendLock } from "./recovery-fixture.js";

describe("a recovery and another tab of the same browser", () => {
  const fx = orgOnRelay("web-recovery-tabs");
  const { recoverOptions, cliCustomer } = recoveryKit(fx);

  it("a recovery that wrote first: the other tab's send opens nothing and says the account was replaced", async () => {
    const kate = await cliCustomer("kate", "where is my order", "on its way");
    const store = new MemoryStore();
    const withSendLock = sendLock();
    // The other tab: the browser's fresh account, loaded before the recovery.
    const { customer: other } = await onlineCustomer(fx.options(store, { withSendLock }));
    const former = other.card.name;
    const done = await recoverAccount({ ...recoverOptions(store, "kate", kate.initCode), withSendLock });
    expect(done.conversation).toBe(kate.id);

    const err = await other.send("written in the other tab").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CustomerError);
    expect((err as CustomerError).failure).toBe("account_replaced");
    expect((err as CustomerError).message).toContain("kate");
    // The store is the recovered account's, its conversation untouched.
    expect((await readAccount(store))?.card.name).toBe("kate");
    const conv = await readConversation(store);
    expect(conv === undefined ? null : toHex(conv.conversation)).toBe(kate.id);
    // And the relay holds no conversation of the former account (it never registered).
    expect(await fx.org.agent(["history", "--conversation", kate.id])).not.toContain("written in the other tab");
    expect(former).not.toBe("kate");
    other.stop();
  });

  it("a send that opened a conversation first: the recovery is refused and stores nothing", async () => {
    const liam = await cliCustomer("liam", "is the shop open", "until six");
    const store = new MemoryStore();
    const withSendLock = sendLock();
    const { customer: other } = await onlineCustomer(fx.options(store, { withSendLock }));
    const key = toHex(other.card.signingKey);
    // The send takes the lock now; the recovery reaches it only after its checks on the relay.
    const sending = other.send("first words of this browser");
    const recovering = recoverAccount({ ...recoverOptions(store, "liam", liam.initCode), withSendLock }).catch((e: unknown) => e);
    const line = await sending;
    expect(line.text).toBe("first words of this browser");
    const err = await recovering;
    expect(err).toBeInstanceOf(RecoveryError);
    expect((err as RecoveryError).failure).toBe("has_conversation");
    // Nothing of liam's was written: the account and the conversation are the other tab's.
    const held = await readAccount(store);
    expect(held === undefined ? null : toHex(held.card.signingKey)).toBe(key);
    expect(toHex((await readConversation(store))?.conversation ?? new Uint8Array())).toBe(other.conversationId());
    expect(await store.get(RECOVERY_FENCE_KEY)).toBeUndefined();
    other.stop();
  });
});
