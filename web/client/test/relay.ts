/**
 * Test support: the real relay binary as a child process on 127.0.0.1:0 with a temporary data
 * directory, and the `sealdesk` CLI for the org's side (master, trustee, arbiter, agent). The
 * binaries come from `SEALDESK_BIN_DIR` (default: the workspace's `target/debug`, where
 * `cargo build -p sealdesk-server -p sealdesk-cli --features test-hooks` puts them: the fast test
 * KDF and the relay's test hooks. Not `--features sealdesk-cli/test-hooks`: the CLI's dev-dependency
 * on itself makes cargo read that as a feature of a dependency, and build the CLI without it).
 */
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

/** Where the Rust binaries are. */
export function binDir(): string {
  return process.env.SEALDESK_BIN_DIR ?? resolve(here, "../../../target/debug");
}

/** The path of binary `name`, or a clear error telling how to build it. */
export function bin(name: "sealdesk" | "sealdesk-relay"): string {
  const p = join(binDir(), name);
  if (!existsSync(p)) throw new Error(`${p} not found: run \`cargo build -p sealdesk-server -p sealdesk-cli --features test-hooks\` (or set SEALDESK_BIN_DIR)`);
  return p;
}

/** A fresh temporary directory. */
export function tempDir(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), `sealdesk-${prefix}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** A relay child process. */
export interface RelayProcess {
  /** `127.0.0.1:port`. */
  addr: string;
  /** `ws://127.0.0.1:port/v1/ws`. */
  url: string;
  /** `http://127.0.0.1:port`. */
  origin: string;
  /** The relay's key (hex), as logged. */
  logKey: string;
  child: ChildProcess;
  /** Stops it (SIGTERM) and waits for the exit. */
  stop(): Promise<void>;
}

/**
 * Starts the relay on `listen` (default 127.0.0.1:0) with its data in `data`, and `env` added to
 * its environment (a test hook of a build with `sealdesk-server/test-hooks`, such as
 * `SEALDESK_TEST_EXTENSION_ENTRY`); resolves when it listens.
 */
export function startRelay(data: string, extra: string[] = [], listen = "127.0.0.1:0", env: Record<string, string> = {}): Promise<RelayProcess> {
  const child = spawn(bin("sealdesk-relay"), ["--listen", listen, "--data", data, "--log-format", "json", ...extra], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  return new Promise((resolvePromise, reject) => {
    let logKey = "";
    const timer = setTimeout(() => reject(new Error("the relay did not start within 30 s")), 30_000);
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    child.once("exit", (code) => reject(new Error(`the relay exited with ${code}`)));
    const read = (line: string): void => {
      let j: { fields?: { message?: string; addr?: string; log_key?: string } };
      try {
        j = JSON.parse(line) as typeof j;
      } catch {
        return;
      }
      if (j.fields?.message === "relay state loaded" && j.fields.log_key !== undefined) logKey = j.fields.log_key;
      if (j.fields?.message === "relay listening" && j.fields.addr !== undefined) {
        clearTimeout(timer);
        const addr = j.fields.addr;
        resolvePromise({
          addr,
          url: `ws://${addr}/v1/ws`,
          origin: `http://${addr}`,
          logKey,
          child,
          stop: async () => {
            if (child.exitCode === null) child.kill("SIGTERM");
            await exited;
          },
        });
      }
    };
    if (child.stdout !== null) createInterface({ input: child.stdout }).on("line", read);
    if (child.stderr !== null) createInterface({ input: child.stderr }).on("line", read);
  });
}

/** Runs `sealdesk --home home ARGS` against `relay`; resolves with its standard output. */
export function cli(home: string, relay: string, args: string[]): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    execFile(
      bin("sealdesk"),
      ["--home", home, ...args],
      { env: { ...process.env, SEALDESK_RELAY: relay, SEALDESK_PASSPHRASE: "web tests only", SEALDESK_INSECURE_FAST_KDF: "1", NO_COLOR: "1" }, timeout: 60_000 },
      (err, stdout, stderr) => {
        if (err !== null) reject(new Error(`sealdesk ${args.join(" ")} failed: ${err.message}\n${stderr}`));
        else resolvePromise(stdout);
      },
    );
  });
}

/** An org created with the CLI: master `owner`, trustee `t1`, arbiter `a1`, agent `alice`. */
export interface CliOrg {
  org: string;
  /** The master's printed fingerprint (what the business publishes). */
  fingerprint: string;
  /** The agent's home directory. */
  agentHome: string;
  /** Runs the agent's CLI. */
  agent(args: string[]): Promise<string>;
  /** Runs the CLI of account `name` (owner, t1, a1, alice). */
  as(name: string, args: string[]): Promise<string>;
  /** Starts `sealdesk --home <name> ARGS` in the background (a daemon such as `trustee serve`). */
  background(name: string, args: string[]): ChildProcess;
}

/** Creates the org `acme` under `root` on `relay` with the CLI (`createArgs` added to `org create`, e.g. `--rotate-messages 3`). */
export async function createOrg(root: string, relay: string, createArgs: string[] = []): Promise<CliOrg> {
  const home = (n: string): string => join(root, n);
  const fp = async (n: string): Promise<string> => (JSON.parse(await cli(home(n), relay, ["whoami", "--json"])) as { fingerprint: string }).fingerprint;
  for (const [name, role] of [["owner", "master"], ["t1", "trustee"], ["a1", "arbiter"], ["alice", "agent"]] as const) {
    await cli(home(name), relay, ["init", "--name", name, "--role", role]);
    await cli(home(name), relay, ["register"]);
  }
  await cli(home("owner"), relay, ["org", "create", "--name", "acme", "--trustee", `t1=${await fp("t1")}`, "--trustee-threshold", "1", "--arbiter", `a1=${await fp("a1")}`, "--arbiter-threshold", "1", ...createArgs]);
  await cli(home("owner"), relay, ["org", "add-agent", "alice", "--fingerprint", await fp("alice")]);
  return {
    org: "acme",
    fingerprint: await fp("owner"),
    agentHome: home("alice"),
    agent: (args) => cli(home("alice"), relay, args),
    as: (name, args) => cli(home(name), relay, args),
    background: (name, args) =>
      spawn(bin("sealdesk"), ["--home", home(name), ...args], {
        env: { ...process.env, SEALDESK_RELAY: relay, SEALDESK_PASSPHRASE: "web tests only", SEALDESK_INSECURE_FAST_KDF: "1", NO_COLOR: "1" },
        stdio: "ignore",
      }),
  };
}

/** How many times `text` occurs in `output` (a conversation as the CLI prints it). */
export const times = (output: string, text: string): number => output.split(text).length - 1;

/** Polls `f` every 50 ms until it returns a value other than `undefined` (at most `ms`). */
export async function eventually<T>(what: string, f: () => Promise<T | undefined> | T | undefined, ms = 20_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
