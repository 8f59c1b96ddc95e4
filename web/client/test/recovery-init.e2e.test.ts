/**
 * The code `sealdesk init` showed recovers the account in a browser store too (issue 22),
 * against the real relay and `sealdesk` binaries: the keys are derived from the code, the card
 * rebuilt from the name and the code's creation time, and the relay must hold exactly that card
 * for the name. The history reads and sending goes on in a new epoch; a typo, another account's
 * code, an unknown name, a replaced code and a relay that shows another card are each refused
 * with their own failure, and nothing is stored.
 */
import { join } from "node:path";
import { fromCbor } from "@sealdesk/protocol";
import { describe, expect, it } from "vitest";
import { MemoryStore, RECOVERY_FENCE_KEY, recoverAccount } from "../src/index.js";
import { onlineCustomer, orgOnRelay } from "./customer-fixture.js";
import { cli, eventually } from "./relay.js";
import { recoveryKit } from "./recovery-fixture.js";
import { tampering, type Frame } from "./tamper.js";

describe("an init code recovers in the browser", () => {
  const fx = orgOnRelay("web-recovery-init");

  const { recoverOptions, refused, cliCustomer: made } = recoveryKit(fx);
  /** A CLI customer `name` with a conversation (one line each way); its home, id and `init` code. */
  const cliCustomer = (name: string) => made(name, "my parcel never came", "sorry, looking into it");

  it("a CLI customer's init code brings the account, its conversation and history into a fresh browser store; sending goes on", async () => {
    const frank = await cliCustomer("frank");
    const store = new MemoryStore();
    const done = await recoverAccount(recoverOptions(store, "frank", frank.initCode));
    const whoami = JSON.parse(await cli(frank.home, fx.relay.url, ["whoami", "--json"])) as { fingerprint: string };
    // The same keys, so the same fingerprint: the agent sees no key change.
    expect(done).toEqual({ name: "frank", fingerprint: whoami.fingerprint, conversation: frank.id });

    const { customer } = await onlineCustomer(fx.options(store));
    expect(customer.card.name).toBe("frank");
    await eventually("the history", () => (customer.history().length >= 2 ? true : undefined));
    expect(customer.history().map((l) => [l.mine, l.text])).toEqual([
      [true, "my parcel never came"],
      [false, "sorry, looking into it"],
    ]);
    // Never in an epoch the CLI may have used: the first message opens the account's own epoch.
    const line = await customer.send("writing from a browser now");
    expect([line.epoch, line.counter]).toEqual([1, 0]);
    expect(fromCbor((await store.get(RECOVERY_FENCE_KEY)) ?? new Uint8Array())).toEqual({ fence: 1 });
    expect(await fx.org.agent(["history", "--conversation", frank.id])).toContain("writing from a browser now");
    // And the CLI, holding the same account, reads it too.
    expect(await cli(frank.home, fx.relay.url, ["history", "--conversation", frank.id])).toContain("writing from a browser now");
    customer.stop();
  });

  it("a typo, another account's code, an unknown name and a relay showing another card are refused; nothing is stored", async () => {
    const gina = await cliCustomer("gina");
    const hugo = await cliCustomer("hugo");
    // One character changed: the checksum catches it before the relay is asked.
    const c = gina.initCode;
    const typo = `${c.slice(0, 3)}${c[3] === "0" ? "1" : "0"}${c.slice(4)}`;
    await refused("gina", typo, "code_format");
    // A valid code, of another account: its keys are not gina's.
    await refused("gina", hugo.initCode, "no_account");
    // A name the relay does not know.
    await refused("nobody-here", gina.initCode, "no_account");
    // Not a name at all.
    await refused("Not A Name!", gina.initCode, "no_account");
    // A relay that says the key is registered but shows another card for the name.
    const otherCard = tampering((f) => {
      const card = ((f.response as Frame | undefined)?.body as Frame | undefined)?.card as Frame | undefined;
      if (card !== undefined && typeof card.created_at === "number") card.created_at += 1;
    });
    await refused("gina", gina.initCode, "card_mismatch", otherCard);
    // The honest relay still recovers gina.
    const store = new MemoryStore();
    expect((await recoverAccount(recoverOptions(store, "gina", gina.initCode))).conversation).toBe(gina.id);
  });

  it("an init code replaced by `sealdesk recovery-code` is refused; the newer code recovers", async () => {
    const ivan = await cliCustomer("ivan");
    const code = (JSON.parse(await cli(ivan.home, fx.relay.url, ["recovery-code", "--json"])) as { recovery_code: string }).recovery_code;
    await refused("ivan", ivan.initCode, "code_replaced");
    // The CLI refuses it the same way.
    await expect(cli(join(fx.root, "ivan-again"), fx.relay.url, ["recover", "--name", "ivan", "--code", ivan.initCode, "--json"])).rejects.toThrow(/replaced/);
    expect((await recoverAccount(recoverOptions(new MemoryStore(), "ivan", code))).conversation).toBe(ivan.id);
  });
});
