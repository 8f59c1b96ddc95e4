/**
 * The marks on the agent's own files in the console (Chromium against the real relay serving
 * web/dist; issue 23): a line with a file carries the same mark as a text line, from the same
 * source — "sent" once the relay stored it, "delivered" once the relay says the customer's
 * device received it, "read" once the customer's end-to-end read receipt covers it. The
 * customer is the Rust CLI, run a command at a time, so each step waits for it:
 * `sealdesk conversations` syncs (the relay's delivery mark), `sealdesk history` reads (a read
 * receipt). The line stays one element while its mark changes (its download button in it), and
 * its marks are seen in order, each once. Screenshots `console-attachment-sent.png` and
 * `console-attachment-read.png`.
 */
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { SHOTS, WIDE, chromiumSuite } from "../../client/test/chromium.js";
import { cli } from "../../client/test/relay.js";
import { consolePage, customerWrites, texts } from "./console-page.js";

declare global {
  interface Window {
    /** Installed by `traceMarks`: every mark the file's line showed, in order, and the elements it was. */
    fileMarks?: { marks: string[]; lines: Element[] };
  }
}

/** The agent's line with a file. */
const FILE_LINE = "#log li.line.mine:has(button.download)";

/** Records, from now on, each mark of the agent's line with a file and each element that line was. */
async function traceMarks(page: Page): Promise<void> {
  await page.evaluate((selector) => {
    const trace: NonNullable<Window["fileMarks"]> = { marks: [], lines: [] };
    window.fileMarks = trace;
    const log = document.getElementById("log");
    if (log === null) throw new Error("no log");
    const look = (): void => {
      const li = log.querySelector(selector);
      if (li === null) return;
      if (!trace.lines.includes(li)) trace.lines.push(li);
      const mark = li.querySelector<HTMLElement>(".meta")?.dataset.mark ?? "none";
      if (trace.marks.at(-1) !== mark) trace.marks.push(mark);
    };
    new MutationObserver(look).observe(log, { subtree: true, childList: true, characterData: true, attributes: true });
    look();
  }, FILE_LINE);
}

describe("the marks on the agent's files in the console (Chromium)", () => {
  const s = chromiumSuite("console-attachment-marks", { viewport: WIDE });

  it("shows a file it sent go sent, delivered, read as the CLI customer syncs and reads", async () => {
    const page = await consolePage(s, false);
    const { home: dave, id } = await customerWrites(s, page, "dave", "can I have the invoice?");
    const line = page.locator(FILE_LINE);
    const mark = (): Promise<string | null> => line.locator(".meta").getAttribute("data-mark");

    // The agent sends a file; the customer's CLI is not running, so it is stored, no more.
    const path = join(s.root, "invoice 2231.pdf");
    writeFileSync(path, new Uint8Array(randomBytes(50_000)));
    await page.locator("#text").fill("here it is");
    await page.locator("#file").setInputFiles(path);
    await expect.poll(() => page.locator("#upload-status").getAttribute("data-done"), { timeout: 30_000 }).toBe("true");
    await expect.poll(() => texts(page)).toEqual(["can I have the invoice?", "invoice 2231.pdf, 48.8 KiB: here it is"]);
    await traceMarks(page);
    expect(await mark()).toBe("sent");
    expect(await line.locator(".meta").textContent()).toMatch(/ · verified ✓ · sent$/);
    await page.screenshot({ path: join(SHOTS, "console-attachment-sent.png") });

    // The customer's device syncs (`conversations` reads what is new, and tells the relay).
    await cli(dave, s.relay.url, ["conversations"]);
    await expect.poll(mark, { timeout: 20_000 }).toBe("delivered");
    expect(await line.locator(".meta").textContent()).toMatch(/ · verified ✓ · delivered$/);

    // The customer reads the conversation: `history` sends the read receipt.
    const history = await cli(dave, s.relay.url, ["history", "--conversation", id]);
    expect(history).toContain("invoice 2231.pdf");
    await expect.poll(mark, { timeout: 20_000 }).toBe("read");
    expect(await line.locator(".meta").textContent()).toMatch(/ · verified ✓ · read$/);

    // Each mark once, in order, on one element all along (its download button in it).
    const trace = await page.evaluate(() => ({ marks: window.fileMarks?.marks ?? [], lines: window.fileMarks?.lines.length ?? 0 }));
    expect(trace).toEqual({ marks: ["sent", "delivered", "read"], lines: 1 });
    expect(await line.locator("button.download").count()).toBe(1);
    await page.screenshot({ path: join(SHOTS, "console-attachment-read.png") });
    expect(s.problems).toEqual([]);
    await page.close();
  });
});
