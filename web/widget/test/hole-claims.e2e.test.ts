/**
 * The relay's false claim about a withheld run, said on the run's own line in the widget
 * (Chromium; PROTOCOL §13.10, issue 20). The page's WebSocket passes through a hostile relay
 * (`relayInTheMiddle`) that withholds one of the agent's messages from its push and from every
 * history page. The widget shows the hole and asks for it again; from then on the relay's
 * history pages name the number as `skipped` — items of epoch 0 that this customer may not
 * read, which is false (a customer is in every epoch of her conversation). The same line, the
 * same element, then says what the relay claimed and that it is false. A second message is
 * withheld with a claim from the start, this time that it is a consent or notice meant for
 * someone else: its line says that as soon as the first request for it is answered.
 */
import { customerHoleText } from "@sealdesk/client/ui";
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { chromiumSuite, relayInTheMiddle, watchPage, type Frame } from "../../client/test/chromium.js";

declare global {
  interface Window {
    /** Installed by `traceHoles`: hole `from` → every text it showed and every element it was. */
    claimTrace?: Record<string, { texts: string[]; elements: Element[] }>;
  }
}

/** Records, from now on, each text of every `li.withheld` line of `#log` (by its `data-from`). */
async function traceHoles(page: Page): Promise<void> {
  await page.evaluate(() => {
    const trace: NonNullable<Window["claimTrace"]> = {};
    window.claimTrace = trace;
    const log = document.getElementById("log");
    if (log === null) throw new Error("no log");
    const look = (): void => {
      for (const li of Array.from(log.querySelectorAll<HTMLLIElement>(":scope > li.withheld:not(.more)"))) {
        const t = (trace[li.dataset.from ?? ""] ??= { texts: [], elements: [] });
        if (!t.elements.includes(li)) t.elements.push(li);
        const text = li.textContent ?? "";
        if (t.texts.at(-1) !== text) t.texts.push(text);
      }
    };
    new MutationObserver(look).observe(log, { subtree: true, childList: true, characterData: true, attributes: true });
    look();
  });
}

/**
 * The texts hole `from`'s line showed, how many elements showed it, and the line as it is now
 * (its text and `data-tries`) — read in one go, so a request for the hole made meanwhile (the
 * widget keeps asking) cannot put the line ahead of the trace, or the tries ahead of the text.
 */
function holeTrace(page: Page, from: number): Promise<{ texts: string[]; elements: number; text: string; tries: number } | null> {
  return page.evaluate((f) => {
    const t = window.claimTrace?.[String(f)];
    const li = document.querySelector<HTMLLIElement>(`#log > li.withheld[data-from="${String(f)}"]`);
    if (t === undefined || li === null) return null;
    return { texts: t.texts, elements: t.elements.length, text: li.textContent ?? "", tries: Number(li.dataset.tries) };
  }, from);
}

