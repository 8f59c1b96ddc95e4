/**
 * Issue 22's last case: a send the relay takes but whose answer never comes (dropped here), then
 * the next send, against the real relay and `sealdesk` binaries. The send lock is let go when the
 * send times out, with the frame's fate unknown. What must hold: the customer is told that the
 * message may have been stored (not "not sent"); the session that carried it is closed, so the
 * next session's read shows the message if it was stored (the relay never pushes an item to the
 * connection that sent it, §13.11); its counter is never sealed again; and the next send is
 * stored, not refused, under the next counter of the same epoch.
 */
import { describe, expect, it } from "vitest";
import { MemoryStore, SEND_UNANSWERED, SessionError, type AgentEvent, type CustomerEvent } from "../src/index.js";
import { onlineAgent } from "./agent-fixture.js";
import { onlineCustomer, orgOnRelay } from "./customer-fixture.js";
import { eventually, times } from "./relay.js";
import { reusedNonces, wire } from "./restore-wire.js";

/** Long enough for an answered send on a loaded machine; only the dropped answer runs it out. */
const SEND_TIMEOUT_MS = 3_000;

/** How many times `events` said a session came online. */
const onlines = (events: readonly (CustomerEvent | AgentEvent)[]): number => events.filter((e) => e.kind === "state" && e.state === "online").length;

describe("a send whose answer never comes (issue 22)", () => {
  const fx = orgOnRelay("web-send-timeout");

  it("customer: told it may be stored, the message read back on the next session, the next send stored under the next counter", async () => {
    const w = wire();
    const { customer, events } = await onlineCustomer(fx.options(new MemoryStore(), { socket: w.socket, sendTimeoutMs: SEND_TIMEOUT_MS }));
    await customer.send("opening line");
    const dropped = w.dropNextSendAnswer();
    const onlineBefore = onlines(events);
    const failure = await customer.send("unanswered").then(
      () => null,
      (e: unknown) => e,
    );
    expect(dropped.dropped).toBe(true);
    expect(failure).toBeInstanceOf(SessionError);
    expect((failure as SessionError).failure).toBe("timeout");
    expect((failure as SessionError).message).toContain(SEND_UNANSWERED);
    // The relay stored it: the next session reads it back, shown once, as this customer's.
    const back = await eventually("the unanswered message read back", () => customer.history().find((l) => l.text === "unanswered"));
    expect([back.mine, back.epoch, back.counter]).toEqual([true, 0, 1]);
    await eventually("online again", () => (onlines(events) > onlineBefore ? true : undefined));

    const next = await customer.send("after the timeout");
    expect([next.epoch, next.counter]).toEqual([0, 2]);
    expect(customer.history().filter((l) => l.text === "unanswered")).toHaveLength(1);
    expect(reusedNonces(w.sent)).toEqual([]);
    expect(w.reused).toBe(0);
    const agentSaw = await fx.org.agent(["history", "--conversation", customer.conversationId() ?? ""]);
    expect([times(agentSaw, "unanswered"), times(agentSaw, "after the timeout")]).toEqual([1, 1]);
    customer.stop();
  });

  it("agent: the unanswered send is not tried again, its session closed; the next send stored under the next counter", async () => {
    const { customer } = await onlineCustomer(fx.options(new MemoryStore()));
    const hello = await customer.send("hello");
    const id = customer.conversationId() ?? "";
    const w = wire();
    const { agent, events } = await onlineAgent(fx.org.agentHome, fx.relay.url, w.socket, new MemoryStore(), undefined, { sendTimeoutMs: SEND_TIMEOUT_MS });
    await eventually("the conversation at the agent", () => agent.conversation(id)?.lines.find((l) => l.seq === hello.seq));
    await agent.send(id, "first answer");
    const dropped = w.dropNextSendAnswer();
    const onlineBefore = onlines(events);
    const sentBefore = w.sent.length;
    const failure = await agent.send(id, "unanswered answer").then(
      () => null,
      (e: unknown) => e,
    );
    expect(dropped.dropped).toBe(true);
    expect((failure as SessionError).message).toContain(SEND_UNANSWERED);
    expect(w.sent.length).toBe(sentBefore + 1);
    await eventually("the agent online again", () => (onlines(events) > onlineBefore ? true : undefined));
    await agent.send(id, "next answer");
    const seen = await eventually("both answers at the customer", () => {
      const l = customer.history().filter((x) => !x.mine && x.text !== "first answer");
      return l.length === 2 ? l : undefined;
    });
    expect(seen.map((l) => [l.text, l.epoch, l.counter])).toEqual([
      ["unanswered answer", 1, 1],
      ["next answer", 1, 2],
    ]);
    expect(reusedNonces(w.sent)).toEqual([]);
    expect(w.reused).toBe(0);
    agent.stop();
    customer.stop();
  });
});
