/**
 * The widget's line on an audit-log entry of a kind this version cannot read (PROTOCOL §12.1
 * "Kinds a later version adds", §12.3), in Chromium against the real relay: the relay is started
 * with its test hook `SEALDESK_TEST_EXTENSION_ENTRY` (a build with `sealdesk-server/test-hooks`),
 * which appends one entry `{ extension: { code, body } }` at index `AT` and serves it to every
 * account. A customer reads the log only while a consent of hers is open (for revocations made
 * elsewhere; why one with none needs no such line — a release reaches her as a notice —
 * SECURITY.md, "Audit log readers"), so the customer is a CLI customer with a consent granted, recovered in the browser
 * (`consentFixture`): she revokes one consent first (the log's entry 0: the relay logs nothing
 * before) and keeps another open. The Rust client reads the same slot as one it cannot read (`sealdesk audit`);
 * the widget says so in `#log-note` with the same words and index. The line comes only from
 * `showUnreadable` (`@sealdesk/client/ui`): without its call in the widget, this test fails.
 * Screenshot `widget-unreadable.png`.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SHOTS, chromiumSuite, watchPage } from "../../client/test/chromium.js";
import { cli } from "../../client/test/relay.js";
import { consentFixture } from "./consents-fixture.js";

/** The extension entry's code (6–255: a kind no version defines yet) and its index (right after the revocation the test makes first). */
const CODE = 200;
const AT = 1;

describe("an audit entry of a kind this version cannot read, in the widget (Chromium)", () => {
  const s = chromiumSuite("widget-unreadable", { viewport: { width: 420, height: 760 } }, { env: { SEALDESK_TEST_EXTENSION_ENTRY: `${CODE}@${AT}` } });

  const { cliCustomer, grant, recoverThere } = consentFixture(s);

  it("says it in one line, with its index, once the customer reads the log", async () => {
    const jane = await cliCustomer("jane");
    // Entry 0 of the log: a revocation (the relay logs nothing before); the hook's entry follows it.
    const old = await grant(jane.home, jane.id, "an old consent");
    await cli(jane.home, s.relay.url, ["consent", "revoke", "--consent", old]);
    await grant(jane.home, jane.id, "refund check");
    // The Rust client is served the entry and passes over it at that index.
    const audit = JSON.parse(await cli(jane.home, s.relay.url, ["audit", "--json"])) as { unreadable: number[] };
    expect(audit.unreadable).toEqual([AT]);

    const page = await s.browser.newPage();
    watchPage(page, s.problems);
    await recoverThere(page, "jane", jane.code, jane.id);
    const note = page.locator("#log-note");
    await expect.poll(() => note.textContent(), { timeout: 20_000 }).toBe(`The audit log holds 1 entry of a kind this version cannot read at index ${AT} — update sealdesk: what it records (it could concern you) is not shown.`);
    expect(await note.isVisible()).toBe(true);
    await note.scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(SHOTS, "widget-unreadable.png") });
    expect(s.problems).toEqual([]);
    await page.close();
  });
});
