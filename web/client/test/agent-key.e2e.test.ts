/**
 * The customer told at once of a re-certified agent (PROTOCOL §13.5 `watch_agent_keys` /
 * `agent_key_changed`), under Node against the real relay, the org's side run with the CLI:
 * the customer asks for the push on its session; a push whose card the org's certificate does
 * not confirm (delivered as if from the relay) changes nothing and is reported; when the owner
 * re-certifies `alice` for a new key (`org recertify`), the relay's push makes the customer
 * check the certificate and show the key warning at once — the TypeScript customer has no
 * periodic check, so only the push can bring it — and sending is blocked; and a re-certification
 * made while the customer was offline shows when its next session opens.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { IdentityKeys, issueCard } from "@sealdesk/protocol";
import { MemoryStore, type Push } from "../src/index.js";
import { now, onlineCustomer, orgOnRelay, random } from "./customer-fixture.js";
import { eventually } from "./relay.js";

describe("a re-certified agent, pushed to the customer", () => {
  const fx = orgOnRelay("web-agent-key");

  /** The owner re-certifies alice for the key of a new home `home`; returns its fingerprint. */
  const recertifyAlice = async (home: string): Promise<string> => {
    await fx.org.as(home, ["init", "--name", "alice", "--role", "agent"]);
    const card = join(fx.root, `${home}-card.json`);
    const whoami = await fx.org.as(home, ["whoami", "--json"]);
    writeFileSync(card, whoami);
    const fp = (JSON.parse(whoami) as { fingerprint: string }).fingerprint;
    await fx.org.as("owner", ["org", "recertify", "--name", "alice", "--card", card, "--fingerprint", fp]);
    return fp;
  };

  it("reports a forged push, then shows the real re-certification at once and blocks sending", async () => {
    const { customer, events } = await onlineCustomer(fx.options(new MemoryStore()));
    await customer.send("hello, is alice there?");

    // A forged push: an "alice" key the org never certified. The certificate still names the
    // pinned key, so nothing changes and the push is reported.
    const forged = issueCard(IdentityKeys.generate(random), "alice", "agent", now());
    const conversation = Uint8Array.from(Buffer.from(customer.conversationId() ?? "", "hex"));
    const push: Push = { kind: "agent_key_changed", org: fx.org.org, agent: "alice", card: forged, conversations: [conversation] };
    (customer as unknown as { onPush(p: Push): void }).onPush(push);
    const reported = await eventually("the forged push reported", () => events.find((e) => e.kind === "agent_key_unconfirmed"));
    expect(reported.kind === "agent_key_unconfirmed" && reported.agent).toBe("alice");
    expect(events.some((e) => e.kind === "key_changed")).toBe(false);
    expect(customer.blockedBecause()).toBeNull();
    await customer.send("still there?");

    // The owner re-certifies alice for a new machine's key.
    const fp = await recertifyAlice("alice-new");

    const changed = await eventually("the key warning", () => events.find((e) => e.kind === "key_changed"));
    expect(changed.kind === "key_changed" && changed.detail).toContain(fp);
    expect(customer.blockedBecause()).toContain("alice");
    await expect(customer.send("are you the new alice?")).rejects.toThrow();
    customer.stop();
  });

  it("checks the agent again when a session opens: a re-certification made while it was offline shows then", async () => {
    const store = new MemoryStore();
    const first = await onlineCustomer(fx.options(store));
    await first.customer.send("hello again");
    first.customer.stop();
    // Re-certified while the customer is offline: no push reaches it.
    const fp = await recertifyAlice("alice-third");
    const { customer, events } = await onlineCustomer(fx.options(store));
    const changed = await eventually("the key warning", () => events.find((e) => e.kind === "key_changed"));
    expect(changed.kind === "key_changed" && changed.detail).toContain(fp);
    expect(events.some((e) => e.kind === "agent_key_unconfirmed")).toBe(false);
    customer.stop();
  });
});
