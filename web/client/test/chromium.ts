/**
 * Test support for the Chromium suites (`web/widget/test/*.e2e.test.ts`,
 * `web/console/test/*.e2e.test.ts`): Debian's Chromium through `playwright-core` (headless, no
 * sandbox, nothing fetched in the background, a fresh profile), the real relay serving the built
 * pages (`web/dist`, `--web-root`) on 127.0.0.1:0, the org made with the Rust CLI (`relay.ts`),
 * screenshots under `web/screenshots/` (ignored by git), a page's console errors and uncaught
 * exceptions collected so a test can expect none, the console unlocked from the CLI agent's
 * vault, a CLI customer with a conversation, and a hostile relay between the page and the real
 * one (`relayInTheMiddle`).
 */
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { decodeFrame, encodeFrame, type CborValue } from "@sealdesk/protocol";
import { chromium, type BrowserContext, type Page, type WebSocketRoute } from "playwright-core";
import { afterAll, beforeAll, expect } from "vitest";
import { cardOnRelay } from "./customer-fixture.js";
import { cli, createOrg, startRelay, tempDir, type CliOrg, type RelayProcess } from "./relay.js";
import type { Frame } from "./tamper.js";

export type { Frame } from "./tamper.js";

const here = dirname(fileURLToPath(import.meta.url));

/** The built pages the relay serves (`npm run build` of the widget, then the console). */
export const DIST = resolve(here, "../../dist");
/** Where the suites write their screenshots. */
export const SHOTS = resolve(here, "../../screenshots");

/** A phone-sized page (the widget). */
export const NARROW = { width: 420, height: 640 };
/** A desk-sized page (the console). */
export const WIDE = { width: 1000, height: 680 };

/** How a browser profile is launched. */
export interface LaunchOptions {
  viewport?: { width: number; height: number };
  /** Whether the page may download files (the attachment suites). */
  acceptDownloads?: boolean;
}

/** Chromium (`CHROMIUM_PATH` or `/usr/bin/chromium`) with a fresh profile in `profile`. */
export function launch(profile: string, opts: LaunchOptions = {}): Promise<BrowserContext> {
  return chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
    viewport: opts.viewport ?? NARROW,
    ...(opts.acceptDownloads === true ? { acceptDownloads: true } : {}),
  });
}

/** What a suite runs against. */
export interface ChromiumRun {
  relay: RelayProcess;
  org: CliOrg;
  browser: BrowserContext;
}

/**
 * How a suite's relay starts besides serving `DIST`: its flags (such as `--limit`) as a list, or
 * `{ args, env }` with variables added to its environment (a test hook such as
 * `SEALDESK_TEST_EXTENSION_ENTRY`).
 */
export type RelayStart = string[] | { args?: string[]; env?: Record<string, string> };

/**
 * Starts the relay serving `DIST` with its data in `<root>/relay-data` (and `relayArgs`,
 * `RelayStart`), makes the org with the CLI (`createOrg`), and launches Chromium with its
 * profile in `<root>/profile`.
 */
export async function setUpChromium(root: string, opts: LaunchOptions = {}, relayArgs: RelayStart = []): Promise<ChromiumRun> {
  const start = Array.isArray(relayArgs) ? { args: relayArgs } : relayArgs;
  const relay = await startRelay(join(root, "relay-data"), ["--web-root", DIST, ...(start.args ?? [])], undefined, start.env);
  const org = await createOrg(root, relay.url);
  const browser = await launch(join(root, "profile"), opts);
  mkdirSync(SHOTS, { recursive: true });
  return { relay, org, browser };
}

/** Closes the browser, stops the relay (the one running now) and removes the temporary root. */
export async function tearDownChromium(browser: BrowserContext | undefined, relay: RelayProcess | undefined, root: { remove: () => void }): Promise<void> {
  await browser?.close();
  await relay?.stop();
  root.remove();
}

/** A suite's run (`chromiumSuite`): set before its first test; `relay` may be replaced by a restart. */
export interface ChromiumSuite extends ChromiumRun {
  /** The suite's temporary directory. */
  root: string;
  /** Console errors and uncaught exceptions of the pages watched (`watchPage`). */
  problems: string[];
}

/**
 * Registers the hooks of a Chromium suite: before its tests, `setUpChromium` in a fresh
 * temporary directory named after `prefix` (then `more`, for a suite's own set-up); after them,
 * `tearDownChromium`. Read the fields inside tests.
 */
export function chromiumSuite(prefix: string, opts: LaunchOptions = {}, relayArgs: RelayStart = [], more?: (run: ChromiumSuite) => Promise<void>): ChromiumSuite {
  const dir = tempDir(prefix);
  const run = { root: dir.path, problems: [] as string[] } as ChromiumSuite;
  beforeAll(async () => {
    Object.assign(run, await setUpChromium(dir.path, opts, relayArgs));
    await more?.(run);
  });
  afterAll(() => tearDownChromium(run.browser, run.relay, dir));
  return run;
}