describe("the relay's false claim about a withheld run, on its line in the widget (Chromium)", () => {
  const s = chromiumSuite("widget-hole-claims");

  it("says on the run's own line, updated in place, what the relay claimed and that it is false", async () => {
    const page = await s.browser.newPage();
    watchPage(page, s.problems, false);
    /** Withhold the next item pushed when set: with a claim (the epoch, or null) from the start, or none. */
    let withholdNext: { claim: number | null | undefined } | null = null;
    /** The numbers withheld, each with the claim history pages make about it (undefined: none yet). */
    const withheld = new Map<number, number | null | undefined>();
    await relayInTheMiddle(page, {
      toPage: (frame) => {
        const pushed = (frame.push as Frame | undefined)?.item as Frame | undefined;
        if (typeof pushed?.seq === "number" && (withholdNext !== null || withheld.has(pushed.seq))) {
          if (withholdNext !== null) withheld.set(pushed.seq, withholdNext.claim);
          withholdNext = null;
          return [];
        }
        const items = ((frame.response as Frame | undefined)?.body as Frame | undefined)?.items as Frame | undefined;
        if (items !== undefined && Array.isArray(items.items)) {
          const served = items.items as Frame[];
          // Each withheld number the page covers is left out, and named as skipped once it carries a claim.
          const skipped: Frame[] = [];
          for (const [seq, claim] of withheld) {
            if (!served.some((it) => it.seq === seq)) continue;
            if (claim !== undefined) skipped.push(claim === null ? { from: seq, to: seq } : { from: seq, to: seq, epoch: claim });
          }
          items.items = served.filter((it) => !withheld.has(it.seq as number));
          if (skipped.length > 0) items.skipped = [...((items.skipped as Frame[] | undefined) ?? []), ...skipped];
        }
        return frame;
      },
    });
    await page.goto(`${s.relay.origin}/?org=${s.org.org}&fp=${encodeURIComponent(s.org.fingerprint)}`);
    await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 30_000 }).toBe("online");
    await page.locator("#text").fill("where is my refund?");
    await page.locator("#text").press("Enter");
    const texts = (): Promise<string[]> => page.locator("#log li.line .text").allTextContents();
    await expect.poll(texts).toEqual(["where is my refund?"]);
    const id = (await page.locator("body").getAttribute("data-conversation")) ?? "";
    await traceHoles(page);

    // The agent's first answer is withheld, with no claim yet: the next message shows the hole.
    withholdNext = { claim: undefined };
    await s.org.agent(["send", "--conversation", id, "this one never arrives"]);
    await s.org.agent(["send", "--conversation", id, "answer 1"]);
    await expect.poll(texts, { timeout: 20_000 }).toEqual(["where is my refund?", "answer 1"]);
    expect(withheld.size).toBe(1);
    const first = [...withheld.keys()][0] ?? 0;
    const line = page.locator(`#log > li.withheld[data-from="${first}"]`);
    await expect.poll(() => line.count(), { timeout: 20_000 }).toBe(1);
    expect(await line.getAttribute("data-claimed")).toBeNull();
    expect((await line.textContent()) ?? "").not.toContain("claims");

    // From now on the relay's pages name it as epoch 0's, which this customer may not read. The
    // next request for it (the cursor moves with the agent's next message) learns the claim.
    withheld.set(first, 0);
    await s.org.agent(["send", "--conversation", id, "answer 2"]);
    await expect.poll(texts, { timeout: 20_000 }).toEqual(["where is my refund?", "answer 1", "answer 2"]);
    await expect.poll(() => line.getAttribute("data-claimed"), { timeout: 20_000 }).toBe("0");
    const trace = await holeTrace(page, first);
    const claimed = trace?.text ?? "";
    expect(claimed).toBe(customerHoleText({ from: first, to: first, tries: trace?.tries ?? 0, claimed: 0 }, s.org.org));
    expect(claimed).toContain(`Item #${first} `);
    expect(claimed).toContain(`The relay claims it belongs to a part of this chat you were not in, which is false: you may read everything in your own conversation. Tell ${s.org.org}.`);
    // The same element all along: first without the claim, then with it.
    expect(trace?.elements).toBe(1);
    expect(trace?.texts.some((t) => !t.includes("claims"))).toBe(true);
    expect(trace?.texts.at(-1)).toBe(claimed);

    // A second answer withheld, claimed from the start to be a consent or notice for someone else.
    withholdNext = { claim: null };
    await s.org.agent(["send", "--conversation", id, "this one never arrives either"]);
    await s.org.agent(["send", "--conversation", id, "answer 3"]);
    await expect.poll(texts, { timeout: 20_000 }).toEqual(["where is my refund?", "answer 1", "answer 2", "answer 3"]);
    const second = [...withheld.keys()][1] ?? 0;
    const other = page.locator(`#log > li.withheld[data-from="${second}"]`);
    await expect.poll(() => other.getAttribute("data-claimed"), { timeout: 20_000 }).toBe("conversation");
    expect((await other.textContent()) ?? "").toContain(`The relay claims it is a consent or a notice meant for someone else, which is false: you may read everything in your own conversation. Tell ${s.org.org}.`);
    // Found as a gap when the next item came, then asked for: the answer's claim said on its line.
    const secondTrace = await holeTrace(page, second);
    expect(secondTrace?.elements).toBe(1);
    expect(secondTrace?.text).toBe(customerHoleText({ from: second, to: second, tries: secondTrace?.tries ?? 0, claimed: null }, s.org.org));
    expect(secondTrace?.texts.at(-1)).toBe(secondTrace?.text);
    // The first line still says its own claim.
    expect(await line.getAttribute("data-claimed")).toBe("0");
    expect(s.problems).toEqual([]);
    await page.close();
  });
});
