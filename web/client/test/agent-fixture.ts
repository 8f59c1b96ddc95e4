/**
 * Test support shared by the Node agent suites: the files the console's import reads from a CLI
 * home, and a TypeScript agent made from a CLI agent's vault, started and waited for online.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Agent, MemoryStore, importCliVault, type AgentEvent, type AgentOptions, type SocketFactory, type Store, type VaultFiles } from "../src/index.js";
import { now, random, socket as honest, type OrgOnRelay } from "./customer-fixture.js";
import { cli, eventually } from "./relay.js";

/** The files the console's import reads, from a CLI home. */
export function vaultFiles(home: string): VaultFiles {
  return {
    header: readFileSync(join(home, "vault.json"), "utf8"),
    identity: new Uint8Array(readFileSync(join(home, "records", "identity.rec"))),
    profile: new Uint8Array(readFileSync(join(home, "records", "profile.rec"))),
  };
}

/**
 * The CLI agent at `home` as a TypeScript agent on `url` (through `socket`), its events
 * collected, started and online; in `store` (a store that holds the account already: a reload,
 * or another tab's), with `withSendLock` when given (the console's Web Lock, shared by its tabs)
 * and any other options in `extra`.
 */
export async function onlineAgent(home: string, url: string, socket: SocketFactory = honest, store: Store = new MemoryStore(), withSendLock?: AgentOptions["withSendLock"], extra: Partial<AgentOptions> = {}): Promise<{ agent: Agent; events: AgentEvent[] }> {
  if (!(await Agent.has(store))) {
    const { keys, card } = await importCliVault(vaultFiles(home), "web tests only");
    await Agent.keep(store, keys, card);
  }
  const agent = await Agent.load({ url, store, socket, random, now, ...extra, ...(withSendLock === undefined ? {} : { withSendLock }) });
  const events: AgentEvent[] = [];
  agent.on((e) => events.push(e));
  agent.start();
  await eventually("the agent online", () => events.find((e) => e.kind === "state" && e.state === "online"));
  return { agent, events };
}

/** A CLI agent `name` made in `root`, registered on `url` and added to the org by its owner; its home. */
export async function certifiedAgent(fx: OrgOnRelay, name: string): Promise<string> {
  const home = join(fx.root, name);
  await cli(home, fx.relay.url, ["init", "--name", name, "--role", "agent"]);
  await cli(home, fx.relay.url, ["register"]);
  const fp = (JSON.parse(await cli(home, fx.relay.url, ["whoami", "--json"])) as { fingerprint: string }).fingerprint;
  await fx.org.as("owner", ["org", "add-agent", name, "--fingerprint", fp]);
  return home;
}
