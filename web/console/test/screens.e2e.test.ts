/**
 * What an agent trips over on the console's screens, in Chromium against the real relay serving
 * web/dist, in a narrow window (800 × 600): the pane with no conversation yet says so (it said
 * "Choose a conversation" over an empty list); the list says a status in the status menu's words
 * ("waiting for the customer": a bare "waiting" read as the customer waiting); an unread count beside a customer's long name stays a
 * badge at the top of its row (stretched, it was a tall blue bar); the open conversation is not
 * drawn as the keyboard's focus is (both were outlines: the agent could not tell which button
 * had the focus); with the org's policy opened, the log keeps room to read (it was squeezed to a
 * sliver, the pane scrolls instead); and after a file is sent the focus is back in the answer
 * (the file input, disabled while the file went, lost it to the page's body). Issue 23, seen
 * then and fixed since: an unread conversation is seen without the badge (its name in bold) and
 * heard (the count in its accessible name); a file's line is marked with a drawn icon named
 * "Attachment", not "📎" (an empty box without an emoji font); at 600 px the action bar wraps,
 * not the words of "Transfer to agent" (three lines).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { chromiumSuite, cliCustomer } from "../../client/test/chromium.js";
import { cli } from "../../client/test/relay.js";
import { expectClipIcon } from "../../client/test/clip-check.js";
import { consolePage, selectConversation, texts } from "./console-page.js";

/** Long enough to wrap over three lines in the 16rem list. */
const LONG_NAME = "maximiliana-fernandez-oyelaran-from-accounts";

