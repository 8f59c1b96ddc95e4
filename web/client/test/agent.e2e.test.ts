/**
 * The agent side end to end under Node, against the real relay binary: the CLI's agent `alice`
 * is imported from its vault files with its passphrase (a wrong one is refused as such), a
 * TypeScript customer opens a conversation, the TypeScript agent sees it unread, reads it (the
 * customer gets the read receipt), answers and sets the status; the CLI and the TypeScript agent
 * (one identity, two devices) both send, and no (epoch, sender, counter) is sealed twice — each
 * device seals in epochs of its own; then the conversation is transferred to the CLI agent `bob`,
 * who reads the earlier messages (history hand-off) and answers.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toHex } from "@sealdesk/protocol";
import { AGENT_RECORDS, Agent, AgentError, Customer, MemoryStore, Session, VaultImportError, importCliVault, type AgentEvent, type SocketFactory } from "../src/index.js";
import { vaultFiles } from "./agent-fixture.js";
import { bin, cli, createOrg, eventually, startRelay, tempDir, type CliOrg, type RelayProcess } from "./relay.js";

const socket: SocketFactory = (url) => new WebSocket(url) as unknown as ReturnType<SocketFactory>;
const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n));
const now = (): number => Math.floor(Date.now() / 1000);

describe("a TypeScript agent with the same identity as the CLI agent", () => {
  const root = tempDir("agent-e2e");
  let relay: RelayProcess;
  let org: CliOrg;
  /** The relay's log: its refusals (debug level) show whether a counter was ever sealed twice. */
  let relayLog = "";

  beforeAll(async () => {
    process.env.RUST_LOG = "info,sealdesk_server=debug";
    try {
      relay = await startRelay(`${root.path}/relay-data`);
    } finally {
      delete process.env.RUST_LOG;
    }
    relay.child.stdout?.on("data", (d: Buffer) => (relayLog += d.toString()));
    relay.child.stderr?.on("data", (d: Buffer) => (relayLog += d.toString()));
    org = await createOrg(root.path, relay.url);
  });
  afterAll(async () => {
    await relay?.stop();
    root.remove();
  });

  it("imports the CLI's vault only with its passphrase", async () => {
    const files = vaultFiles(org.agentHome);
    await expect(importCliVault(files, "not the passphrase")).rejects.toMatchObject({ failure: "wrong_passphrase" });
    const swapped = { ...files, identity: files.profile };
    await expect(importCliVault(swapped, "web tests only")).rejects.toBeInstanceOf(VaultImportError);
    const { keys, card } = await importCliVault(files, "web tests only");
    expect(card.name).toBe("alice");
    expect(card.role).toBe("agent");
    const whoami = JSON.parse(await org.agent(["whoami", "--json"])) as { signing_key?: string; fingerprint: string };
    if (whoami.signing_key !== undefined) expect(toHex(keys.signingPublic)).toBe(whoami.signing_key);
  });

  it("shows a CLI customer's typing (an ephemeral signal §9.7)", async () => {
    const store = new MemoryStore();
    const { keys, card } = await importCliVault(vaultFiles(org.agentHome), "web tests only");
    await Agent.keep(store, keys, card);
    const agent = await Agent.load({ url: relay.url, store, socket, random, now });
    agent.start();
    const dave = join(root.path, "dave");
    await cli(dave, relay.url, ["init", "--name", "dave", "--role", "customer"]);
    await cli(dave, relay.url, ["register"]);
    await cli(dave, relay.url, ["open", "--org", org.org, "--org-fingerprint", org.fingerprint]);
    const id = (JSON.parse(await cli(dave, relay.url, ["conversations", "--json"])) as { conversations: { conversation: string }[] }).conversations[0]?.conversation ?? "";
    await cli(dave, relay.url, ["send", "--conversation", id, "hello?"]);
    await eventually("the conversation at the agent", () => agent.conversation(id)?.lines.find((l) => l.text === "hello?"));
    expect(agent.conversation(id)?.typing).toBe(false);
    await chatWith(dave, relay.url, id, "/typing\n/quit\n");
    await eventually("the typing indicator", () => (agent.conversation(id)?.typing === true ? true : undefined));
    agent.stop();
  });

  it("blocks all sending when the org master's key is not the one pinned", async () => {
    const { keys, card } = await importCliVault(vaultFiles(org.agentHome), "web tests only");
    const store = new MemoryStore();
    await Agent.keep(store, keys, card);
    // As if this browser had pinned another master for the org (the relay now serves a policy
    // signed by a different key).
    await store.put(AGENT_RECORDS.orgPin(org.org), new Uint8Array(32).fill(7));
    const agent = await Agent.load({ url: relay.url, store, socket, random, now });
    const events: AgentEvent[] = [];
    agent.on((e) => events.push(e));
    agent.start();
    const erin = await Customer.load({ url: relay.url, org: org.org, masterFingerprint: org.fingerprint, store: new MemoryStore(), socket, random, now });
    erin.start();
    await eventually("the customer online", () => (erin.policy !== null ? true : undefined));
    await erin.send("anyone there?");
    const id = erin.conversationId() ?? "";
    const changed = await eventually("the key change", () => events.find((e) => e.kind === "key_changed"));
    expect(changed.kind === "key_changed" && changed.detail).toContain("master key changed");
    expect(agent.blockedBecause()).not.toBeNull();
    await eventually("the conversation listed", () => agent.conversation(id) ?? undefined);
    expect(agent.conversation(id)?.blocked).not.toBeNull();
    expect(agent.conversation(id)?.lines.map((l) => l.text)).not.toContain("anyone there?");
    await expect(agent.send(id, "hello")).rejects.toMatchObject({ failure: "key_changed" });
    agent.stop();
    erin.stop();
  });

  it("follows an epoch the CLI opened when the customer's read receipt in it is the first push", async () => {
    // The CLI's epoch record and message (one account, another device) are pushed here too
    // (§13.11), and so is the customer's read receipt of them, sealed in the CLI's epoch; had
    // those pushes been lost (the relay keeps none for a connection that was away), the receipt's
    // push would make the agent read the history from its cursor before it. Either way it shows
    // the CLI's message and then seals in an epoch of its own after the CLI's.
    const { keys, card } = await importCliVault(vaultFiles(org.agentHome), "web tests only");
    const store = new MemoryStore();
    await Agent.keep(store, keys, card);
    const agent = await Agent.load({ url: relay.url, store, socket, random, now });
    const events: AgentEvent[] = [];
    agent.on((e) => events.push(e));
    agent.start();
    await eventually("online", () => events.find((e) => e.kind === "state" && e.state === "online"));
    const dave = await Customer.load({ url: relay.url, org: org.org, masterFingerprint: org.fingerprint, store: new MemoryStore(), socket, random, now });
    dave.start();
    await eventually("the customer online", () => (dave.policy !== null ? true : undefined));
    await dave.send("where is my parcel?");
    const id = dave.conversationId() ?? "";
    const has = (text: string): true | undefined => (agent.conversation(id)?.lines.some((l) => l.text === text) === true ? true : undefined);
    await eventually("the customer's line at the agent", () => has("where is my parcel?"));
    const answer = await agent.send(id, "checking");
    await eventually("the answer at the customer", () => dave.history().find((l) => l.seq === answer));

    await org.agent(["send", "--conversation", id, "found it: it ships today"]);
    const fromCli = await eventually("the CLI's line at the customer", () => dave.history().find((l) => l.text === "found it: it ships today"));
    const agentEpoch = dave.history().find((l) => l.seq === answer)?.epoch ?? -1;
    expect(fromCli.epoch).toBeGreaterThan(agentEpoch);
    await dave.markRead(fromCli.seq);
    // No sync asked for: the receipt's push alone brings the CLI's epoch and message.
    await eventually("the read receipt at the agent", () => ((agent.conversation(id)?.readByCustomer ?? 0) >= fromCli.seq ? true : undefined));
    await eventually("the CLI's line at the agent", () => has("found it: it ships today"));
    const next = await agent.send(id, "anything else?");
    const line = await eventually("the agent's next line at the customer", () => dave.history().find((l) => l.seq === next));
    expect(line.epoch).toBeGreaterThan(fromCli.epoch);
    agent.stop();
    dave.stop();
  });

  it("works a conversation next to the CLI: receipts, status, both devices send, transfer", async () => {
    const { keys, card } = await importCliVault(vaultFiles(org.agentHome), "web tests only");
    const store = new MemoryStore();
    await Agent.keep(store, keys, card);
    const agent = await Agent.load({ url: relay.url, store, socket, random, now });
    const events: AgentEvent[] = [];
    agent.on((e) => events.push(e));
    agent.start();
    await eventually("online", () => events.find((e) => e.kind === "state" && e.state === "online"));

    const carol = await Customer.load({ url: relay.url, org: org.org, masterFingerprint: org.fingerprint, store: new MemoryStore(), socket, random, now });
    carol.start();
    await eventually("the customer online", () => (carol.policy !== null ? true : undefined));
    const first = await carol.send("my order 1234 never arrived");
    const id = carol.conversationId() ?? "";

    const view = await eventually("the conversation, unread", () => {
      const v = agent.conversation(id);
      return v !== null && v.unread === 1 ? v : undefined;
    });
    expect(view.customer).toBe(carol.card.name);
    expect(view.lines.map((l) => l.text)).toEqual(["my order 1234 never arrived"]);
    await agent.markRead(id);
    expect(agent.conversation(id)?.unread).toBe(0);
    await eventually("the read receipt at the customer", () => (carol.readUpTo() >= first.seq ? true : undefined));

    const answer = await agent.send(id, "sorry about that: a new one ships today");
    await eventually("the answer at the customer", () => carol.history().find((l) => l.seq === answer));
    await eventually("the delivery mark", () => ((agent.conversation(id)?.deliveredToCustomer ?? 0) >= answer ? true : undefined));
    await agent.setStatus(id, "waiting");
    expect(agent.conversation(id)?.status).toBe("waiting");

    // The same identity in the CLI and here, taking turns and at once.
    await org.agent(["send", "--conversation", id, "from the CLI"]);
    await agent.send(id, "from the console");
    await Promise.all([org.agent(["send", "--conversation", id, "CLI again"]), agent.send(id, "console again")]);
    await agent.sync(id);
    const texts = agent.conversation(id)?.lines.map((l) => l.text) ?? [];
    for (const t of ["from the CLI", "from the console", "CLI again", "console again"]) expect(texts).toContain(t);

    // Every message of the conversation, as the relay stored it: no (epoch, sender, counter) twice.
    const raw = await Session.connect(relay.url, carol.keys, carol.card, socket, null);
    const r = await raw.call({ kind: "history", conversation: carol.conversationId() === null ? new Uint8Array(16) : Uint8Array.from(id.match(/../g) ?? [], (h) => parseInt(h, 16)), after: 0, limit: 500 });
    raw.close();
    if (r.kind !== "items") throw new Error(r.kind);
    const seen = new Set<string>();
    const alice = toHex(keys.signingPublic);
    const epochsBy = new Map<number, Set<string>>();
    for (const it of r.items) {
      if (it.item.kind !== "message") continue;
      const h = it.item.envelope.header;
      const k = `${h.epoch}/${toHex(h.sender)}/${h.counter}`;
      expect(seen.has(k)).toBe(false);
      seen.add(k);
      if (toHex(h.sender) === alice) {
        const body = it.item.envelope.header.kind;
        if (body === "text") {
          const line = agent.conversation(id)?.lines.find((l) => l.seq === it.seq);
          const device = line?.text.startsWith("from the CLI") === true || line?.text === "CLI again" ? "cli" : "console";
          const set = epochsBy.get(h.epoch) ?? new Set<string>();
          set.add(device);
          epochsBy.set(h.epoch, set);
        }
      }
    }
    // Each epoch holds the text of one device only, and the relay never saw a counter twice
    // (it would have refused the second as counter_reused: the sealing had happened already).
    for (const devices of epochsBy.values()) expect(devices.size).toBe(1);
    expect(relayLog).toContain("message stored");
    expect(relayLog).not.toContain("CounterReused");

    // Transfer to the CLI agent bob, who reads the earlier messages and answers.
    const bobHome = join(root.path, "bob");
    await cli(bobHome, relay.url, ["init", "--name", "bob", "--role", "agent"]);
    await cli(bobHome, relay.url, ["register"]);
    const bobFp = (JSON.parse(await cli(bobHome, relay.url, ["whoami", "--json"])) as { fingerprint: string }).fingerprint;
    await org.as("owner", ["org", "add-agent", "bob", "--fingerprint", bobFp]);
    await agent.transfer(id, "bob");
    expect(agent.conversation(id)?.transferredOut).toBe(true);
    await expect(agent.send(id, "still here?")).rejects.toBeInstanceOf(AgentError);
    const bobView = await cli(bobHome, relay.url, ["history", "--conversation", id]);
    expect(bobView).toContain("my order 1234 never arrived");
    await cli(bobHome, relay.url, ["send", "--conversation", id, "bob here, taking over"]);
    await eventually("bob's answer at the customer", () => carol.history().find((l) => l.text === "bob here, taking over"));
    agent.stop();
    carol.stop();
  });
});

/** Runs `sealdesk chat --conversation ID` with `input` on its standard input, to its end. */
function chatWith(home: string, relay: string, id: string, input: string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = execFile(
      bin("sealdesk"),
      ["--home", home, "chat", "--conversation", id],
      { env: { ...process.env, SEALDESK_RELAY: relay, SEALDESK_PASSPHRASE: "web tests only", SEALDESK_INSECURE_FAST_KDF: "1", NO_COLOR: "1" }, timeout: 60_000 },
      (err, _stdout, stderr) => (err !== null ? reject(new Error(`chat failed: ${err.message}\n${stderr}`)) : resolvePromise()),
    );
    child.stdin?.end(input);
  });
}
