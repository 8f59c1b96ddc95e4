/**
 * The agent's own stored-bytes quota and the org's, side by side in the agent console (Chromium
 * against the real relay with small quotas for both, §13.12; issue 25): the agent's answers bring
 * its account to 80% — a line worded for the agent's own account, naming no org (the account's
 * bytes are those of every org it answers for), saying what it can do and who sets the quota —;
 * a newer account warning replaces that line in its place; then the customer's messages bring the
 * org's quota to 80%, pushed to the agent — a second line, the org's, beside the account's.
 * Screenshot `console-quota-scopes.png`.
 */
import { join } from "node:path";
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { SHOTS, WIDE, chromiumSuite, cliCustomer } from "../../client/test/chromium.js";
import { cli } from "../../client/test/relay.js";
import { consolePage, selectConversation, texts } from "./console-page.js";

/** A message's text: its ciphertext is 1,000 bytes (the text and the 16-byte AEAD tag). */
const body = (n: number): string => `${String(n).padStart(3, "0")}${"x".repeat(981)}`;
/** The agent's own quota: seven and a half messages. */
const ACCOUNT = 7_500;
/** The org's quota: ten and a half messages. */
const ORG = 10_500;

/** The warning lines shown in `#quota`: scope and words. */
const shown = (page: Page): Promise<{ scope: string; text: string }[]> =>
  page.locator("#quota p").evaluateAll((ps) => ps.map((p) => ({ scope: (p as HTMLElement).dataset.scope ?? "", text: p.textContent ?? "" })));

describe("the agent's own stored-bytes warning beside the org's, in the agent console (Chromium)", () => {
  const s = chromiumSuite("console-quota-scopes", { viewport: WIDE }, ["--limit", `stored_bytes_per_account=${ACCOUNT}`, "--limit", `stored_bytes_per_org=${ORG}`]);

  it("words the account's warning without an org, replaces it with a newer one, and keeps the org's beside it", async () => {
    const page = await consolePage(s, false);
    const { home: dave, id } = await cliCustomer(s.root, s.relay.url, s.org, "dave");
    await cli(dave, s.relay.url, ["send", "--conversation", id, body(0)]);
    await selectConversation(page, id);
    await expect.poll(() => texts(page)).toEqual([body(0)]);

    // The agent answers until its own account stands at 80% (its sixth message of 1,000 bytes).
    const answer = async (n: number): Promise<void> => {
      await page.locator("#text").fill(body(n));
      await page.locator("#text").press("Enter");
      await expect.poll(async () => (await texts(page)).includes(body(n)), { timeout: 15_000 }).toBe(true);
    };
    let n = 1;
    for (; n <= 6 && (await shown(page)).length === 0; n++) await answer(n);
    await expect.poll(async () => (await shown(page)).map((l) => l.scope), { timeout: 15_000 }).toEqual(["account"]);
    const first = (await shown(page))[0]?.text ?? "";
    expect(first).toMatch(/^The messages and files you sent through this relay, in every org you answer for, now take [\d.]+ KiB of the 7\.3 KiB it keeps for your account \(8\d%\)\. /);
    expect(first).toContain("send files only when needed. The relay's operator sets this quota (stored_bytes_per_account).");
    expect(first).not.toContain(s.org.org);
    expect(first).not.toContain("owner");

    // One more answer: a newer figure for the same quota replaces the line, in its place.
    await answer(n);
    await expect.poll(async () => (await shown(page))[0]?.text, { timeout: 15_000 }).toMatch(/\(9\d%\)/);
    expect((await shown(page)).map((l) => l.scope)).toEqual(["account"]);

    // The customer writes until the org's quota stands at 80%: the org's warning, pushed, beside the account's.
    for (let m = 10; m < 13 && (await shown(page)).length < 2; m++) {
      await cli(dave, s.relay.url, ["send", "--conversation", id, body(m)]);
      await expect.poll(async () => (await texts(page)).includes(body(m)), { timeout: 15_000 }).toBe(true);
    }
    await expect.poll(async () => (await shown(page)).map((l) => l.scope), { timeout: 15_000 }).toEqual(["account", "org"]);
    const [account, org] = await shown(page);
    expect(account?.text).toMatch(/\(9\d%\)/);
    expect(org?.text).toMatch(new RegExp(`^The messages and files of ${s.org.org}'s conversations now take [\\d.]+ KiB of the 10\\.3 KiB this relay keeps for ${s.org.org} \\(8\\d%\\)\\. `));
    expect(org?.text).toContain(`tell ${s.org.org}'s owner`);
    await page.screenshot({ path: join(SHOTS, "console-quota-scopes.png") });
    expect(s.problems).toEqual([]);
    await page.close();
  });
});
