/**
 * What the console shows of an answer the relay did not answer (issues 22, 23), in Chromium
 * against the real relay and binaries, as the widget's suite does
 * (`web/widget/test/send-unanswered.e2e.test.ts`): the page's request timeout runs out on a
 * send whose answer the test dropped (stored) or whose frame it dropped (never stored), and the
 * reconnection is held (`unansweredMiddle`) so the state in between stands still.
 *
 * What must hold: the answer shows in the log as the agent's, "not confirmed yet" — no alert
 * "Not sent", the box cleared (sent again, it would be a second message); once the next
 * session's read shows it stored, an ordinary line, once, read by the customer once; not
 * stored, the line says so with "Send again", and only that press sends it, once. Screenshots
 * at 1400 px: `console-unanswered-{pending,confirmed,not-stored}.png`.
 */
import { join } from "node:path";
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { SHOTS, chromiumSuite } from "../../client/test/chromium.js";
import { cli } from "../../client/test/relay.js";
import { unansweredMiddle, type UnansweredMiddle } from "../../client/test/unanswered-middle.js";
import { consolePage, customerWrites } from "./console-page.js";

/** The page's request timeout (15 s) and its reconnection, with room for a loaded machine. */
const TIMED_OUT = { timeout: 60_000, interval: 500 };

describe("an answer the relay did not answer, in the console (Chromium)", () => {
  const s = chromiumSuite("console-send-unanswered", { viewport: { width: 1400, height: 800 } });
  /** The log's stored lines (not the unanswered ones). */
  const lines = (page: Page): Promise<string[]> => page.locator("#log li.line:not(.unanswered) .text").allTextContents();
  const unanswered = (page: Page): Promise<{ text: string; state: string; says: string }[]> =>
    page.locator("#log li.unanswered").evaluateAll((lis) => lis.map((li) => ({ text: li.querySelector(".text")?.textContent ?? "", state: (li as HTMLElement).dataset.state ?? "", says: li.querySelector(".meta")?.textContent ?? "" })));

  /**
   * The suite's one console page (the profile's vault is unlocked once: a second page opens
   * unlocked), its connections through the test.
   */
  let shared: { page: Page; m: UnansweredMiddle } | null = null;
  const consoleOnce = async (): Promise<{ page: Page; m: UnansweredMiddle }> => {
    if (shared !== null) return shared;
    const box: { m?: UnansweredMiddle } = {};
    const page = await consolePage(s, true, async (p) => (box.m = await unansweredMiddle(p)));
    if (box.m === undefined) throw new Error("the page's connections are not through the test");
    shared = { page, m: box.m };
    return shared;
  };

  /** The console with `name`'s conversation open and answered once. */
  async function opened(name: string): Promise<{ page: Page; m: UnansweredMiddle; customer: { home: string; id: string } }> {
    const { page, m } = await consoleOnce();
    const customer = await customerWrites(s, page, name, "is anyone there?");
    await expect.poll(() => page.locator("#send").isEnabled(), { timeout: 20_000 }).toBe(true);
    await page.locator("#text").fill("yes, how can I help?");
    await page.locator("#text").press("Enter");
    await expect.poll(() => lines(page)).toEqual(["is anyone there?", "yes, how can I help?"]);
    return { page, m, customer };
  }
  const customerSaw = async (customer: { home: string; id: string }, text: string): Promise<number> => (await cli(customer.home, s.relay.url, ["history", "--conversation", customer.id])).split(text).length - 1;

  /** Sends `text`, armed to go unanswered, and waits for the page to say it is not confirmed yet. */
  async function sendUnanswered(page: Page, m: UnansweredMiddle, text: string): Promise<void> {
    m.holdReconnect();
    await page.locator("#text").fill(text);
    await page.locator("#text").press("Enter");
    await expect.poll(() => page.locator("#log li.unanswered").count(), TIMED_OUT).toBe(1);
    expect(await unanswered(page)).toEqual([{ text, state: "pending", says: expect.stringContaining("Not confirmed yet") as unknown as string }]);
    expect(m.dropped).toBe(true);
    expect(await page.locator("#text").inputValue()).toBe("");
    expect(await page.locator("#alert").isHidden()).toBe(true);
    expect(await lines(page)).not.toContain(text);
    await expect.poll(() => m.held).toBeGreaterThan(0);
  }

  it("stored: shown as not confirmed yet, then as sent once the next session reads it back — once, no alert", async () => {
    const { page, m, customer } = await opened("una");
    const TEXT = "your parcel left the depot this morning";
    m.dropNextAnswer();
    await sendUnanswered(page, m, TEXT);
    await page.screenshot({ path: join(SHOTS, "console-unanswered-pending.png") });

    m.release();
    await expect.poll(() => unanswered(page), TIMED_OUT).toEqual([]);
    await expect.poll(() => lines(page)).toEqual(["is anyone there?", "yes, how can I help?", TEXT]);
    expect(await page.locator("#alert").isHidden()).toBe(true);
    await expect.poll(() => page.locator("#conn").getAttribute("data-state")).toBe("online");
    await page.screenshot({ path: join(SHOTS, "console-unanswered-confirmed.png") });
    expect(await customerSaw(customer, TEXT)).toBe(1);
    expect(s.problems).toEqual([]);
  });

  it("not stored: says so with a Send again button; only the press sends it, once", async () => {
    const { page, m, customer } = await opened("noor");
    const TEXT = "this answer never reached the relay";
    m.dropNextSend();
    await sendUnanswered(page, m, TEXT);

    m.release();
    await expect.poll(() => unanswered(page), TIMED_OUT).toEqual([{ text: TEXT, state: "not_stored", says: "Not sent: the relay did not store this message." }]);
    await expect.poll(() => page.locator("#conn").getAttribute("data-state")).toBe("online");
    expect(await customerSaw(customer, TEXT)).toBe(0);
    expect(await lines(page)).not.toContain(TEXT);
    await page.screenshot({ path: join(SHOTS, "console-unanswered-not-stored.png") });

    await page.locator("#log li.unanswered button.again").click();
    await expect.poll(() => lines(page)).toContain(TEXT);
    await expect.poll(() => unanswered(page)).toEqual([]);
    expect((await lines(page)).filter((l) => l === TEXT)).toHaveLength(1);
    expect(await customerSaw(customer, TEXT)).toBe(1);
    expect(await page.locator("#alert").isHidden()).toBe(true);
    await page.close();
    expect(s.problems).toEqual([]);
  });
});
