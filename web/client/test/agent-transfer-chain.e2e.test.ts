/**
 * Conversations transferred more than once, with the console's agent at each end (issue 22,
 * PROTOCOL §7.6 "Chains"), against the real relay: alice (console) → bob (CLI) → alice, where
 * alice, reloaded in between, follows the record she made and kept; alice → bob (console) →
 * dave (console), where bob hands over the epoch he holds by hand-off and dave opens it through
 * the chain; alice → bob with bob's console online (the record held back until the hand-off
 * makes him a reader of epoch 0), and a send of bob's in the moment between the hand-off and
 * that record, which waits for it; a hand-off back to a console that stayed online, read for
 * afresh, and the reads from the start counted (one per burst of hand-offs); the late-join rule:
 * a relay that withholds the chain from erin gets the record bob made held back, never accepted
 * nor used, as the Rust client refuses it; a second, different record for an epoch already held
 * is refused; and a policy without history hand-off: nothing handed over, the record made kept
 * and followed after a reload, and bob, brought in blind (served epoch 0's record, not its
 * messages), answering; a kept record altered in the store refused after a reload, once.
 */
import { describe, expect, it, onTestFinished } from "vitest";
import { customerOf, decodeFrame, encodeFrame, epochToCbor, fromCbor, toCbor, policySignedBytes, policyToCbor, type Policy } from "@sealdesk/protocol";
import { join } from "node:path";
import { MemoryStore, Session, epochFromCbor, importCliVault, type Agent, type SocketFactory } from "../src/index.js";
import { makeEpochRecord } from "../src/epochs.js";
import { certifiedAgent, onlineAgent, vaultFiles } from "./agent-fixture.js";
import { now, onlineCustomer, orgOnRelay, random, socket, type OrgOnRelay } from "./customer-fixture.js";
import { cli, eventually } from "./relay.js";
import { requestKind, tampering, type Frame } from "./tamper.js";
import { page, withholding } from "./withhold.js";

/** Whether a sequenced item (CBOR) is a hand-off or the record of epoch 0 or 1. */
function chainItem(it: Frame): boolean {
  const item = it.item as Frame | undefined;
  if (item?.hand_off !== undefined) return true;
  const n = (item?.epoch as Frame | undefined)?.epoch;
  return typeof n === "number" && n < 2;
}

/** The `after` of a `history` request frame, or undefined for any other frame. */
function historyAfter(f: Frame): number | undefined {
  const history = ((f.request as Frame | undefined)?.body as Frame | undefined)?.history as Frame | undefined;
  return typeof history?.after === "number" ? history.after : undefined;
}

/** The texts of `agent`'s lines in `id`. */
const texts = (agent: Agent, id: string): string[] => agent.conversation(id)?.lines.map((l) => l.text) ?? [];
/** `agent`'s refusals in `id`. */
const refused = (agent: Agent, id: string): string[] => texts(agent, id).filter((t) => t.startsWith("refused"));

/** `agent` shows every one of `want` in `id`, after a sync. */
async function shows(agent: Agent, id: string, want: string[]): Promise<void> {
  await eventually(`${want.join(", ")} shown`, async () => {
    await agent.sync(id);
    return want.every((t) => texts(agent, id).includes(t)) ? true : undefined;
  });
}

/**
 * Publishes, as the org's owner (its master, from the CLI home `owner`), the next version of the
 * org's policy changed by `change`, and returns it. The TypeScript client has no
 * `publish_policy` request (the CLI's `org create` publishes policies, `--no-history-handoff`
 * without hand-off, but names every party again): the owner's session reads the latest policy,
 * then sends a `get_policy` its socket rewrites into one, changing only what the test needs.
 */