/**
 * Collects `page`'s console errors and uncaught exceptions into `problems`. With
 * `reconnects`, a failed WebSocket connection (the relay stopped on purpose) is not one.
 */
export function watchPage(page: Page, problems: string[], reconnects = true): void {
  page.on("console", (m) => {
    if (m.type() === "error" && !(reconnects && /^WebSocket connection to .* failed/.test(m.text()))) problems.push(m.text());
  });
  page.on("pageerror", (e) => problems.push(e.message));
}

/** The CLI vault's files of the account at `home`, as the console's unlock form takes them. */
export function vaultFiles(home: string): string[] {
  return [join(home, "vault.json"), join(home, "records", "identity.rec"), join(home, "records", "profile.rec")];
}

/**
 * Opens the console on `origin` in `page` and unlocks it with the vault at `home` and the test
 * passphrase (`createOrg`'s); resolves once it shows agent `name` online.
 */
export async function unlockConsole(page: Page, origin: string, home: string, name = "alice"): Promise<void> {
  await page.goto(`${origin}/console/`);
  await page.locator("#vault-files").setInputFiles(vaultFiles(home));
  await page.locator("#passphrase").fill("web tests only");
  await page.locator("#unlock-button").click();
  await expect.poll(() => page.locator("#me").textContent(), { timeout: 60_000 }).toBe(name);
  await expect.poll(() => page.locator("#conn").getAttribute("data-state")).toBe("online");
}

/** A CLI customer `name` (its home in `<root>/<name>`) with a conversation opened with `org`; returns the home and the conversation id. */
export async function cliCustomer(root: string, relay: string, org: CliOrg, name: string): Promise<{ home: string; id: string }> {
  const home = join(root, name);
  await cli(home, relay, ["init", "--name", name, "--role", "customer"]);
  await cli(home, relay, ["register"]);
  await cli(home, relay, ["open", "--org", org.org, "--org-fingerprint", org.fingerprint]);
  const id = (JSON.parse(await cli(home, relay, ["conversations", "--json"])) as { conversations: { conversation: string }[] }).conversations[0]?.conversation ?? "";
  return { home, id };
}

/** A withheld run drawn in a page's log (`li.withheld`): the summary line or a run of its own. */
export interface WithheldItem {
  more: boolean;
  from: number;
  text: string;
}

/** The withheld items of the page's log (`#log`), in order. */
export function withheldItems(page: Page): Promise<WithheldItem[]> {
  return page.locator("#log > li.withheld").evaluateAll((els) => els.map((e) => ({ more: e.classList.contains("more"), from: Number((e as HTMLElement).dataset.from), text: e.textContent ?? "" })));
}

/** The widget's visitor in a page: its account's name and public signing key (hex). */
export interface Visitor {
  name: string;
  key: string;
}

/** The visitor of the widget in `page`: the name its recovery panel shows, the key `data-customer-key` holds. */
export async function widgetVisitor(page: Page): Promise<Visitor> {
  await expect.poll(() => page.locator("body").getAttribute("data-customer-key")).toMatch(/^[0-9a-f]{64}$/);
  const key = (await page.locator("body").getAttribute("data-customer-key")) ?? "";
  const name = (await page.locator("#recovery-name").textContent()) ?? "";
  expect(name).toMatch(/^web-[0-9a-f]{12}$/);
  return { name, key };
}

/**
 * Whether the relay at `url` has `visitor`'s card in its directory (asked from Node with
 * `cardOnRelay`, not through the page): true when it holds the visitor's name with its key,
 * false when it holds no card of that name; another key under that name is an error.
 */
export async function visitorOnRelay(url: string, visitor: Visitor): Promise<boolean> {
  const held = await cardOnRelay(url, visitor.name);
  if (held !== null && held !== visitor.key) throw new Error(`the relay holds another key under ${visitor.name}`);
  return held !== null;
}

/** Submits the widget's recovery form (name and code); waits for its outcome, which it returns. */
export async function submitRecovery(page: Page, name: string, code: string): Promise<string | null> {
  await page.locator("#recover-name").fill(name);
  await page.locator("#recover-code").fill(code);
  await page.locator("#recover-go").click();
  await expect.poll(() => page.locator("#recover-status").getAttribute("data-outcome"), { timeout: 20_000 }).not.toBeNull();
  return page.locator("#recover-status").getAttribute("data-outcome");
}

/**
 * What a rewrite makes of one frame: a frame — the one given, as it came or changed in place, or
 * another — is encoded and forwarded; an array forwards each of its frames in order, and `[]`
 * drops the frame. There is no "unchanged" answer: a rewrite that changed the frame in place
 * cannot forget to hand it on (a path that returns nothing does not type-check).
 */
export type Rewritten = Frame | readonly Frame[];

