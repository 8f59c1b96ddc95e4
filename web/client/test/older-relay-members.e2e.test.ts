/**
 * The customer and the agent behind a relay too old to know `watch_audit` (PROTOCOL §13.5, the
 * older-relay rule), against the real relay and `sealdesk` binaries: the socket plays that
 * relay, closing the connection with 4102 when the request is sent, and passes everything else
 * on. Each member loses that one connection, is never told that the log grows, and still learns
 * what it would have been told: the customer reads the conversation and the log on its notices
 * timer (a consent granted in the terminal is listed), the agent lists and reads its
 * conversations (the console looks at the log on its own timer, `watchesAudit`).
 */
import { describe, expect, it } from "vitest";
import { CLOSE_BAD_FRAME, MemoryStore, recoverAccount, type SocketFactory } from "../src/index.js";
import { onlineAgent } from "./agent-fixture.js";
import { onlineCustomer, orgOnRelay } from "./customer-fixture.js";
import { cli, eventually } from "./relay.js";
import { recoveryKit } from "./recovery-fixture.js";
import { requestKind, tampering } from "./tamper.js";

/** What the socket saw: connections opened, and how many times each request kind was sent. */
interface Seen {
  connections: number;
  asked: Map<string, number>;
}

/**
 * WebSockets to the real relay, as a relay that does not know the requests `unknown`: sending
 * one closes the connection, and the page is told the relay's 4102, as such a relay closes it.
 */
function olderRelay(unknown: string[], seen: Seen): SocketFactory {
  const refuse = tampering(
    () => true,
    (frame) => {
      const kind = requestKind(frame);
      if (kind !== undefined) seen.asked.set(kind, (seen.asked.get(kind) ?? 0) + 1);
      if (kind === undefined || !unknown.includes(kind)) return true;
      return { code: CLOSE_BAD_FRAME, reason: "malformed frame" };
    },
  );
  return (url) => {
    seen.connections += 1;
    return refuse(url);
  };
}

describe("members behind a relay that does not know watch_audit", () => {
  const fx = orgOnRelay("web-older-relay-members");
  const { recoverOptions, cliCustomer } = recoveryKit(fx);

  it("the customer loses one connection, and lists a consent granted in the terminal from its timer", async () => {
    const pia = await cliCustomer("pia", "can you refund me", "looking into it");
    const store = new MemoryStore();
    await recoverAccount(recoverOptions(store, "pia", pia.initCode));
    const seen: Seen = { connections: 0, asked: new Map() };
    const { customer, events } = await onlineCustomer(fx.options(store, { socket: olderRelay(["watch_audit"], seen), recheckNoticesMs: 250 }));
    await eventually("the history", () => (customer.history().length >= 2 ? true : undefined));
    expect(seen.connections).toBe(2);
    expect(seen.asked.get("watch_audit")).toBe(1);
    expect(seen.asked.get("watch_agent_keys")).toBe(2);
    expect(await customer.consents()).toEqual([]);

    // Granted in the terminal: no `audit_grew` comes (never asked), so the timer reads it.
    const granted = (JSON.parse(await cli(pia.home, fx.relay.url, ["consent", "grant", "--conversation", pia.id, "--purpose", "refund", "--expires", "1d", "--json"])) as { consent: string }).consent;
    await eventually("the consent read on the timer", () => (events.some((e) => e.kind === "consents") ? true : undefined));
    expect(await customer.consents()).toEqual([granted]);
    expect(seen.connections).toBe(2);
    expect(seen.asked.get("watch_audit")).toBe(1);
    customer.stop();
  });

  it("the agent loses one connection, and lists and reads its conversations without the push", async () => {
    const quin = await cliCustomer("quin", "hello agent", "hello quin");
    const seen: Seen = { connections: 0, asked: new Map() };
    const { agent } = await onlineAgent(fx.org.agentHome, fx.relay.url, olderRelay(["watch_audit"], seen));
    expect(seen.connections).toBe(2);
    expect(seen.asked.get("watch_audit")).toBe(1);
    expect(agent.watchesAudit()).toBe(false);
    await eventually("the conversation listed", () => (agent.conversations().some((c) => c.id === quin.id) ? true : undefined));
    await cli(quin.home, fx.relay.url, ["send", "--conversation", quin.id, "are you there"]);
    await eventually("the customer's line pushed", () => (agent.conversation(quin.id)?.lines.some((l) => l.text === "are you there") === true ? true : undefined));
    expect(seen.connections).toBe(2);
    agent.stop();
  });
});
