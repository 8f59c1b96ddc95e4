/**
 * "New messages below" in the customer's widget (Chromium against the real relay serving
 * web/dist; issue 23), as in the console (`console/test/new-below.e2e.test.ts`; the code is
 * `@sealdesk/client/ui`'s `newBelow`): a customer who scrolled up in the chat to read is not moved
 * when the agent writes — the log stays where it was — and a button says there is more below.
 * Pressed, it brings the log to its end and goes, the focus in the message box; scrolling to the
 * end by hand makes it go too. At the end already, the log follows the new line and no button
 * shows — also after the frame was made shorter, its end out of sight (the customer did not
 * scroll). What the customer sends — a message or a file — is shown wherever
 * they had scrolled: the log goes to its end, and no hint shows. A consent or data panel that
 * took the log's place in the small frame (`panels.ts`) gives it back as the customer left it:
 * scrolled up, the same message at the same place (with the hint if the agent wrote meanwhile,
 * and when a notice above it was confirmed and redrawn taller meanwhile, end to end: a dispute
 * closed at once, witnessed by a trustee while the panel is open); at the end, what came
 * meanwhile in sight. Screenshots
 * `widget-new-below-420.png` (the hint) and `widget-own-send-420.png` / `-1000.png`. The steps
 * and assertions of the first two are the console's too (`client/test/new-below-scenario.ts`).
 */
import type { Locator, Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { NARROW, WIDE, chromiumSuite, watchPage, type ChromiumSuite } from "../../client/test/chromium.js";
import { anchorOf, fromEnd, samePlace, scrollPart, type Anchor } from "../../client/test/log-scroll.js";
import { hintScenario, ownSendScenario, texts } from "../../client/test/new-below-scenario.js";

/** An agent's message long enough that a few of them overflow the log. */
const long = (n: number): string => `${n}: ${"your parcel left our warehouse on Monday and should reach you soon; ".repeat(5)}`;

/**
 * A widget page of the suite's org, watched, in which the customer wrote `first`, and the agent
 * answered with five long lines (the log overflows), after `between` (given the page and the
 * conversation id) ran. Returns the page and the conversation id.
 */
async function chatting(s: ChromiumSuite, first: string, between?: (page: Page, id: string) => Promise<void>): Promise<{ page: Page; id: string }> {
  const page = await s.browser.newPage();
  watchPage(page, s.problems, false);
  await page.goto(`${s.relay.origin}/?org=${s.org.org}&fp=${encodeURIComponent(s.org.fingerprint)}`);
  await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 20_000 }).toBe("online");
  await page.locator("#text").fill(first);
  await page.locator("#text").press("Enter");
  await expect.poll(() => texts(page), { timeout: 20_000 }).toEqual([first]);
  const id = (await page.locator("body").getAttribute("data-conversation")) ?? "";
  await between?.(page, id);
  for (let n = 0; n < 5; n++) await s.org.agent(["send", "--conversation", id, long(n)]);
  await expect.poll(async () => (await texts(page)).length, { timeout: 30_000 }).toBe(6);
  return { page, id };
}

describe("the new-messages hint in the widget (Chromium)", () => {
  const s = chromiumSuite("widget-new-below", { viewport: NARROW });

  it("keeps a scrolled-up log still and offers the way down", async () => {
    const { page, id } = await chatting(s, "where is my parcel?");
    await hintScenario({
      page,
      root: s.root,
      problems: s.problems,
      peerSends: (text) => s.org.agent(["send", "--conversation", id, text]).then(() => undefined),
      // The frame made shorter (a phone's keyboard opening, the iframe resized).
      shorten: async () => {
        await page.setViewportSize({ width: NARROW.width, height: NARROW.height - 160 });
        return () => page.setViewportSize(NARROW);
      },
      endOutOfSight: true,
      hintShot: "widget-new-below-420.png",
    });
  });
});

describe("the customer's own message in a scrolled-up widget log (Chromium)", () => {
  const s = chromiumSuite("widget-own-send", { viewport: NARROW });

  it("brings a scrolled-up log to its end when the customer sends a message or a file", async () => {
    const { page, id } = await chatting(s, "my parcel is late");
    await ownSendScenario({
      page,
      root: s.root,
      problems: s.problems,
      peerSends: (text) => s.org.agent(["send", "--conversation", id, text]).then(() => undefined),
      sizes: [NARROW, WIDE],
      words: (width) => ({ peer: `anything else at ${width}?`, own: `no, thank you (${width})` }),
      shot: (width) => `widget-own-send-${width}.png`,
      file: { name: "receipt.txt", contents: "receipt 4471" },
      fileShown: () => expect.poll(() => texts(page), { timeout: 30_000 }).toContain("receipt.txt, 12 B"),
    });
  });
});

/** Opens the panel `id` by its summary, as the customer does, and waits until it has the log's place. */
async function takeOver(page: Page, id: string): Promise<void> {
  await page.locator(`#${id} > summary`).click();
  await expect.poll(() => page.locator(`#${id} > .back`).isVisible()).toBe(true);
  await expect.poll(() => page.locator("#log").isVisible()).toBe(false);
}

