/**
 * What the widget shows when a recovered account's send loses its own next epoch every time
 * (`customer-send.ts`: after `OWN_EPOCH_TRIES` losses, refused `no_epoch`, nothing sent), in
 * Chromium against the real relay, with no race left to timing. A recovered account sends only
 * in an epoch it opened itself, so the page's first send puts the next epoch; each such
 * `put_epoch` is held in the middle (`relayInTheMiddle`, `Link.toRelay`) while the same account,
 * recovered into another browser (the client library under Node, `recoveryKit.sentElsewhere`),
 * opens that epoch first and sends in it; then it goes on, and the relay answers `stale_epoch`.
 *
 * The customer is told in plain words that nothing was sent because another tab or device of
 * the account kept getting there first, that what was written is kept, and to try again — not
 * the client's code and detail ("no_epoch: another device of this account keeps opening…").
 * The text stays in the box, and sending it again, nobody racing, sends it once.
 */
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { chromiumSuite, relayInTheMiddle, watchPage, type Frame } from "../../client/test/chromium.js";
import { orgOf } from "../../client/test/customer-fixture.js";
import { recoveryKit } from "../../client/test/recovery-fixture.js";
import { requestKind } from "../../client/test/tamper.js";
import { OWN_EPOCH_TRIES } from "../../client/src/customer-send.js";
import { consentFixture } from "./consents-fixture.js";

describe("a send the account's other devices keep winning the epoch of (Chromium)", () => {
  const s = chromiumSuite("widget-send-epoch-lost");
  const { cliCustomer, recoverInto } = consentFixture(s);
  const { sentElsewhere } = recoveryKit(orgOf(s));
  const lines = (page: Page): Promise<string[]> => page.locator("#log li.line .text").allTextContents();
  const TEXT = "is my parcel lost?";

  it("says so in plain words, keeps the text, and a second try sends it once", async () => {
    const tess = await cliCustomer("tess");
    const page = await s.browser.newPage();
    watchPage(page, s.problems);
    // Armed once the page is the recovered account: each of its put_epoch requests is held
    // until another browser of the account has opened that epoch and sent in it.
    let racing = false;
    const elsewhere: { epoch: number; counter: number }[] = [];
    const failed: unknown[] = [];
    await relayInTheMiddle(page, {
      toRelay: (frame, link) => {
        if (!racing || requestKind(frame) !== "put_epoch") return frame;
        const n = elsewhere.length + failed.length + 1;
        void sentElsewhere("tess", tess.code, n === 1 ? "sent from my terminal" : `elsewhere ${n - 1}`, `elsewhere ${n}`)
          .then(
            (l) => void elsewhere.push(l),
            (e: unknown) => void failed.push(e),
          )
          .finally(() => link.toRelay(frame as Frame));
        return [];
      },
    });
    await recoverInto(page, "tess", tess.code, tess.id);
    expect(await page.locator("#alert").isHidden()).toBe(true);

    racing = true;
    await page.locator("#text").fill(TEXT);
    await page.locator("#text").press("Enter");
    await expect.poll(() => page.locator("#alert").isVisible(), { timeout: 60_000 }).toBe(true);
    const said = (await page.locator("#alert").textContent()) ?? "";
    expect(failed).toEqual([]);
    expect(elsewhere).toEqual([1, 2, 3].map((epoch) => ({ epoch, counter: 0 })));
    expect(elsewhere).toHaveLength(OWN_EPOCH_TRIES);
    // Plain words: nothing sent, why, the text kept, try again (the code only in brackets).
    expect(said).toContain("Not sent: Another tab or device signed in to this account kept starting the chat's next encryption keys at the same moment, so nothing was sent.");
    expect(said).toContain("What you wrote is kept: try again. (no_epoch)");
    expect(said).not.toContain("no_epoch:");
    expect(await page.locator("#text").inputValue()).toBe(TEXT);
    // The other browser's lines are read in; this one's is not among them.
    await expect.poll(() => lines(page), { timeout: 20_000 }).toContain(`elsewhere ${OWN_EPOCH_TRIES}`);
    expect(await lines(page)).not.toContain(TEXT);

    // Nobody racing now: sent again, it goes (one more loss, the last epoch not read yet, then
    // an epoch of its own), once.
    racing = false;
    await page.locator("#text").press("Enter");
    await expect.poll(() => lines(page), { timeout: 20_000 }).toContain(TEXT);
    await expect.poll(() => page.locator("#text").inputValue()).toBe("");
    expect((await lines(page)).filter((l) => l === TEXT)).toHaveLength(1);
    const agentSaw = await s.org.agent(["history", "--conversation", tess.id]);
    expect(agentSaw.split(TEXT).length - 1).toBe(1);
    await page.close();
    expect(s.problems).toEqual([]);
  });
});