/** A rewrite of the frames going one way, called with each decoded frame and its connection. */
export type Rewrite = (frame: Frame, link: Link) => Rewritten;

/** What `relayInTheMiddle` does to the frames of a connection, each way (left out: forwarded as they are). */
export interface Rewrites {
  /** The relay's frames, before the page gets them. */
  toPage?: Rewrite;
  /** The page's frames, before the relay gets them. */
  toRelay?: Rewrite;
}

/** One WebSocket connection of the page, passing through the test. */
export interface Link {
  /** Which connection of the page this is: 1 for the first, 2 after it reconnected once, … */
  readonly n: number;
  /** Sends `frame` to the page as if the relay had sent it. */
  toPage(frame: Frame): void;
  /**
   * Sends `frame` to the relay as if the page had sent it: a frame a rewrite dropped (`[]`) and
   * held, let go once something else happened first (another browser wins a race).
   */
  toRelay(frame: Frame): void;
  /**
   * Cuts the connection: the page's side is closed with `code` and `reason` (what the page is
   * told), the relay's side too.
   */
  close(code?: number, reason?: string): void;
}

/** A hostile relay in the middle (`relayInTheMiddle`), as the test sees it. */
export interface Middle {
  /** The page's connections so far, oldest first. */
  readonly links: readonly Link[];
  /** The newest connection; an error if the page opened none yet. */
  latest(): Link;
}

/**
 * Routes `page`'s relay WebSockets (`/v1/ws`) through the test: each connection is joined to the
 * real relay, and each binary frame, decoded, goes through `rewrites` on its way (see
 * `Rewritten`: forwarded, changed, several, or dropped); a way without a rewrite forwards the
 * bytes as they came. Text frames pass untouched (the relay speaks CBOR only). `rewrites` may be
 * a function of the connection, called once per connection, for state a connection keeps (what
 * its session registered). A close on either side closes the other; the relay's side gets the
 * page's close code and reason when a browser may send that code (1000, 3000–4999; a browser
 * socket refuses the others, which are the relay's own). Call it before the page opens the socket.
 */
export async function relayInTheMiddle(page: Page, rewrites: Rewrites | ((link: Link) => Rewrites)): Promise<Middle> {
  const links: Link[] = [];
  await page.routeWebSocket(/\/v1\/ws$/, (ws) => {
    const server = ws.connectToServer();
    // Once the test closed the link, or either side did, nothing more crosses it: a frame the
    // page sent meanwhile is dropped here, as a closed connection drops it, not sent into the
    // closed socket (which the page's console reports as "already in CLOSING or CLOSED state",
    // a problem the suites fail on).
    let closed = false;
    const link: Link = {
      n: links.length + 1,
      toPage: (frame) => {
        if (!closed) ws.send(encoded(frame));
      },
      toRelay: (frame) => {
        if (!closed) server.send(encoded(frame));
      },
      close: (code, reason) => {
        closed = true;
        void ws.close({ ...(code === undefined ? {} : { code }), ...(reason === undefined ? {} : { reason }) });
        void server.close();
      },
    };
    links.push(link);
    const { toPage, toRelay } = typeof rewrites === "function" ? rewrites(link) : rewrites;
    ws.onMessage((m) => {
      if (!closed) pass(m, toRelay, link, (out) => server.send(out));
    });
    server.onMessage((m) => {
      if (!closed) pass(m, toPage, link, (out) => ws.send(out));
    });
    // A handler of either side's close replaces Playwright's forwarding of it: each is
    // forwarded here, with its code where a close frame may carry it.
    server.onClose((code, reason) => {
      closed = true;
      void ws.close(closeOptions(code, reason));
    });
    ws.onClose((code, reason) => {
      closed = true;
      void server.close(closeOptions(code, reason));
    });
  });
  return {
    links,
    latest() {
      const last = links.at(-1);
      if (last === undefined) throw new Error("the page opened no WebSocket to the relay");
      return last;
    },
  };
}

/** A close's code and reason to pass on, where a close frame may carry them (1000, 3000–4999). */
function closeOptions(code: number | undefined, reason: string | undefined): { code?: number; reason?: string } {
  if (code === undefined || !(code === 1000 || (code >= 3000 && code <= 4999))) return {};
  return { code, ...(reason === undefined ? {} : { reason }) };
}

/** Forwards `m` with `send` as `rewrite` makes it (`Rewritten`). */
function pass(m: string | Buffer, rewrite: Rewrite | undefined, link: Link, send: (m: string | Buffer) => void): void {
  if (typeof m === "string" || rewrite === undefined) return send(m);
  const out = rewrite(decodeFrame(new Uint8Array(m)) as Frame, link);
  for (const f of Array.isArray(out) ? out : [out as Frame]) send(encoded(f));
}

/** A frame as the WebSocket carries it. */
const encoded = (frame: Frame): Buffer => Buffer.from(encodeFrame(frame as CborValue));
