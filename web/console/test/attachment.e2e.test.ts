/**
 * Attachments in the agent console, in Chromium against the real relay serving web/dist: the
 * CLI's agent `alice` unlocks the console from her vault; a CLI customer sends a file
 * (`sealdesk send --attach`) and a text; the console shows the attachment line between them, and
 * "Download" offers the checked file under a safe name. And the other way: the agent attaches a
 * file in the console (a progress bar while its chunks upload), the line shows on its side, and
 * the CLI customer saves identical bytes (`sealdesk attachment save`). No console error, no CSP
 * violation. A screenshot goes to web/screenshots/console-attach-sent.png. Both in one browser
 * and on one relay: the second test opens a second console page, already unlocked. (A browser
 * profile keeps the agent and its pins: the same profile against another relay, whose org
 * `acme` was made again with another master key, rightly blocks all sending, "master key
 * changed" — one console profile per relay, as an agent has.)
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SHOTS, WIDE, cliCustomer, setUpChromium, tearDownChromium, unlockConsole, watchPage } from "../../client/test/chromium.js";
import { cli, tempDir, type CliOrg, type RelayProcess } from "../../client/test/relay.js";

describe("attachments in the agent console (Chromium)", () => {
  const root = tempDir("console-attach");
  let relay: RelayProcess;
  let org: CliOrg;
  let browser: BrowserContext;
  const problems: string[] = [];

  beforeAll(async () => {
    ({ relay, org, browser } = await setUpChromium(root.path, { viewport: WIDE, acceptDownloads: true }));
  });
  afterAll(() => tearDownChromium(browser, relay, root));

  const texts = (page: Page): Promise<string[]> => page.locator("#log li.line .text").allTextContents();

  it("shows a CLI customer's file and downloads it checked under a safe name", async () => {
    const page = await browser.newPage();
    watchPage(page, problems, false);
    await unlockConsole(page, relay.origin, org.agentHome);

    const { home: dave, id } = await cliCustomer(root.path, relay.url, org, "dave");
    await cli(dave, relay.url, ["send", "--conversation", id, "the label is torn"]);
    const file = new Uint8Array(randomBytes(70_000));
    const path = join(root.path, "label (torn).jpg");
    writeFileSync(path, file);
    await cli(dave, relay.url, ["send", "--conversation", id, "--attach", path, "see"]);
    await cli(dave, relay.url, ["send", "--conversation", id, "can you replace it?"]);

    const entry = page.locator(`#list button[data-conversation="${id}"]`);
    await expect.poll(() => entry.count(), { timeout: 30_000 }).toBe(1);
    await entry.click();
    await expect.poll(() => texts(page)).toEqual(["the label is torn", "📎 label (torn).jpg, 68.4 KiB: see", "can you replace it?"]);
    const [download] = await Promise.all([page.waitForEvent("download"), page.locator("#log li.line button.download").click()]);
    expect(download.suggestedFilename()).toBe("label (torn).jpg");
    expect(new Uint8Array(readFileSync(await download.path()))).toEqual(file);
    await expect.poll(() => page.locator("#log .attachment-status").first().textContent()).toBe("Checked ✓");
    expect(problems).toEqual([]);
    await page.close();
  });

  it("sends a file from the console that the CLI customer saves byte for byte", async () => {
    const page = await browser.newPage();
    watchPage(page, problems, false);
    // A second console page in the same browser: unlocked already (the agent is kept in this
    // profile's IndexedDB), on the same relay, it may send at once.
    await page.goto(`${relay.origin}/console/`);
    await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 30_000 }).toBe("online");

    const { home: erin, id } = await cliCustomer(root.path, relay.url, org, "erin");
    await cli(erin, relay.url, ["send", "--conversation", id, "which form do I need?"]);
    const entry = page.locator(`#list button[data-conversation="${id}"]`);
    await expect.poll(() => entry.count(), { timeout: 30_000 }).toBe(1);
    await entry.click();
    await expect.poll(() => texts(page)).toEqual(["which form do I need?"]);
    expect(await page.locator("#text").isDisabled()).toBe(false);

    // Three chunks and a part: the bar moves, then the line shows on the agent's side.
    const file = new Uint8Array(randomBytes(3 * 32 * 1024 + 1000));
    const path = join(root.path, "form B.pdf");
    writeFileSync(path, file);
    await page.locator("#text").fill("this one");
    await page.locator("#file").setInputFiles(path);
    await expect.poll(() => page.locator("#upload-status").getAttribute("data-done"), { timeout: 30_000 }).toBe("true");
    await expect.poll(() => texts(page)).toEqual(["which form do I need?", "📎 form B.pdf, 97.0 KiB: this one"]);
    expect(await page.locator("#log li.line.mine .text").textContent()).toBe("📎 form B.pdf, 97.0 KiB: this one");
    await page.screenshot({ path: join(SHOTS, "console-attach-sent.png") });

    // The customer's CLI sees the file and saves identical bytes (every chunk, size and hash checked).
    const history = JSON.parse(await cli(erin, relay.url, ["history", "--conversation", id, "--json"])) as { lines: { number: number; entry: { kind: string } }[] };
    const line = history.lines.filter((l) => l.entry.kind === "attachment").pop();
    expect(line).toBeDefined();
    const out = join(root.path, "saved");
    mkdirSync(out);
    await cli(erin, relay.url, ["attachment", "save", "--conversation", id, "--message", String(line?.number), "--out", out]);
    expect(new Uint8Array(readFileSync(join(out, "form B.pdf")))).toEqual(file);
    expect(problems).toEqual([]);
    await page.close();
  });
});
