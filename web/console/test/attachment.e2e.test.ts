/**
 * Attachments in the agent console, in Chromium against the real relay serving web/dist: the
 * CLI's agent `alice` unlocks the console from her vault; a CLI customer sends a file
 * (`sealdesk send --attach`) and a text; the console shows the attachment line between them, and
 * "Download" offers the checked file under a safe name. No console error, no CSP violation.
 */
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WIDE, setUpChromium, tearDownChromium, watchPage } from "../../client/test/chromium.js";
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
    await page.goto(`${relay.origin}/console/`);
    const home = org.agentHome;
    await page.locator("#vault-files").setInputFiles([join(home, "vault.json"), join(home, "records", "identity.rec"), join(home, "records", "profile.rec")]);
    await page.locator("#passphrase").fill("web tests only");
    await page.locator("#unlock-button").click();
    await expect.poll(() => page.locator("#me").textContent(), { timeout: 60_000 }).toBe("alice");
    await expect.poll(() => page.locator("#conn").getAttribute("data-state")).toBe("online");

    const dave = join(root.path, "dave");
    await cli(dave, relay.url, ["init", "--name", "dave", "--role", "customer"]);
    await cli(dave, relay.url, ["register"]);
    await cli(dave, relay.url, ["open", "--org", org.org, "--org-fingerprint", org.fingerprint]);
    const id = (JSON.parse(await cli(dave, relay.url, ["conversations", "--json"])) as { conversations: { conversation: string }[] }).conversations[0]?.conversation ?? "";
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
});