describe("the console's screens, as an agent meets them (Chromium)", () => {
  const s = chromiumSuite("console-screens", { viewport: { width: 800, height: 600 } });

  it("keeps badges, selection, focus and the log readable in a narrow window", async () => {
    const page = await consolePage(s, false);
    // Before any conversation: the pane says there is none yet, not "Choose a conversation".
    await expect.poll(() => page.locator("#conv-title").textContent()).toBe("No conversation yet");
    expect(await page.locator("#pane-empty").textContent()).toContain("A customer's first message to your org opens a conversation here");
    const rita = await cliCustomer(s.root, s.relay.url, s.org, "rita");
    await cli(rita.home, s.relay.url, ["send", "--conversation", rita.id, "my order never arrived"]);
    await expect.poll(() => page.locator("#conv-title").textContent(), { timeout: 30_000 }).toBe("Choose a conversation");
    expect(await page.locator("#pane-empty").textContent()).toContain("Open one from the list on the left");
    await selectConversation(page, rita.id);
    await expect.poll(() => texts(page)).toEqual(["my order never arrived"]);
    expect(await page.locator("#pane-empty").isHidden()).toBe(true);
    // The list says a status in the menu's words: "waiting" alone reads as a customer waiting.
    await page.locator("#status").selectOption("waiting");
    const ritaSub = page.locator(`#list button[data-conversation="${rita.id}"] .sub`);
    await expect.poll(() => ritaSub.textContent()).toContain("· waiting for the customer");
    await page.locator("#status").selectOption("open");
    await expect.poll(() => ritaSub.textContent()).toMatch(/· open$/);
    await page.locator("#text").focus();
    const max = await cliCustomer(s.root, s.relay.url, s.org, LONG_NAME);
    await cli(max.home, s.relay.url, ["send", "--conversation", max.id, "the invoice link does not open"]);
    await cli(max.home, s.relay.url, ["send", "--conversation", max.id, "hello?"]);

    // The unread badge beside the long name: one line high, at the top of its row.
    const maxEntry = page.locator(`#list button[data-conversation="${max.id}"]`);
    await expect.poll(() => maxEntry.locator(".unread").textContent(), { timeout: 30_000 }).toBe("2");
    const badge = await maxEntry.evaluate((b) => {
      const name = b.querySelector(".name")?.getBoundingClientRect();
      const unread = b.querySelector<HTMLElement>(".unread");
      const box = unread?.getBoundingClientRect();
      return { nameHeight: name?.height ?? 0, height: box?.height ?? 0, top: box?.top ?? 0, nameTop: name?.top ?? 0, line: parseFloat(getComputedStyle(unread ?? b).lineHeight) };
    });
    // The name wraps (else the badge could not be stretched and this would test nothing).
    expect(badge.nameHeight).toBeGreaterThan(2 * badge.line);
    expect(badge.height).toBeLessThanOrEqual(badge.line + 2);
    expect(Math.abs(badge.top - badge.nameTop)).toBeLessThan(badge.line);
    // Unread is seen without the badge (its colour): the name in bold, the read one's not; and
    // heard: the count is in the entry's accessible name.
    const weight = (id: string): Promise<number> => page.locator(`#list button[data-conversation="${id}"] .name`).evaluate((n) => Number(getComputedStyle(n).fontWeight));
    expect(await weight(max.id)).toBeGreaterThanOrEqual(700);
    expect(await weight(rita.id)).toBeLessThan(600);
    expect(await page.getByRole("button", { name: `${LONG_NAME} · ${max.id.slice(0, 8)}, 2 unread messages`, exact: true }).count()).toBe(1);
    expect(await page.getByRole("button", { name: `rita · ${rita.id.slice(0, 8)}`, exact: true }).count()).toBe(1);

    // The open conversation (rita's) with the focus in the answer: the conversation is marked,
    // but not with an outline, which only the focused element draws.
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("text");
    const ritaEntry = page.locator(`#list button[data-conversation="${rita.id}"]`);
    expect(await ritaEntry.getAttribute("aria-current")).toBe("true");
    expect(await ritaEntry.evaluate((b) => getComputedStyle(b).outlineStyle)).toBe("none");
    const fills = await page.locator("#list button").evaluateAll((bs) => bs.map((b) => getComputedStyle(b).backgroundColor));
    expect(new Set(fills).size).toBe(2);
    // The keyboard's focus, moved along the list, is the one outline in it.
    await page.locator("#list button").first().focus();
    await page.keyboard.press("Tab");
    expect(await page.evaluate(() => document.activeElement?.closest("#list") !== null)).toBe(true);
    const outlines = await page.locator("#list button").evaluateAll((bs) => bs.map((b) => getComputedStyle(b).outlineStyle));
    expect(outlines.filter((o) => o !== "none")).toHaveLength(1);

    // The policy opened: the log still has room for lines (10rem), the pane scrolls instead.
    await page.locator("#policy summary").click();
    await expect.poll(() => page.locator("#policy-text").isVisible()).toBe(true);
    const room = await page.locator("#log").evaluate((l) => ({ height: l.clientHeight, rem: parseFloat(getComputedStyle(document.documentElement).fontSize) }));
    expect(room.height).toBeGreaterThanOrEqual(10 * room.rem - 1);
    expect(await page.locator("#log li.line").count()).toBe(3);

    // A file sent from the keyboard: the focus comes back to the answer, not the page's body.
    const path = join(s.root, "receipt.txt");
    writeFileSync(path, "receipt 4411");
    await page.locator("#file").focus();
    await page.locator("#file").setInputFiles(path);
    await expect.poll(() => page.locator("#upload-status").getAttribute("data-done"), { timeout: 30_000 }).toBe("true");
    await expect.poll(() => texts(page)).toEqual(["my order never arrived", "set the status to waiting", "set the status to open", "receipt.txt, 12 B"]);
    await expectClipIcon(page.locator("#log li.line", { hasText: "receipt.txt" }));
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("text");
    await page.keyboard.type("that is the receipt");
    await page.keyboard.press("Enter");
    await expect.poll(() => texts(page)).toContain("that is the receipt");

    // At 600 px the action bar wraps, not the words of its labels ("Transfer to agent" took
    // three lines), and nothing of it sticks out of the pane.
    await page.setViewportSize({ width: 600, height: 600 });
    const bar = await page.locator("#tools").evaluate((t) => {
      const right = (t.closest("#pane") ?? t).getBoundingClientRect().right;
      const parts = Array.from(t.querySelectorAll("label, select, input, button")).map((e) => e.getBoundingClientRect());
      const label = t.querySelector("label[for=transfer-to]");
      return {
        label: label?.textContent ?? "",
        labelHeight: label?.getBoundingClientRect().height ?? 0,
        line: parseFloat(getComputedStyle(label ?? t).lineHeight),
        out: parts.filter((r) => r.right > right + 0.5).length,
      };
    });
    expect(bar.label).toBe("Transfer to agent");
    expect(bar.labelHeight).toBeLessThanOrEqual(bar.line + 2);
    expect(bar.out).toBe(0);
    expect(s.problems).toEqual([]);
    await page.close();
  });
});
