/**
 * Uploads in the widget, in Chromium against the real relay serving web/dist, with a small
 * stored-bytes quota (eight chunks): the page's connection is cut while a file goes out (its
 * WebSocket routed through the test); the widget lists the upload as interrupted, reconnects by
 * itself and sends only the chunks the relay lacks (counted on the wire), and the CLI agent saves
 * identical bytes. A second file brings the account past 80% of its quota: the widget says how
 * much is used, of how much, and what to do; a third is refused at the limit with the typed
 * `quota_exceeded` in plain words. Screenshot `widget-quota.png`.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { SHOTS as shots, watchPage, chromiumSuite, relayInTheMiddle, type Frame } from "../../client/test/chromium.js";

const CHUNK = 32 * 1024;
/** A file whose ciphertext is exactly `n` chunks (16 bytes of tag each). */
const fileOf = (n: number): Buffer => Buffer.from(randomBytes(n * CHUNK - n * 16));

describe("uploads and the stored-bytes quota in the widget (Chromium)", () => {
  const s = chromiumSuite("widget-uploads", {}, ["--limit", `stored_bytes_per_account=${8 * CHUNK}`]);

  const lines = (page: Page): Promise<string[]> => page.locator("#log li.line .text").allTextContents();

  it("goes on after a cut connection with the chunks the relay lacks, warns ahead of the quota, refuses at it", async () => {
    const page = await s.browser.newPage();
    watchPage(page, s.problems);
    let puts = 0;
    let cutAt: number | null = null;
    await relayInTheMiddle(page, {
      toRelay: (frame, link) => {
        if (((frame.request as Frame | undefined)?.body as Frame | undefined)?.attachment_put !== undefined) {
          puts += 1;
          // The third chunk never leaves: the connection is lost.
          if (cutAt === null && puts === 3) {
            cutAt = puts;
            link.close();
            return [];
          }
        }
        return frame;
      },
    });
    await page.goto(`${s.relay.origin}/?org=${s.org.org}&fp=${encodeURIComponent(s.org.fingerprint)}`);
    await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 15_000 }).toBe("online");
    await page.locator("#text").fill("photos of the damage follow");
    await page.locator("#text").press("Enter");
    await expect.poll(() => lines(page), { timeout: 15_000 }).toEqual(["photos of the damage follow"]);
    const id = (await page.locator("body").getAttribute("data-conversation")) ?? "";

    const first = fileOf(5);
    await page.locator("#file").setInputFiles({ name: "damage.jpg", mimeType: "image/jpeg", buffer: first });
    await expect.poll(() => page.locator("#alert").textContent(), { timeout: 15_000 }).toContain("goes on by itself once connected");
    await expect.poll(() => lines(page), { timeout: 30_000 }).toEqual(["photos of the damage follow", "damage.jpg, 159.9 KiB"]);
    await expect.poll(() => page.locator("#uploads li").count()).toBe(0);
    // Two chunks before the cut; after it, chunk 0 again and the three the relay lacked.
    expect(cutAt).toBe(3);
    const after = puts - 3;
    expect(after).toBe(1 + 5 - 2);
    expect(after).toBeLessThan(5);
    const history = await s.org.agent(["history", "--conversation", id]);
    const n = /\[?#?(\d+)\]?[^\n]*damage\.jpg/.exec(history)?.[1] ?? "";
    const out = join(s.root, "saved.jpg");
    await s.org.agent(["attachment", "save", "--conversation", id, "--message", n, "--out", out]);
    expect(readFileSync(out).equals(first)).toBe(true);

    // Seven of eight chunks stored (and the messages' own bytes, which count too): the warning,
    // in plain words.
    await page.locator("#file").setInputFiles({ name: "receipt.pdf", mimeType: "application/pdf", buffer: fileOf(2) });
    await expect.poll(() => page.locator("#quota").isVisible(), { timeout: 15_000 }).toBe(true);
    const warning = (await page.locator("#quota").textContent()) ?? "";
    expect(warning).toMatch(/now take 224\.\d KiB of the 256\.0 KiB it keeps for you \(87%\)/);
    expect(warning).toContain("erase a conversation you no longer need");

    // Past the quota: refused, said plainly, nothing kept to retry.
    await page.locator("#file").setInputFiles({ name: "video.mp4", mimeType: "video/mp4", buffer: fileOf(2) });
    await expect.poll(() => page.locator("#alert").textContent(), { timeout: 15_000 }).toContain("(quota_exceeded)");
    const alert = (await page.locator("#alert").textContent()) ?? "";
    expect(alert).toContain("A limit of this relay is reached: stored-bytes quota reached");
    expect(alert).toContain("erase a conversation you no longer need");
    expect(await page.locator("#uploads li").count()).toBe(0);
    await page.screenshot({ path: join(shots, "widget-quota.png") });
    expect(s.problems).toEqual([]);
    await page.close();
  });
});
