/**
 * Recovery codes between the browser and the CLI, against the real relay and `sealdesk` binaries
 * (issue 22): a code the TypeScript customer saves opens with `sealdesk recover`, and a code
 * `sealdesk recovery-code` made recovers the account into a browser store, where the history
 * reads and sending goes on; a second save retires the first; a wrong code, an unknown name, a
 * replaced `init` code, a typo and a tampered record are each refused with their own failure, and nothing
 * is stored.
 */
import { join } from "node:path";
import { fromCbor } from "@sealdesk/protocol";
import { describe, expect, it } from "vitest";
import { Customer, MemoryStore, RECOVERY_FENCE_KEY, RecoveryError, recoverAccount } from "../src/index.js";
import { onlineCustomer, orgOnRelay } from "./customer-fixture.js";
import { cli, eventually } from "./relay.js";
import { recoveryKit } from "./recovery-fixture.js";
import { tampering, type Frame } from "./tamper.js";

describe("recovery codes, browser and CLI", () => {
  const fx = orgOnRelay("web-recovery");

  const { recoverOptions, refused, cliCustomer: made } = recoveryKit(fx);
  /** A CLI customer `name` with a conversation (one line each way); its home, id and `init` code. */
  const cliCustomer = (name: string) => made(name, "hello from the terminal", "hello, terminal");

  it("a code the browser saved opens with `sealdesk recover`; a second save retires the first", async () => {
    const { customer: carol } = await onlineCustomer(fx.options(new MemoryStore()));
    await carol.send("order 77 is late");
    const id = carol.conversationId() ?? "";
    const first = await carol.newRecoveryCode();
    const second = await carol.newRecoveryCode();
    expect(second).not.toBe(first);
    carol.stop();

    // The first code no longer opens the record, in the CLI or in a browser.
    const old = join(fx.root, "carol-old");
    await expect(cli(old, fx.relay.url, ["recover", "--name", carol.card.name, "--code", first, "--json"])).rejects.toThrow(/not_recovered/);
    await refused(carol.card.name, first, "wrong_code");
    // The second recovers the same account with the CLI, and its history reads there.
    const home = join(fx.root, "carol-cli");
    const back = JSON.parse(await cli(home, fx.relay.url, ["recover", "--name", carol.card.name, "--code", second, "--json"])) as { fingerprint: string; conversations: number };
    const me = JSON.parse(await cli(home, fx.relay.url, ["whoami", "--json"])) as { fingerprint: string; signing_key?: string };
    expect(back.fingerprint).toBe(me.fingerprint);
    expect(back.conversations).toBe(1);
    expect(await cli(home, fx.relay.url, ["history", "--conversation", id])).toContain("order 77 is late");
  });

  it("a code `sealdesk recovery-code` made recovers the account in a browser store: history read, sending goes on", async () => {
    const dave = await cliCustomer("dave");
    const code = (JSON.parse(await cli(dave.home, fx.relay.url, ["recovery-code", "--json"])) as { recovery_code: string }).recovery_code;
    const store = new MemoryStore();
    const done = await recoverAccount(recoverOptions(store, "dave", code));
    const whoami = JSON.parse(await cli(dave.home, fx.relay.url, ["whoami", "--json"])) as { fingerprint: string };
    expect(done).toEqual({ name: "dave", fingerprint: whoami.fingerprint, conversation: dave.id });

    const { customer } = await onlineCustomer(fx.options(store));
    expect(customer.card.name).toBe("dave");
    await eventually("the history", () => (customer.history().length >= 2 ? true : undefined));
    expect(customer.history().map((l) => [l.mine, l.text])).toEqual([
      [true, "hello from the terminal"],
      [false, "hello, terminal"],
    ]);
    // Never in an epoch the lost device may have used: the first message opens epoch 1, the
    // recovered account's own (its fence), and the agent reads it there.
    expect(Math.max(...customer.history().map((l) => l.epoch))).toBe(0);
    const line = await customer.send("back, from a browser");
    expect([line.epoch, line.counter]).toEqual([1, 0]);
    expect(fromCbor((await store.get(RECOVERY_FENCE_KEY)) ?? new Uint8Array())).toEqual({ fence: 1 });
    expect(await fx.org.agent(["history", "--conversation", dave.id])).toContain("back, from a browser");
    const next = await customer.send("and once more");
    expect([next.epoch, next.counter]).toEqual([1, 1]);
    customer.stop();

    // The init code was replaced by the record's: only the newest code recovers the account.
    await refused("dave", dave.initCode, "code_replaced");
    // Recovering into a store that holds a conversation would overwrite it.
    const err = await recoverAccount(recoverOptions(store, "dave", code)).catch((e: unknown) => e);
    expect((err as RecoveryError).failure).toBe("has_conversation");
  });

  it("a wrong code, an unknown name, a typo, a tampered record and another fingerprint are refused, and nothing is stored", async () => {
    const erin = await cliCustomer("erin");
    const code = (JSON.parse(await cli(erin.home, fx.relay.url, ["recovery-code", "--json"])) as { recovery_code: string }).recovery_code;
    const other = (JSON.parse(await cli(join(fx.root, "dave"), fx.relay.url, ["recovery-code", "--json"])) as { recovery_code: string }).recovery_code;
    await refused("erin", other, "wrong_code");
    await refused("nobody-here", code, "unknown_name");
    // One character changed: the checksum catches it before the relay is asked.
    const typo = `${code.slice(0, 3)}${code[3] === "0" ? "1" : "0"}${code.slice(4)}`;
    await refused("erin", typo, "code_format");
    // The relay flips one byte of the sealed keys, or hands out its own keys under erin's card.
    const flip = tampering((f) => {
      const record = ((f.response as Frame | undefined)?.body as Frame | undefined)?.recovery as Frame | undefined;
      const sealed = record?.sealed;
      if (sealed instanceof Uint8Array) sealed[5] = (sealed[5] ?? 0) ^ 1;
    });
    await refused("erin", code, "tampered", flip);
    const shorten = tampering((f) => {
      const record = ((f.response as Frame | undefined)?.body as Frame | undefined)?.recovery as Frame | undefined;
      if (record?.nonce instanceof Uint8Array) record.nonce = record.nonce.slice(1);
    });
    await refused("erin", code, "tampered", shorten);
    // The page was given another fingerprint for the org: nothing of its conversation is taken.
    const store0 = new MemoryStore();
    const err = await recoverAccount({ ...recoverOptions(store0, "erin", code), masterFingerprint: "00000 00000 00000 00000 00000 00000" }).catch((e: unknown) => e);
    expect((err as RecoveryError).failure).toBe("fingerprint_mismatch");
    expect(await store0.keys("")).toEqual([]);
    // The honest record still opens.
    const store = new MemoryStore();
    expect((await recoverAccount(recoverOptions(store, "erin", code))).conversation).toBe(erin.id);
    expect(await store.keys("identity")).toEqual(["identity"]);
  });

  it("saving needs a session: offline, the customer is told and no code is made", async () => {
    const c = await Customer.load(fx.options(new MemoryStore()));
    await expect(c.newRecoveryCode()).rejects.toMatchObject({ failure: "closed" });
  });
});