async function publishPolicy(fx: OrgOnRelay, change: Partial<Policy>): Promise<Policy> {
  const { keys, card } = await importCliVault(vaultFiles(join(fx.root, "owner")), "web tests only");
  let next: Policy | null = null;
  const publishing: SocketFactory = (url) => {
    const ws = socket(url);
    const send = ws.send.bind(ws);
    ws.send = (d) => {
      const f = decodeFrame(d) as Frame;
      const request = f.request as Frame | undefined;
      if (next === null || request === undefined || (request.body as Frame | undefined)?.get_policy === undefined) return send(d);
      request.body = { publish_policy: policyToCbor(next) };
      send(encodeFrame(f));
    };
    return ws;
  };
  const s = await Session.connect(fx.relay.url, keys, card, publishing, null);
  try {
    const latest = await s.call({ kind: "get_policy", org: fx.org.org, version: null });
    if (latest.kind !== "policy") throw new Error(`get_policy answered ${latest.kind}`);
    const { signature: _old, ...rest } = latest.policy;
    const unsigned = { ...rest, version: latest.policy.version + 1, createdAt: now(), ...change };
    next = { ...unsigned, signature: keys.sign(policySignedBytes(unsigned)) };
    const r = await s.request({ kind: "get_policy", org: fx.org.org, version: null });
    if (r.kind !== "ok") throw new Error(`publish_policy answered ${JSON.stringify(r)}`);
    return next;
  } finally {
    s.close();
  }
}

/**
 * A store that holds every look-up of a pinned name (`pin/name/…`) while `hold` says so, until
 * `release` is called: the handling of an item that pins its members stops there, a moment
 * the test can act in.
 */
function holdingStore(hold: () => boolean): { store: MemoryStore; release: () => void; holding: () => boolean } {
  const store = new MemoryStore();
  const get = store.get.bind(store);
  let open: () => void = () => undefined;
  const gate = new Promise<void>((r) => (open = r));
  let held = false;
  store.get = async (key: string) => {
    if (key.startsWith("pin/name/") && hold()) {
      held = true;
      await gate;
    }
    return get(key);
  };
  return { store, release: () => open(), holding: () => held };
}

