/**
 * A withheld item's line in the widget is one element updated in place (Chromium; PROTOCOL
 * §13.10, issue 20): the page's WebSocket passes through a relay (`relayInTheMiddle`) that
 * withholds one of the agent's messages from its push and from every history page. The widget
 * shows the hole, and as the agent writes on (each message moves the cursor, so the hole is asked
 * for again) its line counts the requests — "asked 1 of 3 times", "asked 2 of 3 times" — and
 * then says it was withheld for good, always the same element. A second hole later redraws the
 * runs: the first, unchanged, is not touched at all (no mutation, the same node).
 */
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { chromiumSuite, relayInTheMiddle, watchPage, type Frame } from "../../client/test/chromium.js";

/** What the page recorded of hole `from`'s line: every text it showed and every element it was. */
interface HoleTrace {
  texts: string[];
  tries: string[];
  /** How many distinct elements showed it. */
  elements: number;
}

declare global {
  interface Window {
    /** Installed by `traceHoles`: hole `from` → its trace. */
    holeTrace?: Record<string, { texts: string[]; tries: string[]; elements: Element[] }>;
  }
}

/** Records, from now on, each state of every `li.withheld` line of `#log` (by its `data-from`). */
async function traceHoles(page: Page): Promise<void> {
  await page.evaluate(() => {
    const trace: NonNullable<Window["holeTrace"]> = {};
    window.holeTrace = trace;
    const log = document.getElementById("log");
    if (log === null) throw new Error("no log");
    const look = (): void => {
      for (const li of Array.from(log.querySelectorAll<HTMLLIElement>(":scope > li.withheld:not(.more)"))) {
        const from = li.dataset.from ?? "";
        const t = (trace[from] ??= { texts: [], tries: [], elements: [] });
        if (!t.elements.includes(li)) t.elements.push(li);
        const text = li.textContent ?? "";
        if (t.texts.at(-1) !== text) t.texts.push(text);
        const tries = li.dataset.tries ?? "";
        if (t.tries.at(-1) !== tries) t.tries.push(tries);
      }
    };
    new MutationObserver(look).observe(log, { subtree: true, childList: true, characterData: true, attributes: true });
    look();
  });
}

/** The trace of hole `from`. */
async function holeTrace(page: Page, from: number): Promise<HoleTrace | null> {
  return page.evaluate((f) => {
    const t = window.holeTrace?.[String(f)];
    return t === undefined ? null : { texts: t.texts, tries: t.tries, elements: t.elements.length };
  }, from);
}

describe("a withheld item's line updated in place, in the widget (Chromium)", () => {
  const s = chromiumSuite("widget-holes-in-place");

  it("counts the requests on one element, says when it is given up, and leaves it untouched when another hole comes", async () => {
    const page = await s.browser.newPage();
    watchPage(page, s.problems, false);
    /** Withhold the next item pushed (and that number from every history page) when set. */
    let withholdNext = false;
    const withheld = new Set<number>();
    await relayInTheMiddle(page, {
      toPage: (frame) => {
        const pushed = (frame.push as Frame | undefined)?.item as Frame | undefined;
        if (typeof pushed?.seq === "number" && (withholdNext || withheld.has(pushed.seq))) {
          withholdNext = false;
          withheld.add(pushed.seq);
          return [];
        }
        const items = ((frame.response as Frame | undefined)?.body as Frame | undefined)?.items as Frame | undefined;
        if (items !== undefined && Array.isArray(items.items)) items.items = (items.items as Frame[]).filter((it) => !withheld.has(it.seq as number));
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
    await traceHoles(page);

    // The agent's first answer is withheld; each later message moves the cursor past it, and the
    // widget asks for it again — up to three times — each request counted on its line.
    withholdNext = true;
    await s.org.agent(["send", "--conversation", id, "this one never arrives"]);
    const agentSays: string[] = [];
    const triesOf = (f: number): Promise<string | undefined> => holeTrace(page, f).then((t) => t?.tries.at(-1));
    for (let i = 1; i <= 6; i++) {
      const said = `answer ${i}`;
      agentSays.push(said);
      await s.org.agent(["send", "--conversation", id, said]);
      await expect.poll(texts, { timeout: 20_000 }).toEqual(["where is my parcel?", ...agentSays]);
      const f = [...withheld][0];
      if (f !== undefined && (await triesOf(f)) === "3") break;
    }
    expect(withheld.size).toBe(1);
    const from = [...withheld][0] ?? 0;
    await expect.poll(() => triesOf(from), { timeout: 20_000 }).toBe("3");
    // Each request on the same element: its count advancing (each state told), then given up.
    const hole = await holeTrace(page, from);
    expect(hole?.elements).toBe(1);
    const counts = (hole?.tries ?? []).map(Number);
    expect(counts.at(-1)).toBe(3);
    expect(counts.every((c, i) => i === 0 || c > (counts[i - 1] ?? Infinity))).toBe(true);
    expect(counts.filter((c) => c === 1 || c === 2).length).toBeGreaterThan(0);
    const words = (c: number): string =>
      c < 3
        ? `Item #${from} has not arrived: asking the relay again (asked ${c} of 3 times).`
        : `Item #${from} was not delivered: the relay withheld it for good (asked ${c} times). Something may be missing here; ask ${s.org.org} if in doubt.`;
    expect(hole?.texts).toEqual(counts.map(words));
    const line = page.locator(`#log > li.withheld[data-from="${from}"]`);
    expect(await line.getAttribute("data-state")).toBe("withheld");
    // In its place: after the customer's message, before the agent's first answer that came.
    expect(await page.locator("#log > li").evaluateAll((els) => els.map((e) => (e.classList.contains("withheld") ? "hole" : (e.querySelector(".text")?.textContent ?? ""))))).toEqual([
      "where is my parcel?",
      "hole",
      ...agentSays,
    ]);

    // From now on, nothing may touch the first hole's element.
    await page.evaluate((f) => {
      const li = document.querySelector(`#log > li.withheld[data-from="${f}"]`);
      if (li === null) throw new Error("no hole");
      const w = window as unknown as { touched: number; firstHole: Element };
      w.touched = 0;
      w.firstHole = li;
      new MutationObserver((records) => (w.touched += records.length)).observe(li, { subtree: true, childList: true, characterData: true, attributes: true });
    }, from);
    // A second hole: the runs are told again, both of them.
    withholdNext = true;
    await s.org.agent(["send", "--conversation", id, "this one is withheld too"]);
    await s.org.agent(["send", "--conversation", id, "and the last"]);
    await expect.poll(() => page.locator("#log > li.withheld").count(), { timeout: 20_000 }).toBe(2);
    expect(withheld.size).toBe(2);
    const second = [...withheld][1] ?? 0;
    // Told as found and again as asked for (the runs redrawn each time), the first one unchanged.
    await expect.poll(() => holeTrace(page, second).then((t) => t?.tries.filter((n) => n !== "0").length ?? 0), { timeout: 20_000 }).toBeGreaterThan(0);
    const untouched = await page.evaluate((f) => {
      const w = window as unknown as { touched: number; firstHole: Element };
      return { touched: w.touched, same: w.firstHole === document.querySelector(`#log > li.withheld[data-from="${f}"]`), connected: w.firstHole.isConnected };
    }, from);
    expect(untouched).toEqual({ touched: 0, same: true, connected: true });
    expect((await holeTrace(page, from))?.elements).toBe(1);
    expect(s.problems).toEqual([]);
    await page.close();
  });
});
