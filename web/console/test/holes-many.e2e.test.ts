/**
 * A relay that invents thousands of holes, in the agent console (Chromium; PROTOCOL §13.10,
 * issue 20): the page's WebSocket passes through a hostile relay (`relayInTheMiddle`) that answers
 * the console's reads of a CLI customer's conversation with its real items followed by thousands
 * of invented one-number runs "skipped" (over several pages), each claiming an epoch the agent
 * reads (a lie: each a hole, with the claim). The console draws the first runs on lines of their
 * own and one line summing up the rest — how many runs and items, that they were claimed falsely
 * — with the first runs listed behind a disclosure: a bounded number of items, not thousands. A
 * screenshot goes to web/screenshots/console-withheld-many.png (the summary closed) and
 * console-withheld-many-open.png (opened).
 */
import { join } from "node:path";
import { equal, fromHex } from "@sealdesk/protocol";
import { MAX_HOLES } from "@sealdesk/client";
import { HOLES_DRAWN, HOLES_LISTED } from "@sealdesk/client/ui";
import { describe, expect, it } from "vitest";
import { SHOTS, WIDE, chromiumSuite, cliCustomer, relayInTheMiddle, vaultFiles, watchPage, withheldItems, type Frame } from "../../client/test/chromium.js";
import { cli } from "../../client/test/relay.js";
import { selectConversation, texts } from "./console-page.js";

/** Runs the relay invents. */
const RUNS = 3000;
/** Runs in one history page, at most. */
const SPAN = 500;

/** The epoch of a message item (raw CBOR), if it is one. */
const epochOf = (it: Frame): number | undefined => {
  const header = ((it.item as Frame | undefined)?.message as Frame | undefined)?.header as Frame | undefined;
  return typeof header?.epoch === "number" ? header.epoch : undefined;
};

