/**
 * What the recovery tests share over an org on the relay (`orgOnRelay`): the options of a
 * recovery into a store, a recovery refused with its failure and nothing stored, a CLI
 * customer with a conversation and the code its `init` showed, a send from the same account
 * recovered into another browser, and the send lock of the tabs of one browser.
 */
import { join } from "node:path";
import { expect } from "vitest";
import { MemoryStore, RecoveryError, recoverAccount, type RecoverOptions, type SocketFactory } from "../src/index.js";
import { onlineCustomer, random, now, socket, type OrgOnRelay } from "./customer-fixture.js";
import { cli, eventually } from "./relay.js";

/** A CLI customer: its home, its conversation's id and its `init` code. */
export interface CliCustomer {
  home: string;
  id: string;
  initCode: string;
}

/**
 * A send lock for one store, as the tabs of one browser share a Web Lock: callers run one at a
 * time, in the order they asked.
 */
export function sendLock(): <T>(f: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(f: () => Promise<T>): Promise<T> => {
    const run = tail.then(f);
    tail = run.catch(() => undefined);
    return run;
  };
}

/** The recovery helpers over `fx`. */
export function recoveryKit(fx: OrgOnRelay) {
  const recoverOptions = (store: MemoryStore, name: string, code: string, sock: SocketFactory = socket): RecoverOptions => ({
    url: fx.relay.url,
    socket: sock,
    store,
    org: fx.org.org,
    masterFingerprint: fx.org.fingerprint,
    random,
    now,
    name,
    code,
  });

  /** Recovering with `code` as `name` is refused with `failure`, and the store stays empty. */
  async function refused(name: string, code: string, failure: string, sock?: SocketFactory): Promise<void> {
    const store = new MemoryStore();
    const err = await recoverAccount(recoverOptions(store, name, code, sock)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RecoveryError);
    expect((err as RecoveryError).failure).toBe(failure);
    expect(await store.keys("")).toEqual([]);
  }

  /** A CLI customer `name` (made by `init`, its code captured) with a conversation: `said` by it, then `answer` by the agent. */
  async function cliCustomer(name: string, said: string, answer: string): Promise<CliCustomer> {
    const home = join(fx.root, name);
    const made = JSON.parse(await cli(home, fx.relay.url, ["init", "--name", name, "--role", "customer", "--json"])) as { recovery_code: string };
    await cli(home, fx.relay.url, ["register"]);
    await cli(home, fx.relay.url, ["open", "--org", fx.org.org, "--org-fingerprint", fx.org.fingerprint]);
    const id = (JSON.parse(await cli(home, fx.relay.url, ["conversations", "--json"])) as { conversations: { conversation: string }[] }).conversations[0]?.conversation ?? "";
    await cli(home, fx.relay.url, ["send", "--conversation", id, said]);
    await fx.org.agent(["send", "--conversation", id, answer]);
    return { home, id, initCode: made.recovery_code };
  }

  /**
   * The account `name` recovered with `code` into another browser (a store of its own), online
   * and read up to the line `upTo`, sends `text`: the line it sent (its epoch and counter). A
   * recovered account sends in an epoch of its own, so this opens the next epoch.
   */
  async function sentElsewhere(name: string, code: string, upTo: string, text: string): Promise<{ epoch: number; counter: number }> {
    const store = new MemoryStore();
    await recoverAccount(recoverOptions(store, name, code));
    const { customer: other } = await onlineCustomer(fx.options(store));
    try {
      await eventually(`the history up to ${upTo}`, () => (other.history().some((l) => l.text === upTo) ? true : undefined));
      const line = await other.send(text);
      return { epoch: line.epoch, counter: line.counter };
    } finally {
      other.stop();
    }
  }

  return { recoverOptions, refused, cliCustomer, sentElsewhere };
}
