/**
 * The customer keeps checking the conversation's agent (PROTOCOL §13.5 `watch_agent_keys` /
 * `agent_key_changed`, and the periodic re-check the Rust chat does), under Node against the
 * real relay, the org's side run with the CLI: the customer asks for the push on its session; a
 * push whose card the org's certificate does not confirm (delivered as if from the relay)
 * changes nothing and is reported; when the owner re-certifies `alice` for a new key (`org
 * recertify`), the relay's push makes the customer check the certificate and show the key
 * warning at once, and sending is blocked; a re-certification made while the customer was
 * offline shows when its next session opens; one whose push this connection never delivers
 * shows at the next timed check, with the connection never lost; and a certificate that does
 * not verify is reported once as unconfirmed, however many timed checks find it so, while
 * sending goes on.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { IdentityKeys, issueCard } from "@sealdesk/protocol";
import { MemoryStore, type Push } from "../src/index.js";
import { now, onlineCustomer, orgOnRelay, random } from "./customer-fixture.js";
import { eventually } from "./relay.js";
import { requestKind, tampering, variantOf, type Frame } from "./tamper.js";

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
    expect(reported.kind === "agent_key_unconfirmed" && reported.pushed).toBe(true);
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

  it("checks the agent on a timer: a re-certification whose push this connection never delivers shows at the next check", async () => {
    // The relay pushes `agent_key_changed`; this connection loses it (as one that was cut, or
    // never asked, would), and stays up: only the timed check can find the change.
    let dropped = 0;
    const socket = tampering((f) => {
      if (variantOf(f.push) !== "agent_key_changed") return;
      dropped += 1;
      return false;
    });
    const { customer, events } = await onlineCustomer(fx.options(new MemoryStore(), { socket, recheckAgentMs: 200 }));
    await customer.send("hello, is anyone on?");
    expect(customer.blockedBecause()).toBeNull();

    const fp = await recertifyAlice("alice-timer");
    const changed = await eventually("the key warning", () => events.find((e) => e.kind === "key_changed"));
    expect(changed.kind === "key_changed" && changed.detail).toContain(fp);
    expect(customer.blockedBecause()).toContain("alice");
    await expect(customer.send("are you still alice?")).rejects.toThrow(/key_changed/);
    // The push was sent and lost, and the connection was never lost (no session reopened to check).
    await eventually("the push dropped", () => (dropped > 0 ? dropped : undefined));
    expect(events.filter((e) => e.kind === "state" && e.state === "online")).toHaveLength(1);
    expect(events.filter((e) => e.kind === "key_changed")).toHaveLength(1);
    expect(events.some((e) => e.kind === "agent_key_unconfirmed")).toBe(false);
    customer.stop();
  });

  it("reports a certificate that does not verify once, however many timed checks find it so, and sending goes on", async () => {
    // The relay's answer to `get_certificate` altered on its way (the signature's first byte):
    // the certificate in `opened` is untouched, so the conversation opens as always.
    let altered = 0;
    let asked = 0;
    const socket = tampering(
      (f) => {
        const cert = ((f.response as Frame | undefined)?.body as Frame | undefined)?.certificate as Frame | undefined;
        if (cert === undefined || !(cert.signature instanceof Uint8Array)) return;
        const sig = cert.signature.slice();
        sig[0] = (sig[0] ?? 0) ^ 1;
        cert.signature = sig;
        altered += 1;
      },
      (f) => {
        if (requestKind(f) === "get_certificate") asked += 1;
      },
    );
    const { customer, events } = await onlineCustomer(fx.options(new MemoryStore(), { socket, recheckAgentMs: 100 }));
    await customer.send("hello, who is this?");

    const reported = await eventually("the check reported", () => events.find((e) => e.kind === "agent_key_unconfirmed"));
    expect(reported.kind === "agent_key_unconfirmed" && reported.agent).toBe("alice");
    expect(reported.kind === "agent_key_unconfirmed" && reported.reason).toMatch(/signature/i);
    expect(reported.kind === "agent_key_unconfirmed" && reported.pushed).toBe(false);
    // Three more timed checks, each answered with the altered certificate: none told again.
    const after = asked;
    await eventually("three more checks", () => (asked >= after + 3 && altered >= after + 3 ? asked : undefined));
    await customer.send("still here?");
    expect(events.filter((e) => e.kind === "agent_key_unconfirmed")).toHaveLength(1);
    expect(events.some((e) => e.kind === "key_changed")).toBe(false);
    expect(events.some((e) => e.kind === "error")).toBe(false);
    expect(customer.blockedBecause()).toBeNull();
    customer.stop();
  });
});
