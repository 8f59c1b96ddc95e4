/**
 * Test support shared by the Node customer suites: the relay binary on 127.0.0.1:0 with the CLI's
 * org `acme` made on it (started before the suite's tests, stopped after), randomness and clock,
 * a plain WebSocket, a customer's options, a customer started and waited for online, and the
 * relay's directory read (`cardOnRelay`).
 */
import { randomBytes } from "node:crypto";
import { IdentityKeys, issueCard, toHex } from "@sealdesk/protocol";
import { afterAll, beforeAll } from "vitest";
import { Customer, Session, type CustomerEvent, type CustomerOptions, type SocketFactory, type Store } from "../src/index.js";
import { createOrg, eventually, startRelay, tempDir, type CliOrg, type RelayProcess } from "./relay.js";

/** Randomness from Node's CSPRNG. */
export const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n));
/** Seconds since the epoch. */
export const now = (): number => Math.floor(Date.now() / 1000);
/** An honest WebSocket. */
export const socket: SocketFactory = (url) => new WebSocket(url) as unknown as ReturnType<SocketFactory>;

/** The relay and org of a suite (read them inside tests: they are set before the first runs). */
export interface OrgOnRelay {
  /** The temporary directory everything lives in. */
  root: string;
  /** The relay (replace it when a test restarts it). */
  relay: RelayProcess;
  org: CliOrg;
  /** A customer's options on this relay and org, with `store` (and anything in `extra`). */
  options(store: Store, extra?: Partial<CustomerOptions>): CustomerOptions;
}

/**
 * Registers hooks that start a relay (with `relayArgs`) and make the org on it (with
 * `createArgs` added to `org create`) before the suite's tests, and stop and remove everything
 * after them (`cleanUp` runs first).
 */
export function orgOnRelay(prefix: string, relayArgs: string[] = [], cleanUp?: () => Promise<void> | void, createArgs: string[] = []): OrgOnRelay {
  const dir = tempDir(prefix);
  const fx = {
    root: dir.path,
    relay: undefined as unknown as RelayProcess,
    org: undefined as unknown as CliOrg,
    options(store: Store, extra: Partial<CustomerOptions> = {}): CustomerOptions {
      return { url: fx.relay.url, org: fx.org.org, masterFingerprint: fx.org.fingerprint, store, socket, random, now, ...extra };
    },
  };
  beforeAll(async () => {
    fx.relay = await startRelay(`${dir.path}/relay-data`, relayArgs);
    fx.org = await createOrg(dir.path, fx.relay.url, createArgs);
  });
  afterAll(async () => {
    await cleanUp?.();
    await fx.relay?.stop();
    dir.remove();
  });
  return fx;
}

/**
 * `run`'s relay and org as an `OrgOnRelay` (a Chromium suite's, set up by its own hooks): its
 * fields are read when used, so it may be made before the suite's set-up has run.
 */
export function orgOf(run: { root: string; relay: RelayProcess; org: CliOrg }): OrgOnRelay {
  return {
    get root() {
      return run.root;
    },
    get relay() {
      return run.relay;
    },
    set relay(r: RelayProcess) {
      run.relay = r;
    },
    get org() {
      return run.org;
    },
    options(store: Store, extra: Partial<CustomerOptions> = {}): CustomerOptions {
      return { url: run.relay.url, org: run.org.org, masterFingerprint: run.org.fingerprint, store, socket, random, now, ...extra };
    },
  };
}

/** A customer loaded with `opts`, its events collected, started and online. */
export async function onlineCustomer(opts: CustomerOptions): Promise<{ customer: Customer; events: CustomerEvent[] }> {
  const customer = await Customer.load(opts);
  const events: CustomerEvent[] = [];
  customer.on((e) => events.push(e));
  customer.start();
  await eventually("online", () => events.find((e) => e.kind === "state" && e.state === "online"));
  return { customer, events };
}

/**
 * The signing key (hex) of the card the relay at `url` holds under account name `name`, or null
 * when it holds none (`not_found`): the relay's directory read with `get_card` by a registered
 * account of the test's own, made for the question.
 */
export async function cardOnRelay(url: string, name: string): Promise<string | null> {
  const keys = IdentityKeys.generate(random);
  const s = await Session.connect(url, keys, issueCard(keys, `lookup-${toHex(random(6))}`, "customer", now()), socket, null);
  try {
    await s.register();
    const r = await s.request({ kind: "get_card", name });
    if (r.kind === "card" && r.card.name === name) return toHex(r.card.signingKey);
    if (r.kind === "error" && r.code === "not_found") return null;
    throw new Error(`get_card ${name} answered ${r.kind}`);
  } finally {
    s.close();
  }
}
