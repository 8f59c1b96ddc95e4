/**
 * The console's line on an audit-log entry of a kind this version cannot read (PROTOCOL §12.1
 * "Kinds a later version adds", §12.3), in Chromium against the real relay: the relay is started
 * with its test hook `SEALDESK_TEST_EXTENSION_ENTRY` (a build with `sealdesk-server/test-hooks`),
 * which appends one entry `{ extension: { code, body } }` at index `AT` and serves it to every
 * account. A customer revokes a consent first (the log's entry 0: the relay logs nothing before),
 * an entry the agent reads as a party of the org. The agent's scan of the log (`agent-log.ts`) passes over it and keeps its index; the
 * console says so in `#log-note` with the words and index the CLI's `audit` gives for the same
 * account. The line comes only from `showUnreadable` (`@sealdesk/client/ui`): without its call
 * in the console, this test fails. Screenshot `console-unreadable.png`.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SHOTS, WIDE, chromiumSuite } from "../../client/test/chromium.js";
import { cli } from "../../client/test/relay.js";
import { consolePage, customerWrites } from "./console-page.js";

/** The extension entry's code (6–255: a kind no version defines yet) and its index (right after the revocation the test makes first). */
const CODE = 77;
const AT = 1;

describe("an audit entry of a kind this version cannot read, in the console (Chromium)", () => {
  const s = chromiumSuite("console-unreadable", { viewport: WIDE }, { env: { SEALDESK_TEST_EXTENSION_ENTRY: `${CODE}@${AT}` } });

  it("says it in one line, with its index, as the CLI's audit does", async () => {
    const page = await consolePage(s);
    const rita = await customerWrites(s, page, "rita", "is anyone there");
    // Entry 0 of the log: her revocation (the relay logs nothing before); the hook's entry follows it.
    const consent = (JSON.parse(await cli(rita.home, s.relay.url, ["consent", "grant", "--conversation", rita.id, "--purpose", "quality review", "--expires", "1d", "--json"])) as { consent: string }).consent;
    await cli(rita.home, s.relay.url, ["consent", "revoke", "--consent", consent]);
    // The agent's CLI (the same account) is served the entry and passes over it at that index.
    const audit = JSON.parse(await s.org.agent(["audit", "--json"])) as { unreadable: number[] };
    expect(audit.unreadable).toEqual([AT]);

    const note = page.locator("#log-note");
    await expect.poll(() => note.textContent(), { timeout: 20_000 }).toBe(`The audit log holds 1 entry of a kind this version cannot read at index ${AT} — update sealdesk: what it records (it could concern you) is not shown.`);
    expect(await note.isVisible()).toBe(true);
    await page.screenshot({ path: join(SHOTS, "console-unreadable.png") });
    expect(s.problems).toEqual([]);
    await page.close();
  });
});
