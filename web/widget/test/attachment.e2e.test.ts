/**
 * Attachments in the widget, in Chromium against the real relay serving web/dist: the CLI agent
 * sends a file (`sealdesk send --attach`); the widget's history still reads (text before and
 * after) and shows the attachment line; "Download" offers the checked file under a safe name;
 * the customer attaches a file, which the CLI agent saves byte for byte. No console error and no
 * CSP violation. Then a chunk altered on its way from the relay (the page's WebSocket routed
 * through the test): the line says the file failed its check, and no download is offered.
 */
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { chromiumSuite, relayInTheMiddle, type Frame } from "../../client/test/chromium.js";
import { expectClipIcon } from "../../client/test/clip-check.js";

describe("attachments in the widget (Chromium)", () => {
  const s = chromiumSuite("widget-attach", { acceptDownloads: true });

  const lines = (page: Page): Promise<string[]> => page.locator("#log li.line .text").allTextContents();

  it("shows the agent's file, downloads it checked under a safe name, and sends one", async () => {
    const page = await s.browser.newPage();
    page.on("console", (m) => {
      if (m.type() === "error") s.problems.push(m.text());
    });
    page.on("pageerror", (e) => s.problems.push(e.message));
    await page.goto(`${s.relay.origin}/?org=${s.org.org}&fp=${encodeURIComponent(s.org.fingerprint)}`);
    await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 15_000 }).toBe("online");
    await page.locator("#text").fill("the invoice please");
    await page.locator("#text").press("Enter");
    await expect.poll(() => lines(page), { timeout: 15_000 }).toEqual(["the invoice please"]);
    const id = (await page.locator("body").getAttribute("data-conversation")) ?? "";

    const file = new Uint8Array(randomBytes(40_000));
    const path = join(s.root, ".hidden invoice.pdf");
    writeFileSync(path, file);
    await s.org.agent(["send", "--conversation", id, "--attach", path, "here you go"]);
    await s.org.agent(["send", "--conversation", id, "anything else?"]);
    await expect.poll(() => lines(page)).toEqual(["the invoice please", "hidden invoice.pdf, 39.1 KiB: here you go", "anything else?"]);
    // The file's mark is a drawn icon named "Attachment", not an emoji (an empty box here).
    await expectClipIcon(page.locator("#log li.line", { hasText: "hidden invoice.pdf" }));

    const [download] = await Promise.all([page.waitForEvent("download"), page.locator("#log li.line button.download").click()]);
    expect(download.suggestedFilename()).toBe("hidden invoice.pdf");
    const saved = await download.path();
    expect(new Uint8Array(readFileSync(saved))).toEqual(file);
    await expect.poll(() => page.locator("#log .attachment-status").first().textContent()).toBe("Checked ✓");

    // The customer attaches a file with the typed text as its caption; the CLI agent saves it.
    const mine = Buffer.from(randomBytes(3000));
    await page.locator("#text").fill("a photo of it");
    await page.locator("#file").setInputFiles({ name: "broken.png", mimeType: "image/png", buffer: mine });
    await expect.poll(() => lines(page)).toContain("broken.png, 2.9 KiB: a photo of it");
    const history = await s.org.agent(["history", "--conversation", id]);
    const n = /\[?#?(\d+)\]?[^\n]*broken\.png/.exec(history)?.[1] ?? "";
    const out = join(s.root, "saved.png");
    await s.org.agent(["attachment", "save", "--conversation", id, "--message", n, "--out", out]);
    expect(readFileSync(out).equals(mine)).toBe(true);
    expect(s.problems).toEqual([]);
    await page.close();
  });

  it("refuses a chunk altered on its way: a clear error, never a file", async () => {
    const page = await s.browser.newPage();
    page.on("pageerror", (e) => s.problems.push(e.message));
    let altered = 0;
    await relayInTheMiddle(page, {
      toPage: (frame) => {
        const chunk = ((frame.response as Frame | undefined)?.body as Frame | undefined)?.attachment_chunk as { data: Uint8Array } | undefined;
        if (chunk === undefined) return frame;
        const data = chunk.data.slice();
        data[0] = (data[0] ?? 0) ^ 1;
        chunk.data = data;
        altered += 1;
        return frame;
      },
    });
    let downloads = 0;
    page.on("download", () => (downloads += 1));
    await page.goto(`${s.relay.origin}/?org=${s.org.org}&fp=${encodeURIComponent(s.org.fingerprint)}`);
    await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 15_000 }).toBe("online");
    await expect.poll(() => page.locator("#log li.line button.download").count(), { timeout: 15_000 }).toBe(2);
    await page.locator("#log li.line button.download").first().click();
    const status = page.locator("#log .attachment-status").first();
    await expect.poll(() => status.getAttribute("data-error")).toBe("chunk");
    expect(await status.textContent()).toContain("failed its integrity check");
    expect(altered).toBeGreaterThan(0);
    expect(downloads).toBe(0);
    expect(s.problems).toEqual([]);
    await page.close();
  });
});