/** Closes the panel `id` with its "Back to the chat" button and waits until the log is back. */
async function backToChat(page: Page, id: string): Promise<void> {
  await page.locator(`#${id} > .back`).click();
  await expect.poll(() => page.locator("#log").isVisible()).toBe(true);
}

describe("the reader's place in the widget log after a panel took its place (Chromium)", () => {
  const s = chromiumSuite("widget-panel-place", { viewport: NARROW });

  it("gives the log back where the customer left it, with what came meanwhile below", async () => {
    // A notice above what the customer will read, not yet confirmed: the master closed a
    // dispute ticket at once, no trustee having cosigned a log holding the close.
    const notice = (p: Page): Locator => p.locator("#log li.notice");
    const { page, id } = await chatting(s, "can I change the address?", async (p, conv) => {
      await s.org.as("owner", ["dispute", "open", "--conversation", conv, "--reason", "address check"]);
      const ticket = (JSON.parse(await s.org.as("owner", ["dispute", "list", "--json"])) as { tickets: { ticket: string }[] }).tickets[0]?.ticket ?? "";
      await s.org.as("owner", ["dispute", "close", "--ticket", ticket, "--reason", "opened by mistake"]);
      await expect.poll(() => notice(p).count(), { timeout: 20_000 }).toBe(1);
      expect(await notice(p).getAttribute("data-witnessed")).toBe("false");
    });
    const hint = page.locator("#new-below");
    // Halfway up, reading an older message: each panel that takes the log's place (consent,
    // your data), opened and closed, gives the log back with that message where it was.
    await scrollPart(page, 0.5);
    const reading = await anchorOf(page);
    expect(reading).not.toBeNull();
    expect(await fromEnd(page)).toBeGreaterThan(100);
    expect(await page.locator("#log").evaluate((l) => l.scrollTop)).toBeGreaterThan(100);
    for (const panel of ["consent", "your-data"]) {
      await takeOver(page, panel);
      await backToChat(page, panel);
      await expect.poll(() => anchorOf(page), { message: `the place after ${panel}` }).toEqual(reading);
      expect(await hint.isVisible()).toBe(false);
    }

    // The notice, wholly above the message read, redrawn in place while the data panel has the
    // log's place: a trustee cosigns the log, and the widget's next check of the notice finds
    // it confirmed (its plain sentence and "Details" become what it says and its proof). No
    // scroll anchoring runs on a log without a box, yet the message read comes back where it was.
    expect(await notice(page).evaluate((n, seq) => {
      const line = n.parentElement?.querySelector(`li.line[data-seq="${seq}"]`);
      return line !== null && line !== undefined && n.getBoundingClientRect().bottom <= (n.parentElement?.getBoundingClientRect().top ?? 0) && (n.compareDocumentPosition(line) & Node.DOCUMENT_POSITION_FOLLOWING) !== 0;
    }, reading?.seq ?? "")).toBe(true);
    const unconfirmedHeight = await notice(page).evaluate((n) => n.getBoundingClientRect().height);
    await takeOver(page, "your-data");
    await s.org.as("t1", ["trustee", "serve", "--once"]);
    await expect.poll(() => notice(page).getAttribute("data-verified"), { timeout: 30_000 }).toBe("true");
    await backToChat(page, "your-data");
    // Redrawn to another height (else this would not test the place kept).
    expect(await notice(page).evaluate((n) => n.getBoundingClientRect().height)).not.toBe(unconfirmedHeight);
    // The same message at the top, within a pixel (`samePlace`: the notice's heights are not
    // whole pixels, the log's scroll position is).
    await expect.poll(() => anchorOf(page), { message: "the place after a notice above was redrawn" }).toSatisfy((a: Anchor | null) => samePlace(a, reading));
    expect(await hint.isVisible()).toBe(false);

    // An agent's message while the consent panel has the log's place: the log comes back where
    // it was, and "New messages below" says what came.
    await takeOver(page, "consent");
    await s.org.agent(["send", "--conversation", id, "which address?"]);
    await expect.poll(() => texts(page), { timeout: 30_000 }).toContain("which address?");
    await backToChat(page, "consent");
    await expect.poll(() => anchorOf(page)).toSatisfy((a: Anchor | null) => samePlace(a, reading));
    await expect.poll(() => hint.isVisible()).toBe(true);

    // At the end when the panel opened: the log follows what came meanwhile, no hint.
    await hint.click();
    await expect.poll(() => fromEnd(page)).toBeLessThan(24);
    await takeOver(page, "your-data");
    await s.org.agent(["send", "--conversation", id, "done, anything else?"]);
    await expect.poll(() => texts(page), { timeout: 30_000 }).toContain("done, anything else?");
    await backToChat(page, "your-data");
    await expect.poll(() => fromEnd(page)).toBeLessThan(24);
    expect(await page.locator("#log li.line .text").last().textContent()).toBe("done, anything else?");
    expect(await hint.isVisible()).toBe(false);
    expect(s.problems).toEqual([]);
    await page.close();
  });
});