describe("the console's agent in a conversation transferred more than once", () => {
  const fx = orgOnRelay("web-transfer-chain");

  it("alice → bob (CLI) → alice: alice, reloaded, follows the record she kept, reads bob's line and answers", async () => {
    const store = new MemoryStore();
    const { agent: alice } = await onlineAgent(fx.org.agentHome, fx.relay.url, undefined, store);
    const { customer: carol } = await onlineCustomer(fx.options(new MemoryStore()));
    await carol.send("my order 1234 never came");
    const id = carol.conversationId() ?? "";
    await eventually("carol's line at alice", () => alice.conversation(id)?.lines.find((l) => l.text === "my order 1234 never came"));
    const bobHome = await certifiedAgent(fx, "bob");
    await alice.transfer(id, "bob");
    alice.stop();
    // A reload reads the conversation from the start: the relay does not serve alice the record
    // she made (epoch 1), so the record bob makes next follows the one she kept.
    const { agent: again } = await onlineAgent(fx.org.agentHome, fx.relay.url, undefined, store);
    await shows(again, id, ["my order 1234 never came"]);
    await cli(bobHome, fx.relay.url, ["send", "--conversation", id, "bob here"]);
    await cli(bobHome, fx.relay.url, ["transfer", "--conversation", id, "--to", "alice"]);
    await shows(again, id, ["my order 1234 never came", "bob here", "transferred from bob to alice"]);
    expect(again.conversation(id)?.transferredOut).toBe(false);
    await again.send(id, "alice again");
    await eventually("alice's answer at carol", () => carol.history().find((l) => l.text === "alice again"));
    expect(refused(again, id)).toEqual([]);
    // bob, transferred out, can no longer send.
    await expect(cli(bobHome, fx.relay.url, ["send", "--conversation", id, "late"])).rejects.toThrow();
    again.stop();
    carol.stop();
  });

  it("alice → bob (console) → dave (console): dave opens epoch 0 through the chain and answers", async () => {
    const { agent: alice } = await onlineAgent(fx.org.agentHome, fx.relay.url);
    const { customer: carol } = await onlineCustomer(fx.options(new MemoryStore()));
    await carol.send("where is my refund?");
    const id = carol.conversationId() ?? "";
    await eventually("carol's line at alice", () => alice.conversation(id)?.lines.find((l) => l.text === "where is my refund?"));
    const bobHome = await certifiedAgent(fx, "bob2");
    const daveHome = await certifiedAgent(fx, "dave");
    await alice.transfer(id, "bob2");
    alice.stop();
    const { agent: bob } = await onlineAgent(bobHome, fx.relay.url);
    await shows(bob, id, ["where is my refund?"]);
    await bob.send(id, "bob here");
    await bob.transfer(id, "dave");
    bob.stop();
    // dave reads the conversation from its start once to sync it, and once more for bob's two
    // hand-offs (epoch 1, then epoch 0 he holds by alice's): the second reuses the read the first
    // made, which served it.
    let fromStart = 0;
    const counting = tampering(
      () => true,
      (f) => {
        if (historyAfter(f) === 0) fromStart += 1;
      },
    );
    const { agent: dave } = await onlineAgent(daveHome, fx.relay.url, counting);
    await shows(dave, id, ["where is my refund?", "bob here"]);
    expect(refused(dave, id)).toEqual([]);
    expect(fromStart).toBe(2);
    await dave.send(id, "dave here");
    await eventually("dave's answer at carol", () => carol.history().find((l) => l.text === "dave here"));
    // A CLI agent on the same hop reads the hand-offs the console made the same way.
    const cliDave = await cli(daveHome, fx.relay.url, ["history", "--conversation", id]);
    for (const said of ["where is my refund?", "bob here", "dave here"]) expect(cliDave).toContain(said);
    expect(cliDave).not.toMatch(/refused/i);
    dave.stop();
    carol.stop();
  });

  it("does not accept a record whose previous one is missing when the customer did not make it (a relay that withholds the chain)", async () => {
    const { agent: alice } = await onlineAgent(fx.org.agentHome, fx.relay.url);
    const { customer: carol } = await onlineCustomer(fx.options(new MemoryStore()));
    await carol.send("is anyone there?");
    const id = carol.conversationId() ?? "";
    await eventually("carol's line at alice", () => alice.conversation(id)?.lines.find((l) => l.text === "is anyone there?"));
    const bobHome = await certifiedAgent(fx, "bob3");
    const erinHome = await certifiedAgent(fx, "erin");
    await alice.transfer(id, "bob3");
    alice.stop();
    await cli(bobHome, fx.relay.url, ["send", "--conversation", id, "bob here"]);
    await cli(bobHome, fx.relay.url, ["transfer", "--conversation", id, "--to", "erin"]);
    await carol.send("thanks");
    // erin is served no record before the one bob made (epoch 2) and no hand-off: her view
    // would start at a record no customer made.
    const { agent: erin } = await onlineAgent(erinHome, fx.relay.url, withholding((_seq, _nth, it) => chainItem(it)));
    await eventually("the record held back", async () => {
      await erin.sync(id);
      return texts(erin, id).find((t) => t.startsWith("held back") && t.includes("previous epoch 1 is missing"));
    });
    // Held back is never used: not accepted (no epoch at all), so nothing in it is read (carol's
    // "thanks" is in epoch 2), and nothing sealed in it (the relay would store a message of
    // erin's in epoch 2, of which she is a member there: carol would read it).
    await erin.sync(id);
    expect(erin.epochRecords(id)).toEqual([]);
    expect(texts(erin, id)).not.toContain("thanks");
    await expect(erin.send(id, "erin here")).rejects.toThrow(/no_epoch/);
    await expect(erin.setStatus(id, "resolved")).rejects.toThrow(/no_epoch/);
    await erin.signal(id, "typing");
    await carol.send("still waiting");
    await eventually("carol's own line back", () => carol.history().find((l) => l.text === "still waiting"));
    expect(carol.history().filter((l) => l.sender === "erin").map((l) => l.text)).toEqual([]);
    erin.stop();
    carol.stop();
  });

  it("refuses a second, different record for an epoch it holds (a relay that serves one in place of a hand-off)", async () => {
    const { agent: alice, events } = await onlineAgent(fx.org.agentHome, fx.relay.url);
    const { customer: carol } = await onlineCustomer(fx.options(new MemoryStore()));
    await carol.send("hello?");
    const id = carol.conversationId() ?? "";
    await eventually("carol's line at alice", () => alice.conversation(id)?.lines.find((l) => l.text === "hello?"));
    const frankHome = await certifiedAgent(fx, "frank");
    await alice.transfer(id, "frank");
    const [e0, e1] = alice.epochRecords(id).map(epochFromCbor);
    const policy = events.flatMap((e) => (e.kind === "policy" ? [e.policy] : [])).at(-1);
    if (e0 === undefined || e1 === undefined || policy === undefined) throw new Error("alice holds epochs 0 and 1 and the policy");
    alice.stop();
    // A second epoch 1, validly signed by alice (a member of epoch 0) with the same members.
    const { keys } = await importCliVault(vaultFiles(fx.org.agentHome), "web tests only");
    const forged = await makeEpochRecord(keys, random, { policy, conversation: e1.conversation, previous: e0, members: e1.members, customer: customerOf(e1).signingKey, k: random(32), createdAt: e1.createdAt + 1 });
    const swap = tampering((f) => {
      const items = page(f);
      for (const it of (items?.items as Frame[] | undefined) ?? []) {
        if ((it.item as Frame | undefined)?.hand_off !== undefined) it.item = { epoch: epochToCbor(forged) };
      }
      return true;
    });
    const { agent: frank } = await onlineAgent(frankHome, fx.relay.url, swap);
    await eventually("the second record refused", async () => {
      await frank.sync(id);
      return refused(frank, id).find((t) => t.includes("a second record for epoch 1"));
    });
    frank.stop();
    carol.stop();
  });

  it("alice → bob while bob's console is online: bob follows the new record once the hand-off makes him a reader, and answers", async () => {
    const { agent: alice } = await onlineAgent(fx.org.agentHome, fx.relay.url);
    const { customer: carol } = await onlineCustomer(fx.options(new MemoryStore()));
    await carol.send("anyone online?");
    const id = carol.conversationId() ?? "";
    await eventually("carol's line at alice", () => alice.conversation(id)?.lines.find((l) => l.text === "anyone online?"));
    const bobHome = await certifiedAgent(fx, "bob4");
    const { agent: bob } = await onlineAgent(bobHome, fx.relay.url);
    await alice.transfer(id, "bob4");
    await eventually("carol's line and the record of epoch 1 at bob, live", () => (["anyone online?", "transferred from alice to bob4"].every((t) => texts(bob, id).includes(t)) ? true : undefined));
    await bob.send(id, "bob online here");
    await eventually("bob's answer at carol", () => carol.history().find((l) => l.text === "bob online here"));
    expect(refused(bob, id)).toEqual([]);
    expect(texts(bob, id).filter((t) => t.startsWith("held back"))).toEqual([]);
    alice.stop();
    bob.stop();
    carol.stop();
  });

  it("a send while bob's console is between the hand-off and the record it opens waits for that record and is sent in his own epoch", async () => {
    const { agent: alice } = await onlineAgent(fx.org.agentHome, fx.relay.url);
    const { customer: carol } = await onlineCustomer(fx.options(new MemoryStore()));
    await carol.send("still there?");
    const id = carol.conversationId() ?? "";
    await eventually("carol's line at alice", () => alice.conversation(id)?.lines.find((l) => l.text === "still there?"));
    const bobHome = await certifiedAgent(fx, "bob5");
    // bob's handling of the hand-off stops once epoch 0 is accepted and before the record of
    // epoch 1 (held back until then) is: the moment a send found no epoch of his and failed.
    let bob: Agent | null = null;
    const gate = holdingStore(() => bob !== null && (bob.conversation(id) === null ? false : bob.epochRecords(id).length === 1));
    ({ agent: bob } = await onlineAgent(bobHome, fx.relay.url, undefined, gate.store));
    const online = bob;
    await alice.transfer(id, "bob5");
    await eventually("bob between the hand-off and the record of epoch 1", () => (gate.holding() ? true : undefined));
    expect(online.epochRecords(id).map((r) => (r as { epoch: number }).epoch)).toEqual([0]);
    const sending = online.send(id, "bob, right after the transfer");
    gate.release();
    const seq = await sending;
    expect(seq).toBeGreaterThan(0);
    await eventually("bob's line at carol", () => carol.history().find((l) => l.text === "bob, right after the transfer"));
    const cliBob = await cli(bobHome, fx.relay.url, ["history", "--conversation", id]);
    for (const said of ["still there?", "bob, right after the transfer"]) expect(cliBob).toContain(said);
    expect(refused(online, id)).toEqual([]);
    alice.stop();
    online.stop();
    carol.stop();
  });

  it("alice → bob (console, online) → erin (CLI) → bob: the hand-offs back are read for afresh, not from the read bob made for alice's", async () => {
    const { agent: alice } = await onlineAgent(fx.org.agentHome, fx.relay.url);
    const { customer: carol } = await onlineCustomer(fx.options(new MemoryStore()));
    await carol.send("first question");
    const id = carol.conversationId() ?? "";
    await eventually("carol's line at alice", () => alice.conversation(id)?.lines.find((l) => l.text === "first question"));
    const bobHome = await certifiedAgent(fx, "bob6");
    const erinHome = await certifiedAgent(fx, "erin6");
    const { agent: bob } = await onlineAgent(bobHome, fx.relay.url);
    await alice.transfer(id, "bob6");
    alice.stop();
    // bob reads the conversation from its start for alice's hand-off (and keeps that read).
    await eventually("carol's line and the record of epoch 1 at bob, live", () => (["first question", "transferred from alice to bob6"].every((t) => texts(bob, id).includes(t)) ? true : undefined));
    await bob.transfer(id, "erin6");
    await cli(erinHome, fx.relay.url, ["send", "--conversation", id, "erin here"]);
    await cli(erinHome, fx.relay.url, ["transfer", "--conversation", id, "--to", "bob6"]);
    // erin's line is in an epoch bob made but is no member of: not served to him until erin's
    // hand-off made him its reader, so only a read made after that hand-off brings it.
    await shows(bob, id, ["first question", "erin here", "transferred from erin6 to bob6"]);
    expect(refused(bob, id)).toEqual([]);
    expect(bob.conversation(id)?.transferredOut).toBe(false);
    await bob.send(id, "bob again");
    await eventually("bob's answer at carol", () => carol.history().find((l) => l.text === "bob again"));
    bob.stop();
    carol.stop();
  });

  it("under a policy without history hand-off: alice hands nothing over and keeps the record she made, and follows it after a reload; bob starts blind and answers", async () => {
    await publishPolicy(fx, { historyHandoff: false });
    // The tests after this one (in this file's org) transfer with hand-off again.
    onTestFinished(async () => {
      await publishPolicy(fx, { historyHandoff: true });
    });
    let handOffs = 0;
    const counting = tampering(
      () => true,
      (f) => {
        if (requestKind(f) === "put_hand_off") handOffs += 1;
      },
    );
    const store = new MemoryStore();
    const { agent: alice } = await onlineAgent(fx.org.agentHome, fx.relay.url, counting, store);
    const { customer: carol } = await onlineCustomer(fx.options(new MemoryStore()));
    await carol.send("no hand-off here");
    const id = carol.conversationId() ?? "";
    await eventually("carol's line at alice", () => alice.conversation(id)?.lines.find((l) => l.text === "no hand-off here"));
    expect(alice.policyOf(fx.org.org)?.historyHandoff).toBe(false);
    const bobHome = await certifiedAgent(fx, "bob7");
    const { agent: bob } = await onlineAgent(bobHome, fx.relay.url);
    expect(await alice.transfer(id, "bob7")).toBe(1);
    // Nothing is handed over (§7.6: only under `history_handoff`).
    expect(handOffs).toBe(0);
    alice.stop();
    // The relay does not serve alice the record she made (she is no member of epoch 1), and no
    // later record brings it in: reloaded, she follows the one she kept, and knows she
    // transferred the conversation.
    const { agent: again } = await onlineAgent(fx.org.agentHome, fx.relay.url, undefined, store);
    await shows(again, id, ["no hand-off here", "transferred from alice to bob7"]);
    expect(again.epochRecords(id).map((r) => (r as { epoch: number }).epoch)).toEqual([0, 1]);
    expect(again.conversation(id)?.transferredOut).toBe(true);
    await expect(again.send(id, "alice, after the transfer")).rejects.toThrow(/transferred/);
    expect(refused(again, id)).toEqual([]);
    // bob is handed nothing: he starts blind. The relay serves him epoch 0's record (never its
    // messages, §13.10), so he checks the chain from carol's epoch 0 and takes the epoch alice
    // opened for him (§7.6): his console sends in it, and carol reads it.
    await bob.send(id, "bob, no history");
    await eventually("bob's line at carol", () => carol.history().find((l) => l.text === "bob, no history" && l.sender === "bob7"));
    // Epoch 0 checked (no member), 1 alice's for him, 2 the one his console sealed in (it seals
    // only in epochs it made, §7.7).
    expect(bob.epochRecords(id).map((r) => (r as { epoch: number }).epoch)).toEqual([0, 1, 2]);
    expect(texts(bob, id)).not.toContain("no hand-off here");
    expect(texts(bob, id).filter((t) => t.startsWith("held back"))).toEqual([]);
    expect(refused(bob, id)).toEqual([]);
    const history = await cli(bobHome, fx.relay.url, ["history", "--conversation", id]);
    expect(history).toContain("bob7: bob, no history");
    expect(history).not.toContain("no hand-off here");
    expect(history).not.toMatch(/REFUSED/);
    again.stop();
    bob.stop();
    carol.stop();
  });

  it("checks the kept record like any other after a reload: one altered in the store is refused, once", async () => {
    const store = new MemoryStore();
    const { agent: alice } = await onlineAgent(fx.org.agentHome, fx.relay.url, undefined, store);
    const { customer: carol } = await onlineCustomer(fx.options(new MemoryStore()));
    await carol.send("kept and checked");
    const id = carol.conversationId() ?? "";
    await eventually("carol's line at alice", () => alice.conversation(id)?.lines.find((l) => l.text === "kept and checked"));
    await certifiedAgent(fx, "bob8");
    await alice.transfer(id, "bob8");
    alice.stop();
    // The record kept with a later time: its signature no longer verifies.
    const key = `conv/${id}/kept/1`;
    const kept = await store.get(key);
    if (kept === undefined) throw new Error("alice kept the record of epoch 1");
    const record = epochFromCbor(fromCbor(kept));
    await store.put(key, toCbor(epochToCbor({ ...record, createdAt: record.createdAt + 1 })));
    const { agent: again } = await onlineAgent(fx.org.agentHome, fx.relay.url, undefined, store);
    await shows(again, id, ["kept and checked"]);
    await again.sync(id);
    expect(refused(again, id)).toHaveLength(1);
    expect(again.epochRecords(id).map((r) => (r as { epoch: number }).epoch)).toEqual([0]);
    expect(texts(again, id)).not.toContain("transferred from alice to bob8");
    again.stop();
    carol.stop();
  });
});
