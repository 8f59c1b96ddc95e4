/**
 * The widget's live signs in Chromium, against the real relay serving web/dist, with a Node
 * agent (the TypeScript `Agent` with the CLI agent's identity, imported from its vault): the
 * customer typing in the box shows at the agent, and stops when the message is sent; the agent's
 * "typing…" shows in the widget's status line (`aria-live`) and clears when its answer comes;
 * the customer's line is marked sent, then delivered (the agent's device has it), then read (the
 * agent's read receipt); the answer shown in the visible page gets the customer's read receipt
 * at the agent. Screenshot `widget-live.png`.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type BrowserContext } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Agent, MemoryStore, importCliVault, type SocketFactory } from "@sealdesk/client";
import { createOrg, startRelay, tempDir, type CliOrg, type RelayProcess } from "../../client/test/relay.js";

const here = dirname(fileURLToPath(import.meta.url));
const dist = resolve(here, "../../dist");
const shots = resolve(here, "../../screenshots");
const socket: SocketFactory = (url) => new WebSocket(url) as unknown as ReturnType<SocketFactory>;
const random = (n: number): Uint8Array => new Uint8Array(randomBytes(n));
const now = (): number => Math.floor(Date.now() / 1000);

describe("typing and receipts in the widget (Chromium)", () => {
  const root = tempDir("widget-live");
  let relay: RelayProcess;
  let org: CliOrg;
  let browser: BrowserContext;
  let agent: Agent;
  const problems: string[] = [];

  beforeAll(async () => {
    relay = await startRelay(join(root.path, "relay-data"), ["--web-root", dist]);
    org = await createOrg(root.path, relay.url);
    const home = org.agentHome;
    const { keys, card } = await importCliVault(
      {
        header: readFileSync(join(home, "vault.json"), "utf8"),
        identity: new Uint8Array(readFileSync(join(home, "records", "identity.rec"))),
        profile: new Uint8Array(readFileSync(join(home, "records", "profile.rec"))),
      },
      "web tests only",
    );
    const store = new MemoryStore();
    await Agent.keep(store, keys, card);
    agent = await Agent.load({ url: relay.url, store, socket, random, now });
    agent.start();
    browser = await chromium.launchPersistentContext(join(root.path, "profile"), {
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      headless: true,
      args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
      viewport: { width: 420, height: 640 },
    });
    mkdirSync(shots, { recursive: true });
  });
  afterAll(async () => {
    agent?.stop();
    await browser?.close();
    await relay?.stop();
    root.remove();
  });

  it("shows typing both ways and marks lines sent, delivered and read", async () => {
    const page = await browser.newPage();
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(m.text());
    });
    page.on("pageerror", (e) => problems.push(e.message));
    await page.goto(`${relay.origin}/?org=${org.org}&fp=${encodeURIComponent(org.fingerprint)}`);
    await expect.poll(() => page.locator("#conn").getAttribute("data-state")).toBe("online");
    await page.locator("#text").fill("where is my parcel?");
    await page.locator("#text").press("Enter");
    await expect.poll(() => page.locator("#log li.line .text").allTextContents()).toEqual(["where is my parcel?"]);
    const id = (await page.locator("body").getAttribute("data-conversation")) ?? "";
    await expect.poll(() => agent.conversation(id)?.lines.length ?? 0, { timeout: 20_000 }).toBe(1);

    // Delivered once the agent's device has it (and not yet read).
    const mark = page.locator("#log li.mine .read").first();
    await expect.poll(() => mark.getAttribute("data-mark"), { timeout: 20_000 }).toBe("delivered");

    // The customer types: the agent sees it; sending clears it.
    await page.locator("#text").pressSequentially("it was due");
    await expect.poll(() => agent.conversation(id)?.typing, { timeout: 20_000 }).toBe(true);
    await page.locator("#text").press("Enter");
    await expect.poll(() => agent.conversation(id)?.typing, { timeout: 20_000 }).toBe(false);

    // The agent types: the widget says so in its live status line.
    await agent.signal(id, "typing");
    const typing = page.locator("#typing");
    expect(await typing.getAttribute("aria-live")).toBe("polite");
    await expect.poll(() => typing.textContent(), { timeout: 20_000 }).toBe("alice is typing…");
    await page.screenshot({ path: join(shots, "widget-typing.png") });

    // The agent reads and answers: the customer's lines are marked read, the typing clears, and
    // the answer seen in the visible page is acknowledged with a read receipt.
    await expect.poll(() => agent.conversation(id)?.lines.length ?? 0, { timeout: 20_000 }).toBe(2);
    await agent.markRead(id);
    const answer = await agent.send(id, "it left the depot this morning");
    await expect.poll(() => typing.textContent(), { timeout: 20_000 }).toBe("");
    await expect.poll(() => page.locator("#log li.mine .read[data-mark=read]").count(), { timeout: 20_000 }).toBe(2);
    await expect.poll(() => agent.conversation(id)?.readByCustomer ?? 0, { timeout: 20_000 }).toBeGreaterThanOrEqual(answer);
    await page.screenshot({ path: join(shots, "widget-live.png") });
    expect(await page.locator("#alert").isHidden()).toBe(true);
    expect(problems).toEqual([]);
    await page.close();
  });
});
