/**
 * Attachments in the agent console, in Chromium against the real relay serving web/dist: the
 * CLI's agent `alice` unlocks the console from her vault; a CLI customer sends a file
 * (`sealdesk send --attach`) and a text; the console shows the attachment line between them, and
 * "Download" offers the checked file under a safe name; as more messages come and the log is
 * drawn again, the file's line stays the same element with "Checked ✓" and the focus in it. And
 * the other way: the agent attaches a file in the console (a progress bar while its chunks
 * upload), the line shows on its side, and the CLI customer saves identical bytes (`sealdesk attachment save`). No console error, no CSP
 * violation. A screenshot goes to web/screenshots/console-attach-sent.png. Both in one browser
 * and on one relay: the second test opens a second console page, already unlocked. (A browser
 * profile keeps the agent and its pins: the same profile against another relay, whose org
 * `acme` was made again with another master key, rightly blocks all sending, "master key
 * changed" — one console profile per relay, as an agent has.)
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SHOTS, WIDE, chromiumSuite, cliCustomer, watchPage } from "../../client/test/chromium.js";
import { cli } from "../../client/test/relay.js";
import { consolePage, customerWrites, selectConversation, texts } from "./console-page.js";

describe("attachments in the agent console (Chromium)", () => {
  const s = chromiumSuite("console-attach", { viewport: WIDE, acceptDownloads: true });

  it("shows a CLI customer's file and downloads it checked under a safe name", async () => {
    const page = await consolePage(s, false);

    const { home: dave, id } = await cliCustomer(s.root, s.relay.url, s.org, "dave");
    await cli(dave, s.relay.url, ["send", "--conversation", id, "the label is torn"]);
    const file = new Uint8Array(randomBytes(70_000));
    const path = join(s.root, "label (torn).jpg");
    writeFileSync(path, file);
    await cli(dave, s.relay.url, ["send", "--conversation", id, "--attach", path, "see"]);
    await cli(dave, s.relay.url, ["send", "--conversation", id, "can you replace it?"]);

    await selectConversation(page, id);
    await expect.poll(() => texts(page)).toEqual(["the label is torn", "label (torn).jpg, 68.4 KiB: see", "can you replace it?"]);
    const [download] = await Promise.all([page.waitForEvent("download"), page.locator("#log li.line button.download").click()]);
    expect(download.suggestedFilename()).toBe("label (torn).jpg");
    expect(new Uint8Array(readFileSync(await download.path()))).toEqual(file);
    await expect.poll(() => page.locator("#log .attachment-status").first().textContent()).toBe("Checked ✓");

    // The log is drawn again on every event and every few seconds: the file's line stays the
    // same element, in its place, its outcome and the focus on its button in it (drawn anew
    // each time, it was a new element: the outcome carried over, the item not).
    const line = await page.locator("#log li.line", { has: page.locator("button.download") }).elementHandle();
    if (line === null) throw new Error("no attachment line");
    await page.locator("#log li.line button.download").focus();
    const seq = await line.evaluate((li) => li.dataset.seq ?? "");
    for (const more of ["thanks", "it is the one on the box"]) {
      await cli(dave, s.relay.url, ["send", "--conversation", id, more]);
      await expect.poll(() => texts(page)).toContain(more);
    }
    expect(await texts(page)).toEqual(["the label is torn", "label (torn).jpg, 68.4 KiB: see", "can you replace it?", "thanks", "it is the one on the box"]);
    expect(await line.evaluate((li, at) => li.isConnected && document.querySelector(`#log li[data-seq="${at}"]`) === li, seq)).toBe(true);
    expect(await line.evaluate((li) => li.querySelector(".attachment-status")?.textContent)).toBe("Checked ✓");
    expect(await line.evaluate((li) => li.contains(document.activeElement) && document.activeElement?.classList.contains("download"))).toBe(true);
    expect(s.problems).toEqual([]);
    await page.close();
  });

  it("sends a file from the console that the CLI customer saves byte for byte", async () => {
    // A second console page in the same browser: unlocked already (the agent is kept in this
    // profile's IndexedDB), on the same relay, it may send at once.
    const page = await s.browser.newPage();
    watchPage(page, s.problems, false);
    await page.goto(`${s.relay.origin}/console/`);
    await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 30_000 }).toBe("online");

    const { home: erin, id } = await customerWrites(s, page, "erin", "which form do I need?");
    expect(await page.locator("#text").isDisabled()).toBe(false);

    // Three chunks and a part: the bar moves, then the line shows on the agent's side.
    const file = new Uint8Array(randomBytes(3 * 32 * 1024 + 1000));
    const path = join(s.root, "form B.pdf");
    writeFileSync(path, file);
    await page.locator("#text").fill("this one");
    await page.locator("#file").setInputFiles(path);
    await expect.poll(() => page.locator("#upload-status").getAttribute("data-done"), { timeout: 30_000 }).toBe("true");
    await expect.poll(() => texts(page)).toEqual(["which form do I need?", "form B.pdf, 97.0 KiB: this one"]);
    expect(await page.locator("#log li.line.mine .text").textContent()).toBe("form B.pdf, 97.0 KiB: this one");
    await page.screenshot({ path: join(SHOTS, "console-attach-sent.png") });

    // The customer's CLI sees the file and saves identical bytes (every chunk, size and hash checked).
    const history = JSON.parse(await cli(erin, s.relay.url, ["history", "--conversation", id, "--json"])) as { lines: { number: number; entry: { kind: string } }[] };
    const line = history.lines.filter((l) => l.entry.kind === "attachment").pop();
    expect(line).toBeDefined();
    const out = join(s.root, "saved");
    mkdirSync(out);
    await cli(erin, s.relay.url, ["attachment", "save", "--conversation", id, "--message", String(line?.number), "--out", out]);
    expect(new Uint8Array(readFileSync(join(out, "form B.pdf")))).toEqual(file);
    expect(s.problems).toEqual([]);
    await page.close();
  });
});
