/**
 * A relay that makes a thousand holes, in the customer widget (Chromium; PROTOCOL §13.10,
 * issue 20): after the customer wrote and the agent answered, the page's WebSocket passes through
 * a hostile relay (`relayInTheMiddle`) that answers every history read past the conversation's last
 * item with the agent's message again at every other number (each refused as a duplicate, yet
 * each arrived: for a customer, who reads every item, the number before it is a hole). Reloaded,
 * the widget reads them, asks for the holes again after the agent's next message and tells each
 * as withheld; it draws the first runs on lines of their own and one line summing up the rest,
 * with the first runs listed behind a disclosure: a bounded number of items, not a thousand.
 * Screenshot `widget-withheld-many.png`.
 */
import { join } from "node:path";
import { MAX_HOLES } from "@sealdesk/client";
import { HOLES_DRAWN, HOLES_LISTED, customerHoleText } from "@sealdesk/client/ui";
import { describe, expect, it } from "vitest";
import { SHOTS, chromiumSuite, relayInTheMiddle, watchPage, withheldItems, type Frame } from "../../client/test/chromium.js";

/** Holes the relay makes. */
const HOLES = 1000;
/** Items in one invented history page (a frame holds so many). */
const PER_PAGE = 100;

describe("a relay making a thousand holes, in the widget (Chromium)", () => {
  const s = chromiumSuite("widget-holes-many");

  it("draws a handful of items for them: the first runs, and one line summing up the rest", async () => {
    const page = await s.browser.newPage();
    watchPage(page, s.problems, false);
    /** The highest sequence number the relay gave (stored, pushed or paged). */
    let top = 0;
    /** The agent's message as pushed (raw), served again under invented numbers once armed. */
    let copy: Frame | null = null;
    /** Where the invented numbers start once armed. */
    let base: number | null = null;
    const afterOf = new Map<number, number>();
    await relayInTheMiddle(page, {
      toRelay: (frame) => {
        const r = frame.request as Frame | undefined;
        const h = (r?.body as Frame | undefined)?.history as Frame | undefined;
        if (r !== undefined && h !== undefined) afterOf.set(r.id as number, h.after as number);
        return frame;
      },
      toPage: (frame) => {
        const response = frame.response as Frame | undefined;
        const body = response?.body as Frame | undefined;
        const pushed = (frame.push as Frame | undefined)?.item as Frame | undefined;
        const stored = (body?.stored as Frame | undefined)?.seq;
        const items = body?.items as Frame | undefined;
        if (base === null && pushed !== undefined) copy = pushed;
        for (const seq of [pushed?.seq, stored, ...(Array.isArray(items?.items) ? (items.items as Frame[]).map((it) => it.seq) : [])]) if (typeof seq === "number") top = Math.max(top, seq);
        const after = response === undefined ? undefined : afterOf.get(response.id as number);
        if (base !== null && copy !== null && items !== undefined && after !== undefined && after >= base) {
          // Past the last real item: the agent's message again at every other number (each
          // refused as a replay, yet it arrived: the number before it is a hole), PER_PAGE a page.
          const end = base + 2 * HOLES;
          const page: Frame[] = [];
          for (let n = after + 1; n <= end && page.length < PER_PAGE; n++) if ((n - base) % 2 === 0) page.push({ ...copy, seq: n });
          const last = page.reduce((m, it) => Math.max(m, it.seq as number), after);
          items.items = page;
          delete items.skipped;
          items.more = last < end;
          if (last < end) delete items.head;
          else items.head = end;
        }
        return frame;
      },
    });
    await page.goto(`${s.relay.origin}/?org=${s.org.org}&fp=${encodeURIComponent(s.org.fingerprint)}`);
    await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 30_000 }).toBe("online");
    await page.locator("#text").fill("where is my parcel?");
    await page.locator("#text").press("Enter");
    const texts = (): Promise<string[]> => page.locator("#log li.line .text").allTextContents();
    await expect.poll(texts).toEqual(["where is my parcel?"]);
    const id = (await page.locator("body").getAttribute("data-conversation")) ?? "";
    await s.org.agent(["send", "--conversation", id, "it is on its way"]);
    await expect.poll(texts, { timeout: 20_000 }).toEqual(["where is my parcel?", "it is on its way"]);

    // Armed, then reloaded: the widget reads the conversation past its cursor and meets the runs;
    // the agent's next message (a push) has it ask for them again, and tell them withheld.
    base = top;
    await page.reload();
    await expect.poll(texts, { timeout: 20_000 }).toEqual(["where is my parcel?", "it is on its way"]);
    await s.org.agent(["send", "--conversation", id, "are you still there?"]);
    const more = page.locator("#log > li.withheld.more");
    await expect.poll(() => more.count(), { timeout: 30_000 }).toBe(1);
    const withheld = await withheldItems(page);
    expect(withheld).toHaveLength(HOLES_DRAWN);
    const own = withheld.slice(0, -1);
    for (const [i, h] of own.entries()) {
      expect(h.more).toBe(false);
      expect(h.from).toBeGreaterThan(base);
      if (i > 0) expect(h.from).toBeGreaterThan(own[i - 1]?.from ?? 0);
    }
    // Each in the words of its requests so far, read with its count at one instant (the count
    // goes on as the widget asks again: `holes-in-place.e2e.test.ts` follows it).
    const worded = await page
      .locator("#log > li.withheld:not(.more)")
      .evaluateAll((els) => els.map((e) => ({ from: Number((e as HTMLElement).dataset.from), tries: Number((e as HTMLElement).dataset.tries), text: e.textContent ?? "" })));
    expect(worded).toHaveLength(HOLES_DRAWN - 1);
    for (const h of worded) expect(h.text).toBe(customerHoleText({ from: h.from, to: h.from, tries: h.tries }, s.org.org));
    // Read at one instant: the runs are live (the agent's real message may still close the first).
    const snap = await more.evaluate((m) => ({
      first: Number((m as HTMLElement).dataset.from),
      summed: Number((m as HTMLElement).dataset.runs),
      said: m.querySelector(":scope > p.said")?.textContent ?? "",
      listed: m.querySelectorAll("ul > li").length,
      firstListed: m.querySelector("ul > li")?.textContent ?? "",
    }));
    const { first, summed } = snap;
    const last = base + 2 * HOLES - 1;
    // The widget keeps at most MAX_HOLES runs (the newest merged into one summary run that keeps
    // the count of numbers missing): the runs summed up are those kept past the ones drawn, the
    // items every number still missing from the first summed to the last.
    expect(summed).toBeLessThanOrEqual(MAX_HOLES - (HOLES_DRAWN - 1));
    expect(summed).toBeGreaterThan(MAX_HOLES - 2 * HOLES_DRAWN);
    const items = (last - first) / 2 + 1;
    expect(items).toBeGreaterThan(HOLES - 2 * HOLES_DRAWN);
    expect(snap.said).toBe(
      `The relay withheld ${summed} more runs of items (${items} items in all, #${first} to #${last}) in this conversation — it may be hiding parts of it. Something may be missing here; ask ${s.org.org} if in doubt.`,
    );
    expect(snap.listed).toBe(HOLES_LISTED);
    expect(snap.firstListed).toBe(`Item #${String(first)}`);
    const elements = await page.locator("#log").evaluate((l) => l.querySelectorAll("*").length);
    expect(elements).toBeLessThan(300);
    await more.scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(SHOTS, "widget-withheld-many.png") });
    await more.locator("summary").click();
    expect(await more.locator("ul > li").count()).toBe(HOLES_LISTED);
    expect(await more.locator("details").evaluate((d) => (d as HTMLDetailsElement).open)).toBe(true);
    expect(s.problems).toEqual([]);
    await page.close();
  });
});