describe("a relay inventing thousands of holes, in the agent console (Chromium)", () => {
  const s = chromiumSuite("console-holes-many", { viewport: WIDE });

  it("draws a handful of items for them: the first runs, and one line summing up the rest with the relay's false claims", async () => {
    const { home: erin, id } = await cliCustomer(s.root, s.relay.url, s.org, "erin");
    const lines = ["my parcel is late", "it was due on Monday", "order 5512"];
    for (const t of lines) await cli(erin, s.relay.url, ["send", "--conversation", id, t]);
    const target = fromHex(id);

    const page = await s.browser.newPage();
    watchPage(page, s.problems, false);
    /** The console's reads of the conversation (`history`): request id → `after`. */
    const reads = new Map<number, number>();
    let invented: { from: number; to: number } | null = null;
    let epochClaimed: number | undefined;
    await relayInTheMiddle(page, {
      toRelay: (frame) => {
        const r = frame.request as Frame | undefined;
        const h = (r?.body as Frame | undefined)?.history as Frame | undefined;
        if (r !== undefined && h !== undefined && h.conversation instanceof Uint8Array && equal(h.conversation, target)) reads.set(r.id as number, h.after as number);
        return frame;
      },
      toPage: (frame) => {
        const response = frame.response as Frame | undefined;
        const items = (response?.body as Frame | undefined)?.items as Frame | undefined;
        const after = response === undefined ? undefined : reads.get(response.id as number);
        if (after !== undefined && items !== undefined && Array.isArray(items.items)) {
          const real = items.items as Frame[];
          if (invented === null && after === 0) {
            // The first read: the runs start past its last real item, claiming the agent's epoch.
            const last = real.reduce((m, it) => Math.max(m, it.seq as number), 0);
            epochClaimed = real.map(epochOf).find((e) => e !== undefined);
            invented = { from: last + 1, to: last + RUNS };
          }
          const from = invented === null ? 0 : Math.max(after, invented.from - 1) + 1;
          if (invented !== null && epochClaimed !== undefined && from <= invented.to) {
            // Past the real items, at most SPAN one-number runs a page (a frame holds so many).
            const to = Math.min(from + SPAN - 1, invented.to);
            const runs: Frame[] = [];
            for (let n = from; n <= to; n++) runs.push({ from: n, to: n, epoch: epochClaimed });
            items.skipped = [...(Array.isArray(items.skipped) ? (items.skipped as Frame[]) : []), ...runs];
            items.more = to < invented.to;
            if (to < invented.to) delete items.head;
            else items.head = invented.to;
          }
        }
        return frame;
      },
    });
    await page.goto(`${s.relay.origin}/console/`);
    await page.locator("#vault-files").setInputFiles(vaultFiles(s.org.agentHome));
    await page.locator("#passphrase").fill("web tests only");
    await page.locator("#unlock-button").click();
    // Online once every conversation is read: the thousands of runs take a few pages.
    await expect.poll(() => page.locator("#conn").getAttribute("data-state"), { timeout: 60_000 }).toBe("online");
    await selectConversation(page, id);
    await expect.poll(() => texts(page)).toEqual(lines);
    const more = page.locator("#log > li.withheld.more");
    await expect.poll(() => more.count(), { timeout: 30_000 }).toBe(1);
    expect(invented).not.toBeNull();
    const { from, to } = invented ?? { from: 0, to: 0 };

    // The first runs on lines of their own, in their places, then the summary: HOLES_DRAWN items
    // in all. (The console's own read receipt may take the first invented number: a hole less.)
    const withheld = await withheldItems(page);
    expect(withheld).toHaveLength(HOLES_DRAWN);
    const own = withheld.slice(0, -1);
    for (const [i, h] of own.entries()) {
      expect(h.more).toBe(false);
      expect(h.from).toBeGreaterThanOrEqual(from);
      if (i > 0) expect(h.from).toBeGreaterThan(own[i - 1]?.from ?? 0);
      expect(h.text).toBe(`1 item never arrived here (#${h.from}): asking the relay again; it claims it was an item of epoch ${epochClaimed}, which is false — you are allowed to read it.`);
    }
    expect(withheld[HOLES_DRAWN - 1]?.more).toBe(true);
    const first = Number(await more.getAttribute("data-from"));
    const summed = Number(await more.getAttribute("data-runs"));
    // At most MAX_HOLES runs are kept (the newest merged into one summary run that keeps the
    // count of numbers missing): the runs summed up are those kept past the ones drawn; the
    // items, every invented number from the first summed up to the last.
    expect(summed).toBeLessThanOrEqual(MAX_HOLES - (HOLES_DRAWN - 1));
    expect(summed).toBeGreaterThan(MAX_HOLES - 2 * HOLES_DRAWN);
    const items = to - first + 1;
    expect(items).toBeGreaterThan(RUNS - 2 * HOLES_DRAWN);
    // The summary run is given up at once (asking for it would hand in again what arrived); the
    // others are still asked for, or given up after their requests.
    const said = (await more.locator("p.said").textContent()) ?? "";
    const prefix = `${summed} more runs of items (${items} items in all, #${first} to #${to}) never arrived in this conversation — the relay may be hiding parts of it: `;
    const claim = " The relay claims all of these runs hold only items you may not read, which is false — you are allowed to read them. Tell your security contact.";
    expect(said.startsWith(prefix) && said.endsWith(claim)).toBe(true);
    const counts = /^(\d+) not delivered after 3 requests, (\d+) still asked for again\.$/.exec(said.slice(prefix.length, said.length - claim.length));
    expect(counts).not.toBeNull();
    expect(Number(counts?.[1])).toBeGreaterThanOrEqual(1);
    expect(Number(counts?.[1]) + Number(counts?.[2])).toBe(summed);

    // Bounded: the whole log is a few hundred elements at most, not thousands.
    const elements = await page.locator("#log").evaluate((l) => l.querySelectorAll("*").length);
    expect(elements).toBeLessThan(300);
    expect(await page.locator("#log > li").count()).toBe(lines.length + HOLES_DRAWN + (await page.locator("#log > li.event, #log > li.notice").count()));
    await page.screenshot({ path: join(SHOTS, "console-withheld-many.png") });

    // Behind the disclosure: the first HOLES_LISTED runs in their own lines' words, then how many more.
    await more.locator("summary").click();
    expect(await more.locator("summary").textContent()).toBe(`The first ${HOLES_LISTED} of the ${summed} runs`);
    const listed = await more.locator("ul > li").allTextContents();
    expect(listed).toHaveLength(HOLES_LISTED);
    expect(listed[0]).toBe(`1 item never arrived here (#${first}): asking the relay again; it claims it was an item of epoch ${epochClaimed}, which is false — you are allowed to read it.`);
    expect(await more.locator("p.unlisted").textContent()).toBe(`… and ${summed - HOLES_LISTED} more runs, up to #${to}.`);
    await page.screenshot({ path: join(SHOTS, "console-withheld-many-open.png") });
    // Drawn again (another customer's conversation comes: the list and the pane are drawn
    // again): the disclosure stays open, the items as many.
    const fred = await cliCustomer(s.root, s.relay.url, s.org, "fred");
    await expect.poll(() => page.locator(`#list button[data-conversation="${fred.id}"]`).count(), { timeout: 30_000 }).toBe(1);
    expect(await more.locator("details").evaluate((d) => (d as HTMLDetailsElement).open)).toBe(true);
    expect(await page.locator("#log > li.withheld").count()).toBe(HOLES_DRAWN);
    expect(s.problems).toEqual([]);
    await page.close();
  });
});
