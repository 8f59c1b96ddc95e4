/**
 * "New messages below" in the console (Chromium against the real relay serving web/dist; issue
 * 23): an agent who scrolled up in a conversation to read is not moved when the customer writes —
 * the log stays where it was — and a button says there is more below. Pressed, it brings the log
 * to its end and goes, the focus in the answer; scrolling to the end by hand makes it go too.
 * At the end already, the log follows the new line and no button shows — also after the policy
 * opened above it made the log shorter (the agent did not scroll: the hint showed, the log stood).
 * What the agent sends — a message or a file — is shown as chat apps show it: the log goes to its
 * end from wherever the agent had scrolled, and no hint shows (it stayed up, the hint over the
 * agent's own words). Screenshots `console-own-send-600.png` and `-1400.png`. The steps and
 * assertions of the first two are the widget's too (`client/test/new-below-scenario.ts`).
 */
import { describe, expect, it } from "vitest";
import { chromiumSuite } from "../../client/test/chromium.js";
import { hintScenario, ownSendScenario } from "../../client/test/new-below-scenario.js";
import { cli } from "../../client/test/relay.js";
import { consolePage, customerWrites, texts } from "./console-page.js";

/** A customer's message long enough that a few of them overflow the log. */
const long = (n: number): string => `${n}: ${"the parcel came open and half of it is missing; ".repeat(6)}`;

describe("the new-messages hint in the console (Chromium)", () => {
  const s = chromiumSuite("console-new-below", { viewport: { width: 800, height: 600 } });

  it("keeps a scrolled-up log still and offers the way down", async () => {
    const page = await consolePage(s, false);
    const { home: rita, id } = await customerWrites(s, page, "rita", long(0));
    for (let n = 1; n < 5; n++) await cli(rita, s.relay.url, ["send", "--conversation", id, long(n)]);
    await expect.poll(async () => (await texts(page)).length, { timeout: 30_000 }).toBe(5);
    // The policy opened above the log.
    const policy = (): Promise<void> => page.locator("#policy summary").click();
    await hintScenario({
      page,
      root: s.root,
      problems: s.problems,
      peerSends: (text) => cli(rita, s.relay.url, ["send", "--conversation", id, text]).then(() => undefined),
      shorten: async () => {
        await policy();
        return policy;
      },
      // Its end may already be back in sight: any redraw (a receipt, a presence change) takes a
      // following log to its end. Measuring "at the end" when drawing instead — the bug — would
      // leave it short of its end at that redraw and at the next line, and show the hint.
      endOutOfSight: false,
    });
  });
});

describe("the agent's own message in a scrolled-up console log (Chromium)", () => {
  const s = chromiumSuite("console-own-send", { viewport: { width: 800, height: 600 } });

  it("brings a scrolled-up log to its end when the agent sends a message or a file", async () => {
    const page = await consolePage(s, false);
    const { home: sam, id } = await customerWrites(s, page, "sam", long(0));
    for (let n = 1; n < 5; n++) await cli(sam, s.relay.url, ["send", "--conversation", id, long(n)]);
    await expect.poll(async () => (await texts(page)).length, { timeout: 30_000 }).toBe(5);
    await ownSendScenario({
      page,
      root: s.root,
      problems: s.problems,
      peerSends: (text) => cli(sam, s.relay.url, ["send", "--conversation", id, text]).then(() => undefined),
      sizes: [600, 1400].map((width) => ({ width, height: 600 })),
      words: (width) => ({ peer: `still there at ${width}?`, own: `yes, looking at it (${width})` }),
      shot: (width) => `console-own-send-${width}.png`,
      file: { name: "label.txt", contents: "label 8812" },
      fileShown: async () => {
        await expect.poll(() => page.locator("#upload-status").getAttribute("data-done"), { timeout: 30_000 }).toBe("true");
        await expect.poll(() => texts(page)).toContain("label.txt, 10 B");
      },
    });
  });
});
