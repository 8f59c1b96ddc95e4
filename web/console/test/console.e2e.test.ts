/**
 * The agent console end to end in Chromium: the real relay binary on 127.0.0.1:0 serves web/dist
 * (the widget at `/`, the console at `/console/`), the org is made with the Rust CLI. The CLI's
 * agent `alice` unlocks the console from her vault's files (a wrong passphrase is refused as
 * such); a customer writes from the widget; the console lists the conversation unread, the agent
 * reads it (the widget shows the read mark) and answers (the console shows it delivered); the
 * CLI and the console, one identity, both send; the status is set; a reload opens the console
 * at once with the conversation read again from the relay; the conversation is
 * transferred to the CLI agent `bob`, who reads it and answers. Then the relay's state is rolled
 * back and the org made again with another `carol` key: the console tells it loudly and blocks
 * sending in that conversation. Screenshots go to web/screenshots/.
 */
import { cpSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DIST as dist, SHOTS as shots, WIDE, launch, tearDownChromium, vaultFiles, watchPage } from "../../client/test/chromium.js";
import { cli, createOrg, startRelay, tempDir, type CliOrg, type RelayProcess } from "../../client/test/relay.js";

describe("the agent console in Chromium", () => {
  const root = tempDir("console-e2e");
  let relay: RelayProcess;
  let org: CliOrg;
  let browser: BrowserContext;
  const problems: string[] = [];
  const data = join(root.path, "relay-data");
  const empty = join(root.path, "relay-data-empty");
  /** The relay's log at debug level: its refusals, `CounterReused` among them. */
  let relayLog = "";

  beforeAll(async () => {
    // A copy of the relay's state before any account exists (its key included), for the
    // key-change test at the end.
    relay = await startRelay(data, ["--web-root", dist]);
    await relay.stop();
    cpSync(data, empty, { recursive: true });
    process.env.RUST_LOG = "info,sealdesk_server=debug";
    try {
      relay = await startRelay(data, ["--web-root", dist], relay.addr);
    } finally {
      delete process.env.RUST_LOG;
    }
    relay.child.stdout?.on("data", (d: Buffer) => (relayLog += d.toString()));
    relay.child.stderr?.on("data", (d: Buffer) => (relayLog += d.toString()));
    org = await createOrg(root.path, relay.url);
    browser = await launch(join(root.path, "profile"), { viewport: WIDE });
    mkdirSync(shots, { recursive: true });
  });
  afterAll(() => tearDownChromium(browser, relay, root));

  const watch = (page: Page): void => watchPage(page, problems);
  const texts = (page: Page): Promise<string[]> => page.locator("#log li.line .text").allTextContents();
  let consolePage: Page;
  let id = "";

  it("unlocks with the CLI's vault, answers a widget customer, shares the work with the CLI, transfers", async () => {
    const page = await browser.newPage();
    consolePage = page;
    watch(page);
    const response = await page.goto(`${relay.origin}/console/`);
    const csp = response?.headers()["content-security-policy"] ?? "";
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain("unsafe-inline");
    await page.locator("#vault-files").setInputFiles(vaultFiles(org.agentHome));
    await page.locator("#passphrase").fill("not the passphrase");
    await page.locator("#unlock-button").click();
    await expect.poll(() => page.locator("#unlock-result").textContent(), { timeout: 60_000 }).toContain("Wrong passphrase");
    await page.screenshot({ path: join(shots, "console-unlock.png") });
    await page.locator("#passphrase").fill("web tests only");
    await page.locator("#unlock-button").click();
    await expect.poll(() => page.locator("#me").textContent(), { timeout: 60_000 }).toBe("alice");
    await expect.poll(() => page.locator("#conn").getAttribute("data-state")).toBe("online");

    // A customer writes from the widget.
    const widget = await browser.newPage();
    watch(widget);
    await widget.goto(`${relay.origin}/?org=${org.org}&fp=${encodeURIComponent(org.fingerprint)}`);
    await expect.poll(() => widget.locator("#conn").getAttribute("data-state")).toBe("online");
    await expect.poll(() => widget.locator("#text").isDisabled()).toBe(false);
    await widget.locator("#text").fill("my order 1234 never arrived");
    await widget.locator("#text").press("Enter");
    await expect.poll(() => widget.locator("#log li.line .text").allTextContents()).toEqual(["my order 1234 never arrived"]);
    id = (await widget.locator("body").getAttribute("data-conversation")) ?? "";

    // The console lists it, unread; opening it reads it (the widget shows the read mark).
    const entry = page.locator(`#list button[data-conversation="${id}"]`);
    await expect.poll(() => entry.locator(".unread").textContent()).toBe("1");
    await expect.poll(() => page.locator("#policy-head").textContent()).toContain("escrow policy");
    await page.screenshot({ path: join(shots, "console-list.png") });
    await entry.click();
    await expect.poll(() => texts(page)).toEqual(["my order 1234 never arrived"]);
    await expect.poll(() => entry.locator(".unread").isHidden()).toBe(true);
    await expect.poll(() => widget.locator("#log li.mine .read").first().textContent()).toContain("read");

    // The agent answers from the console; the widget gets it, the console shows it delivered.
    await page.locator("#text").fill("sorry about that: a new one ships today");
    await page.locator("#text").press("Enter");
    await expect.poll(() => widget.locator("#log li.line .text").allTextContents()).toContain("sorry about that: a new one ships today");
    await expect.poll(() => page.locator("#log li.mine .meta").last().getAttribute("data-mark")).toMatch(/delivered|read/);

    // The same identity in the CLI and in the console, both sending.
    await org.agent(["send", "--conversation", id, "from the CLI"]);
    await page.locator("#text").fill("and from the console");
    await page.locator("#send").click();
    await expect.poll(() => texts(page)).toContain("and from the console");
    await org.agent(["send", "--conversation", id, "the CLI again"]);
    await expect.poll(() => widget.locator("#log li.line .text").allTextContents()).toEqual([
      "my order 1234 never arrived",
      "sorry about that: a new one ships today",
      "from the CLI",
      "and from the console",
      "the CLI again",
    ]);
    await page.locator("#text").fill("the console again");
    await page.locator("#send").click();
    await expect.poll(() => texts(page)).toContain("the CLI again");
    await expect.poll(() => widget.locator("#log li.line .text").allTextContents()).toContain("the console again");

    // The CLI and the console, one sender, never sealed under one counter: the relay refused none.
    expect(relayLog).toContain("message stored");
    expect(relayLog).not.toContain("CounterReused");

    await page.locator("#status").selectOption("waiting");
    await expect.poll(() => texts(page)).toContain("set the status to waiting");
    await page.screenshot({ path: join(shots, "console.png") });

    // A reload opens at once (the keys are in IndexedDB; no files, no passphrase) and reads the
    // conversation again from the relay, unread count included.
    await page.reload();
    await expect.poll(() => page.locator("#me").textContent()).toBe("alice");
    expect(await page.locator("#unlock").isHidden()).toBe(true);
    await page.locator(`#list button[data-conversation="${id}"]`).click();
    await expect.poll(() => texts(page)).toContain("the console again");
    expect(await texts(page)).toContain("my order 1234 never arrived");
    await expect.poll(() => page.locator("#log li.mine .meta").first().getAttribute("data-mark")).toMatch(/delivered|read/);

    // Transfer to the CLI agent bob, who reads the conversation and answers.
    const bobHome = join(root.path, "bob");
    await cli(bobHome, relay.url, ["init", "--name", "bob", "--role", "agent"]);
    await cli(bobHome, relay.url, ["register"]);
    const bobFp = (JSON.parse(await cli(bobHome, relay.url, ["whoami", "--json"])) as { fingerprint: string }).fingerprint;
    await org.as("owner", ["org", "add-agent", "bob", "--fingerprint", bobFp]);
    await expect.poll(() => page.locator("#transfer").isDisabled()).toBe(false);
    await page.locator("#transfer-to").fill("bob");
    await page.locator("#transfer").click();
    await expect.poll(() => entry.locator(".sub").textContent()).toContain("transferred to bob");
    await expect.poll(() => page.locator("#text").isDisabled()).toBe(true);
    expect(await page.locator("#pane-note").textContent()).toContain("Transferred to bob");
    expect(await cli(bobHome, relay.url, ["history", "--conversation", id])).toContain("my order 1234 never arrived");
    await cli(bobHome, relay.url, ["send", "--conversation", id, "bob here, taking over"]);
    await expect.poll(() => widget.locator("#log li.line .text").allTextContents()).toContain("bob here, taking over");
    await page.screenshot({ path: join(shots, "console-transferred.png") });
    await widget.close();
    expect(problems).toEqual([]);
  });

  it("blocks sending, loudly, when a customer's pinned key changes", async () => {
    // The relay's state is rolled back to before any account, and the org made again with the
    // same owner; a new account takes the name of a customer the console has pinned.
    const page = consolePage;
    // Only the console stays open (a widget left open would register its customer again).
    for (const p of browser.pages()) if (p !== page) await p.close();
    await relay.stop();
    relay = await startRelay(empty, ["--web-root", dist], relay.addr);
    for (const n of ["owner", "t1", "a1", "alice"]) await org.as(n, ["register"]);
    const fp = async (n: string): Promise<string> => (JSON.parse(await org.as(n, ["whoami", "--json"])) as { fingerprint: string }).fingerprint;
    await org.as("owner", ["org", "create", "--name", "acme", "--trustee", `t1=${await fp("t1")}`, "--trustee-threshold", "1", "--arbiter", `a1=${await fp("a1")}`, "--arbiter-threshold", "1"]);
    await org.as("owner", ["org", "add-agent", "alice", "--fingerprint", await fp("alice")]);
    const customer = (await page.locator(`#list button[data-conversation="${id}"] .name`).textContent()) ?? "";
    const mallory = join(root.path, "mallory");
    await cli(mallory, relay.url, ["init", "--name", customer, "--role", "customer"]);
    await cli(mallory, relay.url, ["register"]);
    await cli(mallory, relay.url, ["open", "--org", "acme", "--org-fingerprint", org.fingerprint]);
    const second = (JSON.parse(await cli(mallory, relay.url, ["conversations", "--json"])) as { conversations: { conversation: string }[] }).conversations[0]?.conversation ?? "";
    await cli(mallory, relay.url, ["send", "--conversation", second, "it is me, honest"]);
    await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 30_000 }).toBe("online");
    const entry = page.locator(`#list button[data-conversation="${second}"]`);
    await expect.poll(() => entry.count(), { timeout: 30_000 }).toBe(1);
    await entry.click();
    await expect.poll(() => page.locator("#alert").textContent()).toContain("KEY CHANGED");
    expect(await page.locator("#alert").textContent()).toContain(`${customer}'s key changed`);
    expect(await page.locator("#text").isDisabled()).toBe(true);
    expect(await page.locator("#send").isDisabled()).toBe(true);
    expect(await texts(page)).not.toContain("it is me, honest");
    // Two conversations of customers with one name: told apart by the short id.
    expect(await page.locator("#conv-title").textContent()).toBe(`${customer} · ${second.slice(0, 8)} · acme`);
    const labels = await page.locator("#list button").evaluateAll((bs) => bs.map((b) => b.getAttribute("aria-label") ?? ""));
    expect(new Set(labels).size).toBe(labels.length);
    await page.screenshot({ path: join(shots, "console-key-changed.png") });
  });
});
